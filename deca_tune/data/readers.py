"""Read delimited interaction files fast (pandas), and name the file and line of any bad input.

The happy path is one ``pandas.read_csv`` call plus vectorised checks. Only when something is
wrong do we walk the file with :mod:`csv` to find the first offending line for the message.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Literal, Mapping

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

#: what a column must hold: ``int`` (integer ids/flags), ``number`` (any real), ``id`` (any
#: non-empty token; ids are re-indexed later), ``str`` (anything)
Kind = Literal["int", "number", "id", "str"]


class MalformedFileError(ValueError):
    """A data file has a line that does not match its format; the message names file and line."""


def _bad_field(value: str, kind: Kind) -> str | None:
    """Why ``value`` is not a valid ``kind`` field (``None`` when it is)."""
    value = value.strip()
    if kind == "str":
        return None
    if value == "":
        return "is empty"
    if kind == "id":
        return None
    try:
        number = float(value)
    except ValueError:
        return f"is not a number ({value!r})"
    if not np.isfinite(number):
        return f"is not a finite number ({value!r})"
    if kind == "int" and not number.is_integer():
        return f"is not an integer ({value!r})"
    return None


def locate_bad_line(path: Path, sep: str, kinds: list[tuple[int, str, Kind]], *,
                    header: bool = False, min_fields: int = 0, max_fields: int | None = None,
                    start_row: int = 0) -> tuple[int, str] | None:
    """First line (1-based number, reason) whose fields break the format; ``None`` if all fine.

    ``kinds`` lists (field position, field name, kind). Blank lines are skipped, as pandas does.
    ``start_row`` skips that many data rows before checking (to look up a row pandas flagged).
    """
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        if sep == "\t" or len(sep) != 1:
            reader: Iterable[list[str]] = (line.rstrip("\r\n").split(sep) for line in fh)
            line_no = lambda i: i  # noqa: E731 - one line per record
        else:
            reader = csv.reader(fh, delimiter=sep)
            line_no = None
        row = -1
        for i, fields in enumerate(reader, start=1):
            at = reader.line_num if line_no is None else line_no(i)  # type: ignore[attr-defined]
            if header and i == 1:
                continue
            if not fields or fields == [""] or all(not f.strip() for f in fields):
                continue
            row += 1
            if row < start_row:
                continue
            if len(fields) < min_fields:
                return at, f"has {len(fields)} field(s), expected at least {min_fields}"
            if max_fields is not None and len(fields) > max_fields:
                return at, f"has {len(fields)} fields, expected at most {max_fields}"
            for pos, name, kind in kinds:
                if pos >= len(fields):
                    return at, f"has no column {name!r} (only {len(fields)} fields)"
                why = _bad_field(fields[pos], kind)
                if why:
                    return at, f"column {name!r} {why}"
    return None


def _fail(path: Path, found: tuple[int, str] | None, fallback: str) -> MalformedFileError:
    if found is None:
        return MalformedFileError(f"{path}: {fallback}")
    line, why = found
    return MalformedFileError(f"{path}, line {line}: {why}")


def _check_kinds(df: pd.DataFrame, kinds: Mapping[str, Kind]) -> tuple[pd.DataFrame, int | None]:
    """Convert columns to their kinds; return the frame and the first bad row index (or None)."""
    bad = np.zeros(len(df), dtype=bool)
    out = {}
    for name, kind in kinds.items():
        col = df[name]
        if kind in ("int", "number"):
            num = col if is_numeric_dtype(col) and not is_bool_dtype(col) else \
                pd.to_numeric(col.astype(object), errors="coerce")
            vals = num.to_numpy(dtype=np.float64, na_value=np.nan)
            ok = np.isfinite(vals)
            if kind == "int":
                ok &= np.equal(np.floor(vals, where=ok, out=np.zeros_like(vals)), vals)
            bad |= ~ok
            out[name] = num
        elif kind == "id":
            missing = col.isna().to_numpy(dtype=bool).copy()
            if not is_numeric_dtype(col):
                missing |= (col.astype(str).str.strip() == "").to_numpy(dtype=bool)
            bad |= missing
            out[name] = col
        else:
            out[name] = col
    first = int(np.argmax(bad)) if bad.any() else None
    df = df.assign(**out)
    for name, kind in kinds.items():
        if kind == "int" and first is None:
            df[name] = df[name].astype(np.int64)
    return df, first


def read_table(path: str | Path, names: list[str], *, sep: str = "\t",
               kinds: Mapping[str, Kind] | None = None, extra_fields: bool = False) -> pd.DataFrame:
    """Read a header-less delimited file with the given column ``names``.

    ``kinds`` maps a column to what it must hold (default: every column ``int``). With
    ``extra_fields`` lines may carry more fields than ``names`` (they are ignored); otherwise
    such a line is an error. Raises :class:`MalformedFileError` naming the first bad line.
    """
    path = Path(path)
    kinds = dict(kinds) if kinds is not None else {n: "int" for n in names}
    spec = [(names.index(n), n, k) for n, k in kinds.items()]
    locate = lambda start=0: locate_bad_line(  # noqa: E731
        path, sep, spec, min_fields=len(names), max_fields=None if extra_fields else len(names),
        start_row=start)
    try:
        if extra_fields:
            # variable-width lines: read each line whole, split off the leading fields (vectorised)
            lines = pd.read_csv(path, sep="\x1f", header=None, names=["line"], dtype=str,
                                engine="c", quoting=csv.QUOTE_NONE, skip_blank_lines=True)
            parts = lines["line"].str.rstrip("\r").str.split(sep, n=len(names), expand=True)
            if parts.shape[1] < len(names) or parts.iloc[:, :len(names)].isna().any().any():
                raise _fail(path, locate(), "a line has too few fields")
            df = parts.iloc[:, :len(names)].set_axis(names, axis=1)
        else:
            # no ``names=`` here: pandas would silently turn surplus leading fields into an index
            df = pd.read_csv(path, sep=sep, header=None, engine="c", quoting=csv.QUOTE_NONE,
                             skip_blank_lines=True,
                             dtype={names.index(n): str for n, k in kinds.items() if k in ("id", "str")})
            if df.shape[1] != len(names):
                raise _fail(path, locate(), f"expected {len(names)} fields per line, "
                                            f"found {df.shape[1]}")
            df.columns = names
    except pd.errors.EmptyDataError:  # (a ValueError: must come first)
        return pd.DataFrame({n: pd.Series(dtype=np.int64 if kinds.get(n) == "int" else object)
                             for n in names})
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, MalformedFileError):
            raise
        raise _fail(path, locate(), f"cannot parse ({exc})") from None
    df, first = _check_kinds(df, kinds)
    if first is not None:
        raise _fail(path, locate(first), f"row {first + 1} is malformed")
    return df


def read_csv_columns(path: str | Path, kinds: Mapping[str, Kind], *, sep: str = ",",
                     header: bool = True,
                     missing_ids: Literal["error", "drop"] = "error") -> tuple[pd.DataFrame, int]:
    """Read the named columns of a delimited file (quoted fields allowed).

    With ``header`` the names in ``kinds`` are header names; without, they are 0-based field
    positions written as strings (``"0"``, ``"2"``). Returns the frame and the number of rows
    dropped for a missing id (``missing_ids="drop"``). A column the file lacks raises an error
    that lists the columns it has.
    """
    path = Path(path)
    try:
        head = pd.read_csv(path, sep=sep, nrows=1 if not header else 0, engine="python" if len(sep) > 1 else "c",
                           header=0 if header else None)
    except pd.errors.EmptyDataError:
        raise MalformedFileError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise MalformedFileError(f"{path}, line 1: cannot parse ({exc})") from None
    columns = [str(c) for c in head.columns]
    missing = [c for c in kinds if c not in columns]
    if missing:
        what = "in the header" if header else "(fields are numbered from 0)"
        raise MalformedFileError(f"{path}, line 1: no column(s) {', '.join(map(repr, missing))} "
                                 f"{what}; the file has: {', '.join(columns)}")
    spec = [(columns.index(n), n, k) for n, k in kinds.items()]
    locate = lambda start=0: locate_bad_line(path, sep, spec, header=header, start_row=start)  # noqa: E731
    usecols = [columns.index(n) for n in kinds]
    try:
        df = pd.read_csv(path, sep=sep, header=0 if header else None, usecols=usecols,
                         engine="python" if len(sep) > 1 else "c",
                         dtype={columns.index(n): str for n, k in kinds.items() if k in ("id", "str")})
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise _fail(path, locate(), f"cannot parse ({exc})") from None
    df.columns = [columns[i] for i in sorted(usecols)]
    df = df[list(kinds)]
    dropped = 0
    ids = [n for n, k in kinds.items() if k == "id"]
    if missing_ids == "drop" and ids:
        empty = df[ids].isna().to_numpy() | (df[ids].astype(str).apply(lambda c: c.str.strip()) == "").to_numpy()
        keep = ~empty.any(axis=1)
        dropped = int((~keep).sum())
        df = df[keep].reset_index(drop=True)
    df, first = _check_kinds(df, kinds)
    if first is not None:
        if dropped:  # row numbers shifted by the drop: search from the top, ids may be empty
            no_ids = [(i, n, k) for i, n, k in spec if k != "id"]
            raise _fail(path, locate_bad_line(path, sep, no_ids, header=header), "a row is malformed")
        raise _fail(path, locate(first), f"row {first + 1} is malformed")
    return df, dropped


def line_of_row(path: str | Path, row: int, *, sep: str = ",", header: bool = True) -> int:
    """1-based line number of data row ``row`` (0-based, blank lines skipped) - for messages."""
    found = locate_bad_line(Path(path), sep, [], header=header, start_row=row, min_fields=10**9)
    return found[0] if found else -1
