"""csv: any ratings file you bring, one interaction per row.

    python -m deca_tune.data describe csv --option path=ratings.csv --option clean='rating>=4'

MovieLens (ratings.csv of ml-latest / ml-25m):

    python -m deca_tune.data describe csv --option path=ml-25m/ratings.csv \\
        --option user_col=userId --option item_col=movieId --option rating_col=rating \\
        --option time_col=timestamp --option clean='rating>=4' --option split=chrono

Options (--option KEY=VALUE; dataset_options in a search spec):
  path        the ratings file (required). A relative path is looked up in the current
              directory, then in the data root (--data-root / $DECA_TUNE_DATA); a search
              resolves it to an absolute path before its workers start.
  sep         field separator (default ","); "\\t" or "tab" mean a tab. Fields may be
              quoted ("a, b"); a separator of several characters (e.g. "::") is slower.
  header      true (default): line 1 names the columns; false: columns are field numbers
              from 0 ("0", "1", ...).
  user_col    the user id column (default "user").
  item_col    the item id column (default "item").
  rating_col  a numeric column kept as the rating of each training row (default "rating");
              none: the file has no rating.
  time_col    a timestamp column (default none): numbers (e.g. Unix seconds) or dates and
              times ("2020-01-31", "2020-01-31T10:00:00Z", ...). Needed by split=chrono.
  clean       which rows are clean positives for valid_clean/test_clean: a rule
              "COLUMN OP NUMBER" with OP one of >=, >, <=, <, == (default "rating>=5"),
              or "all" (every row is clean). COLUMN is any numeric column of the file.
  split       random (default): a seeded global random 8:1:1 of the rows; chrono: per user,
              by time, the first 80% train, the next 10% valid, the last 10% test (ties keep
              the file order; needs time_col).
  seed        seed of split=random (default 0).
  ks          cut-offs of Recall@K / NDCG@K (default "5,10,20").
  name        the data set's name in results (default "csv").
  cache       true (default): keep the parsed split in the cache folder ($DECA_TUNE_CACHE,
              default ~/.cache/deca_tune/splits/), keyed by the file's SHA-256 and these
              options, so the next load skips parsing; false: always parse.

How rows become a split:
  - every row is a (noisy) positive; the clean rule only marks the clean held-out rows;
  - ids are text taken verbatim ("NA" or "null" are ids like any other; an empty id is an
    error), except that an id column whose values are all integral numbers is read as
    integers: "1", "1.0" and "1e0" are one user (so a file that wrote some ids as floats
    does not count those users twice), and such ids sort as numbers;
  - a repeated (user, item) pair keeps its latest row (by time_col, else the last in the
    file); the count is dropped_duplicates;
  - validation/test rows whose item never occurs in train are dropped (counts
    dropped_unseen_item_valid and dropped_unseen_item_test; describe prints all three);
  - users and items are re-indexed densely 0..n-1 in the sorted order of their ids; the
    original ids are in meta["original_user_ids"] / meta["original_item_ids"].

Errors name the file and the line: a missing or malformed value (the line of that row), a
row with more fields than the header (the line and both counts), a quote that is never
closed (the line where the quoted field opens), a column that is not in the header (the
columns it has).
"""
from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deca_tune.data import REC_DATASETS
from deca_tune.data.download import DataUnavailableError, locate, sha256_of
from deca_tune.data.interactions import RecSplit
from deca_tune.data.readers import MalformedFileError, read_csv_columns
from deca_tune.data.split_cache import cached_split
from deca_tune.data.splits import build_split, chrono_parts, dedupe_pairs, encode_ids, random_parts

#: the option reference, as ``python -m deca_tune.data describe --help`` can show it
CSV_OPTIONS_HELP: str = __doc__
#: version of the parsing rules below: part of the split cache key (bump when results change)
CSV_VERSION = 2

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
_RULE = re.compile(r"^\s*(?P<col>[^<>=!\s][^<>=!]*?)\s*(?P<op>>=|<=|==|>|<)\s*"
                   r"(?P<num>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def parse_clean_rule(rule: str) -> tuple[str, str, float] | None:
    """``"rating>=5"`` -> ``("rating", ">=", 5.0)``; ``"all"`` -> ``None`` (every row is clean)."""
    if str(rule).strip().lower() == "all":
        return None
    match = _RULE.match(str(rule))
    if not match:
        raise ValueError(f"clean rule {rule!r} is not 'COLUMN OP NUMBER' with OP one of "
                         f"{', '.join(OPERATORS)} (e.g. 'rating>=5'), or 'all'")
    return match["col"].strip(), match["op"], float(match["num"])


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"csv: option {key}={value!r} is not true or false")


def _as_ks(ks: Any) -> tuple[int, ...]:
    if isinstance(ks, str):
        ks = [k for k in ks.replace(";", ",").split(",") if k.strip()]
    elif isinstance(ks, (int, np.integer)):
        ks = [ks]
    try:
        out = tuple(int(k) for k in ks)
    except (TypeError, ValueError):
        raise ValueError(f"csv: option ks={ks!r} is not a list of positive integers "
                         f"(e.g. ks=5,10,20)") from None
    if not out or min(out) < 1:
        raise ValueError(f"csv: option ks={ks!r} is not a list of positive integers")
    return out


def _optional_col(value: Any) -> str | None:
    return None if value is None or str(value).strip().lower() in ("", "none", "null") else str(value)


