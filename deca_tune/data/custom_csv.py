"""``csv``: any ratings file a user brings, e.g.

    python -m deca_tune.data describe csv --option path=my.csv --option clean='rating>=4'

Options: ``path`` (relative paths are taken from the current directory, then the data root),
``sep`` (default ``,``; ``\\t`` and ``tab`` mean a tab), ``header`` (default true; without a
header, columns are 0-based field numbers), ``user_col``/``item_col``/``rating_col``/``time_col``
(``time_col`` optional: numbers or dates), ``clean`` (a rule ``COLUMN OP NUMBER`` with OP one of
``>=, >, <=, <, ==``, or ``all``), ``split`` (``chrono`` per user, needs ``time_col``; or
``random``, global), ``seed``, ``ks``. Every row is a (noisy) positive; repeated (user, item)
pairs keep the latest row; validation/test items unseen in training are dropped; ids are
re-indexed densely (``meta["original_*_ids"]`` keeps the originals).
"""
from __future__ import annotations

import operator
import re
from pathlib import Path

import numpy as np
import pandas as pd

from deca_tune.data import REC_DATASETS
from deca_tune.data.download import DataUnavailableError, sha256_of
from deca_tune.data.interactions import RecSplit
from deca_tune.data.readers import MalformedFileError, line_of_row, read_csv_columns
from deca_tune.data.splits import build_split, chrono_parts, dedupe_pairs, random_parts

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
_RULE = re.compile(r"^\s*(?P<col>[^<>=!\s][^<>=!]*?)\s*(?P<op>>=|<=|==|>|<)\s*"
                   r"(?P<num>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


def parse_clean_rule(rule: str) -> tuple[str, str, float] | None:
    """``"rating>=5"`` -> ``("rating", ">=", 5.0)``; ``"all"`` -> ``None`` (every row is clean)."""
    if str(rule).strip().lower() == "all":
        return None
    match = _RULE.match(str(rule))
    if not match:
        raise ValueError(f"clean rule {rule!r} is not 'COLUMN OP NUMBER' with OP one of "
                         f"{', '.join(OPERATORS)} (e.g. 'rating>=5'), or 'all'")
    return match["col"].strip(), match["op"], float(match["num"])


def _times(values: pd.Series, path: Path, sep: str, header: bool, col: str) -> np.ndarray:
    """Numeric times as they are, else dates parsed to nanoseconds; bad values name their line."""
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().all():
        return num.to_numpy(dtype=np.float64)
    dates = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise MalformedFileError(f"{path}, line {line_of_row(path, row, sep=sep, header=header)}: "
                                 f"time column {col!r} value {values.iloc[row]!r} is neither a "
                                 f"number nor a date")
    return dates.astype("int64").to_numpy().astype(np.float64)


def _resolve(path: str | Path, root: Path) -> Path:
    candidates = [Path(path).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(root / path)
    for cand in candidates:
        if cand.exists():
            return cand.resolve()
    raise DataUnavailableError(f"csv: ratings file {path!r} not found (looked at "
                               f"{', '.join(str(c) for c in candidates)})")


@REC_DATASETS.register("csv")
def load_csv(root: Path, download: bool = True, *, path: str | None = None, sep: str = ",",
             header: bool = True, user_col: str = "user", item_col: str = "item",
             rating_col: str | None = "rating", time_col: str | None = None,
             clean: str = "rating>=5", split: str = "random", seed: int = 0,
             ks: str | tuple[int, ...] = (5, 10, 20), name: str = "csv") -> RecSplit:
    """Load a user's ratings file (see the module docstring for the options)."""
    if path is None:
        raise ValueError("csv: option 'path' is required (e.g. --option path=ratings.csv)")
    if split not in ("chrono", "random"):
        raise ValueError(f"csv: option split={split!r}; choose one of: chrono, random")
    if split == "chrono" and time_col is None:
        raise ValueError("csv: split='chrono' needs option time_col (the timestamp column)")
    sep = "\t" if sep in ("\\t", "tab", "TAB") else sep
    file = _resolve(path, root)
    rule = parse_clean_rule(clean)
    cols = {str(user_col): "id", str(item_col): "id"}
    if rating_col is not None:
        cols[str(rating_col)] = "number"
    if rule is not None and rule[0] not in cols:
        cols[rule[0]] = "number"
    if time_col is not None:
        cols[str(time_col)] = "str"
    try:
        df, _ = read_csv_columns(file, cols, sep=sep, header=bool(header))
    except MalformedFileError as exc:
        if rule is not None and f"{rule[0]!r}" in str(exc) and "no column" in str(exc):
            raise MalformedFileError(f"{exc} (column {rule[0]!r} comes from the clean rule "
                                     f"{clean!r})") from None
        raise
    df = df.rename(columns={str(user_col): "user", str(item_col): "item"})
    if rating_col is not None:
        df["rating"] = df[str(rating_col)]
    if time_col is not None:
        df["timestamp"] = _times(df[str(time_col)], file, sep, bool(header), str(time_col))
    df, dropped_dup = dedupe_pairs(df, "timestamp" if time_col is not None else None)
    df = df.reset_index(drop=True)
    if df.empty:
        raise MalformedFileError(f"{file}: no interactions")
    if split == "chrono":
        parts = chrono_parts(df["user"].to_numpy(), df["timestamp"].to_numpy())
    else:
        parts = random_parts(len(df), int(seed))
    if rule is None:
        is_clean = np.ones(len(df), dtype=bool)
    else:
        col = "rating" if rule[0] == str(rating_col) else rule[0]
        is_clean = OPERATORS[rule[1]](df[col].to_numpy(dtype=np.float64), rule[2])
    if isinstance(ks, str):
        ks = tuple(int(k) for k in ks.replace(";", ",").split(",") if k.strip())
    return build_split(
        str(name), df, parts, clean=is_clean, ks=tuple(int(k) for k in ks),
        rating_col="rating" if rating_col is not None else None,
        meta={"source": str(file), "files": {str(file): sha256_of(file)},
              "dropped_duplicates": dropped_dup, "clean_rule": str(clean),
              "split": f"{split} 8:1:1" + (f" (seed {seed})" if split == "random" else "")},
    )