def _resolve(path: str | Path, root: Path) -> Path:
    return locate(path, root, "csv: option path", hint="not a ratings file (give the CSV file inside it)")


def resolve_options(options: dict, root: Path) -> dict:
    """``options`` of the ``csv`` data set with ``path`` made absolute (relative paths are
    looked up in the current directory, then in the data root ``root``), for a caller that
    hands the options to processes with another working directory (the search driver, before
    Ray starts). Raises :class:`DataUnavailableError` naming the path when the file is missing
    and ``ValueError`` when there is no ``path``.
    """
    if options.get("path") is None:
        raise ValueError("csv: option 'path' is required (e.g. --option path=ratings.csv)")
    return {**options, "path": str(_resolve(options["path"], Path(root)))}


@REC_DATASETS.register("csv")
def load_csv(root: Path, download: bool = True, *, path: str | None = None, sep: str = ",",
             header: bool = True, user_col: str = "user", item_col: str = "item",
             rating_col: str | None = "rating", time_col: str | None = None,
             clean: str = "rating>=5", split: str = "random", seed: int = 0,
             ks: str | tuple[int, ...] = (5, 10, 20), name: str = "csv",
             cache: bool = True) -> RecSplit:
    """Load a user's ratings file (see the module docstring, :data:`CSV_OPTIONS_HELP`)."""
    if path is None:
        raise ValueError("csv: option 'path' is required (e.g. --option path=ratings.csv)")
    if split not in ("chrono", "random"):
        raise ValueError(f"csv: option split={split!r}; choose one of: chrono, random")
    rating_col, time_col = _optional_col(rating_col), _optional_col(time_col)
    if split == "chrono" and time_col is None:
        raise ValueError("csv: split='chrono' needs option time_col (the timestamp column)")
    options = {
        "sep": "\t" if sep in ("\\t", "tab", "TAB") else str(sep),
        "header": _as_bool("header", header), "user_col": str(user_col),
        "item_col": str(item_col), "rating_col": rating_col, "time_col": time_col,
        "clean": str(clean), "split": split, "seed": int(seed), "ks": _as_ks(ks),
        "name": str(name),
    }
    parse_clean_rule(options["clean"])  # a bad rule fails before the file is read
    file = _resolve(path, root)
    digest = sha256_of(file)
    key = {"loader": "csv", "version": CSV_VERSION, "file": str(file), "sha256": digest,
           "options": options}
    return cached_split(key, lambda: _build(file, digest, **options),
                        enabled=_as_bool("cache", cache))


def _build(file: Path, digest: str, *, sep: str, header: bool, user_col: str, item_col: str,
           rating_col: str | None, time_col: str | None, clean: str, split: str, seed: int,
           ks: tuple[int, ...], name: str) -> RecSplit:
    """Parse ``file`` and split it (no cache)."""
    rule = parse_clean_rule(clean)
    cols: dict[str, str] = {user_col: "id", item_col: "id"}
    if rating_col is not None:
        cols[rating_col] = "number"
    if rule is not None and rule[0] not in cols:
        cols[rule[0]] = "number"
    if time_col is not None:
        cols[time_col] = "time"
    try:
        df, _ = read_csv_columns(file, cols, sep=sep, header=header, exact_ids=True,
                                 strict_fields=True)
    except MalformedFileError as exc:
        if rule is not None and f"{rule[0]!r}" in str(exc) and "no column" in str(exc):
            raise MalformedFileError(f"{exc} (column {rule[0]!r} comes from the clean rule "
                                     f"{clean!r})") from None
        raise
    users, user_ids = encode_ids(df[user_col], numeric=True)
    items, item_ids = encode_ids(df[item_col], numeric=True)
    frame = pd.DataFrame({"user": users, "item": items})
    if rating_col is not None:
        frame["rating"] = df[rating_col].to_numpy(dtype=np.float64)
    if time_col is not None:
        frame["timestamp"] = df[time_col].to_numpy(dtype=np.float64)
    if rule is None:
        frame["_clean"] = True
    else:
        frame["_clean"] = OPERATORS[rule[1]](df[rule[0]].to_numpy(dtype=np.float64), rule[2])
    del df
    frame, dropped_dup = dedupe_pairs(frame, "timestamp" if time_col is not None else None)
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise MalformedFileError(f"{file}: no interactions")
    if split == "chrono":
        parts = chrono_parts(frame["user"].to_numpy(), frame["timestamp"].to_numpy())
    else:
        parts = random_parts(len(frame), int(seed))
    id_kind = lambda ids: "integer" if ids.dtype.kind in "iu" else "text"  # noqa: E731
    return build_split(
        name, frame, parts, clean=frame["_clean"].to_numpy(), ks=ks,
        rating_col="rating" if rating_col is not None else None,
        user_ids=user_ids, item_ids=item_ids,
        meta={"source": str(file), "files": {str(file): digest},
              "dropped_duplicates": int(dropped_dup), "clean_rule": clean,
              "ids": {"user": id_kind(user_ids), "item": id_kind(item_ids)},
              "split": f"{split} 8:1:1" + (f" (seed {seed})" if split == "random" else "")},
    )


#: the search driver looks for this on a loader: options to fix before workers start
load_csv.resolve_options = resolve_options  # type: ignore[attr-defined]
