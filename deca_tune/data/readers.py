"""Read delimited interaction files fast (pandas), and name the file and line of any bad input.

The happy path is one ``pandas.read_csv`` call plus vectorised checks. Only when something is
wrong do we walk the file (with :mod:`csv` when fields may be quoted) to find the offending
line for the message. The walk skips the lines pandas skips (empty lines, and lines of only
spaces/tabs), so the n-th data row of the frame is the n-th record of the walk. A record that
runs over several lines (a quoted field with line breaks) is reported at the line where it
starts; a quote that is never closed is reported at the line where the quoted field opens.
"""
from __future__ import annotations

import csv
import warnings
from itertools import islice
from pathlib import Path
from typing import Iterator, Literal, Mapping

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

#: what a column must hold: ``int`` (integer ids/flags), ``number`` (any real), ``id`` (any
#: non-empty token; ids are re-indexed later), ``str`` (anything), ``time`` (numbers, or dates
#: and times, converted to ``float64``: numbers as they are, dates as nanoseconds since 1970 UTC)
Kind = Literal["int", "number", "id", "str", "time"]

#: the strings pandas reads as missing by default (``read_csv(na_values=...)`` documentation)
DEFAULT_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


class MalformedFileError(ValueError):
    """A data file has a line that does not match its format; the message names file and line."""


# ------------------------------------------------------------------------- walking the file

def _skipped(fields: list[str], sep: str, multi_line: bool) -> bool:
    """Whether pandas skips this record: an empty line, or one of only spaces/tabs (that are
    not the separator). ``,,`` is *not* skipped: pandas reads it as a row of missing values."""
    if not fields:
        return True
    if len(fields) != 1 or multi_line or fields[0] == "":
        return False
    blank = set(" \t") - set(sep)
    return all(ch in blank for ch in fields[0])


def _opens_unclosed_quote(path: Path, sep: str, start_line: int) -> bool:
    """Whether the record starting at line ``start_line`` runs into the end of the file inside a
    quoted field (re-read strictly from that line)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for _ in islice(fh, start_line - 1):
            pass
        try:
            next(csv.reader(fh, delimiter=sep, strict=True), None)
        except csv.Error as exc:
            return "end of data" in str(exc) or "field limit" in str(exc)
    return False


def iter_records(path: str | Path, sep: str, *, quoting: bool | None = None
                 ) -> Iterator[tuple[int, int, list[str]]]:
    """``(first line, last line, fields)`` of every record of a delimited file (1-based lines).

    ``quoting``: parse quoted fields as :mod:`csv` does (what ``pandas.read_csv`` does by
    default); ``False``: split every line at ``sep`` (``quoting=csv.QUOTE_NONE``). ``None``: the
    historical default, quoting for one-character separators other than a tab.
    """
    if quoting is None:
        quoting = len(sep) == 1 and sep != "\t"
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        if quoting and len(sep) == 1:
            reader = csv.reader(fh, delimiter=sep)
            last = 0
            try:
                for fields in reader:
                    yield last + 1, reader.line_num, fields
                    last = reader.line_num
            except csv.Error as exc:
                why = ("a quoted field opens on this line and is never closed (or holds more "
                       f"than {csv.field_size_limit()} characters)"
                       if "field limit" in str(exc) else f"cannot be read ({exc})")
                raise MalformedFileError(f"{path}, line {last + 1}: {why}") from None
        else:
            for i, line in enumerate(fh, start=1):
                text = line.rstrip("\r\n")
                yield i, i, text.split(sep) if text else []


def _bad_field(value: str, kind: Kind) -> str | None:
    """Why ``value`` is not a valid ``kind`` field (``None`` when it is)."""
    value = value.strip()
    if kind == "str":
        return None
    if value == "":
        return "is empty"
    if kind in ("id", "time"):
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


def _spans(first: int, last: int) -> str:
    if last <= first:
        return ""
    return (f" (this record runs on to line {last}: a quoted field holds line breaks; is a "
            f"quote unbalanced?)")


def locate_bad_line(path: Path, sep: str, kinds: list[tuple[int, str, Kind]], *,
                    header: bool = False, min_fields: int = 0, max_fields: int | None = None,
                    start_row: int = 0, quoting: bool | None = None,
                    width_of: str = "expected") -> tuple[int, str] | None:
    """First line (1-based number, reason) whose fields break the format; ``None`` if all fine.

    ``kinds`` lists (field position, field name, kind). Lines pandas skips are skipped (see
    :func:`_skipped`). ``start_row`` skips that many data rows before checking (to look up a row
    pandas flagged). The line of a record is where it starts; a quoted field that is never
    closed is reported where it opens. ``width_of`` words the field-count messages (e.g.
    ``"the header has"``).
    """
    path = Path(path)
    quoting = (len(sep) == 1 and sep != "\t") if quoting is None else quoting
    row = -1
    first = last = 0
    for i, (first, last, fields) in enumerate(iter_records(path, sep, quoting=quoting)):
        if header and i == 0:
            continue
        if _skipped(fields, sep, last > first):
            continue
        row += 1
        if row < start_row:
            continue
        why = None
        if len(fields) < min_fields:
            why = f"has {len(fields)} field(s), {width_of} at least {min_fields}" \
                if width_of == "expected" else f"has {len(fields)} field(s), {width_of} {min_fields}"
        elif max_fields is not None and len(fields) > max_fields:
            why = f"has {len(fields)} fields, {width_of} at most {max_fields}" \
                if width_of == "expected" else f"has {len(fields)} fields, {width_of} {max_fields}"
        else:
            for pos, name, kind in kinds:
                if pos >= len(fields):
                    why = f"has no column {name!r} (only {len(fields)} fields)"
                    break
                bad = _bad_field(fields[pos], kind)
                if bad:
                    why = f"column {name!r} {bad}"
                    break
        if why is not None:
            if quoting and last > first and _opens_unclosed_quote(path, sep, first):
                return first, "a quoted field opens on this line and is never closed"
            return first, why + _spans(first, last)
    if quoting and last > first and _opens_unclosed_quote(path, sep, first):
        return first, "a quoted field opens on this line and is never closed"
    return None


def line_of_row(path: str | Path, row: int, *, sep: str = ",", header: bool = True,
                quoting: bool | None = None) -> int:
    """1-based line number where data row ``row`` (0-based, as pandas counts) starts."""
    found = locate_bad_line(Path(path), sep, [], header=header, start_row=row, min_fields=10**9,
                            quoting=quoting)
    return found[0] if found else -1


def record_of_row(path: str | Path, row: int, *, sep: str = ",", header: bool = True,
                  quoting: bool | None = None) -> tuple[int, int, list[str]] | None:
    """``(first line, last line, fields)`` of data row ``row`` (0-based, as pandas counts)."""
    quoting = (len(sep) == 1 and sep != "\t") if quoting is None else quoting
    n = -1
    for i, (first, last, fields) in enumerate(iter_records(path, sep, quoting=quoting)):
        if (header and i == 0) or _skipped(fields, sep, last > first):
            continue
        n += 1
        if n == row:
            return first, last, fields
    return None


def _fail(path: Path, found: tuple[int, str] | None, fallback: str) -> MalformedFileError:
    if found is None:
        return MalformedFileError(f"{path}: {fallback}")
    line, why = found
    return MalformedFileError(f"{path}, line {line}: {why}")


# ------------------------------------------------------------------------- vectorised checks

def _first_true(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _blank(col: pd.Series) -> np.ndarray:
    """Missing or whitespace-only values of a column (vectorised)."""
    missing = col.isna().to_numpy(dtype=bool).copy()
    if not is_numeric_dtype(col):
        text = col.astype("str") if col.dtype == object else col
        missing |= (text.str.strip() == "").fillna(True).to_numpy(dtype=bool)
    return missing


def parse_times(col: pd.Series) -> tuple[np.ndarray, int | None, str]:
    """A time column as ``float64`` (numbers as they are, dates as ns since 1970 UTC).

    Returns (values, first bad row or ``None``, why it is bad). The column is numeric when its
    first value is a number; then every value must be a finite number; otherwise every value
    must be a date (``ISO 8601`` quickly, any other format pandas reads more slowly).
    """
    blank = _blank(col)
    if blank.any():
        return np.zeros(0), _first_true(blank), "is empty"
    if is_numeric_dtype(col) and not is_bool_dtype(col):
        vals = col.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(vals)
        return vals, _first_true(bad), "is not a finite number"
    num = pd.to_numeric(col.iloc[:1], errors="coerce")
    if num.notna().all():  # a column of numbers with a non-number somewhere
        vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(vals)
        return vals, _first_true(bad), "is not a number (the column holds numbers)"
    dates = None
    for fmt in ("ISO8601", "mixed"):
        try:
            dates = pd.to_datetime(col, errors="coerce", utc=True, format=fmt)
        except (ValueError, TypeError):
            continue
        if dates.notna().all():
            break
    bad = dates.isna().to_numpy()
    if bad.any():
        return np.zeros(0), _first_true(bad), "is neither a number nor a date"
    return dates.astype("int64").to_numpy().astype(np.float64), None, ""


def _check_kinds(df: pd.DataFrame, kinds: Mapping[str, Kind]
                 ) -> tuple[pd.DataFrame, int | None, str | None, str]:
    """Convert columns to their kinds; return the frame and the first bad (row, column, why)."""
    first, first_col, first_why = None, None, ""
    out = {}
    for name, kind in kinds.items():
        col = df[name]
        row, why = None, ""
        if kind in ("int", "number"):
            num = col if is_numeric_dtype(col) and not is_bool_dtype(col) else \
                pd.to_numeric(col.astype(object), errors="coerce")
            vals = num.to_numpy(dtype=np.float64, na_value=np.nan)
            ok = np.isfinite(vals)
            if kind == "int":
                ok &= np.equal(np.floor(vals, where=ok, out=np.zeros_like(vals)), vals)
            row, why = _first_true(~ok), "is malformed"
            out[name] = num
        elif kind == "id":
            row, why = _first_true(_blank(col)), "is empty"
            out[name] = col
        elif kind == "time":
            vals, row, why = parse_times(col)
            out[name] = vals if row is None else col
        else:
            out[name] = col
        if row is not None and (first is None or row < first):
            first, first_col, first_why = row, name, why
    df = df.assign(**out)
    for name, kind in kinds.items():
        if kind == "int" and first is None:
            df[name] = df[name].astype(np.int64)
    return df, first, first_col, first_why


# ------------------------------------------------------------------------- readers

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
        start_row=start, quoting=False)
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
    df, first, _, _ = _check_kinds(df, kinds)
    if first is not None:
        raise _fail(path, locate(first), f"row {first + 1} is malformed")
    return df


def _header_columns(path: Path, sep: str, header: bool) -> list[str]:
    """The column names (``header``) or ``"0".."n-1"`` (no header: n fields on the first line)."""
    try:
        head = pd.read_csv(path, sep=sep, nrows=0 if header else 1,
                           engine="python" if len(sep) > 1 else "c", header=0 if header else None)
    except pd.errors.EmptyDataError:
        raise MalformedFileError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise MalformedFileError(f"{path}, line 1: cannot parse ({exc})") from None
    return [str(c) for c in head.columns]


def _row_message(path: Path, sep: str, header: bool, quoting: bool, row: int, pos: int,
                 name: str, kind: Kind, why: str, n_fields: int, width_of: str) -> MalformedFileError:
    """The error for data row ``row`` whose column ``name`` (field ``pos``) is bad."""
    rec = record_of_row(path, row, sep=sep, header=header, quoting=quoting)
    if rec is None:
        return MalformedFileError(f"{path}: row {row + 1}: column {name!r} {why}")
    first, last, fields = rec
    if quoting and last > first and _opens_unclosed_quote(path, sep, first):
        return MalformedFileError(f"{path}, line {first}: a quoted field opens on this line and "
                                  f"is never closed")
    if pos >= len(fields):
        return MalformedFileError(f"{path}, line {first}: has {len(fields)} field(s), "
                                  f"{width_of} {n_fields}: no value for column {name!r}"
                                  f"{_spans(first, last)}")
    shown = fields[pos]
    if why == "is malformed":
        why = _bad_field(shown, kind) or f"is malformed ({shown!r})"
    elif why != "is empty":
        why = f"value {shown!r} {why}"
    label = "time column" if kind == "time" else "column"
    return MalformedFileError(f"{path}, line {first}: {label} {name!r} {why}{_spans(first, last)}")


def _exact_ids(df: pd.DataFrame, path: Path, sep: str, header: bool, columns: list[str],
               ids: list[str]) -> pd.DataFrame:
    """Id columns as inferred, made exact: integral numbers as ``int64``, text as text. A column
    pandas could not read losslessly either way (non-integral or huge numbers, mixed types
    across its parsing chunks, booleans) is read again as text."""
    again = []
    for c in ids:
        col = df[c]
        kind = col.dtype.kind
        if isinstance(col.dtype, pd.StringDtype) or (kind in "iu" and not is_bool_dtype(col)):
            continue
        if kind == "f":
            vals = col.to_numpy()
            if (np.isfinite(vals).all() and (np.abs(vals) <= 2 ** 53).all()
                    and (np.floor(vals) == vals).all()):
                df[c] = vals.astype(np.int64)
                continue
        again.append(c)
    if again:
        pos = sorted(columns.index(c) for c in again)
        text = pd.read_csv(path, sep=sep, header=0 if header else None, usecols=pos,
                           dtype={i: str for i in pos}, keep_default_na=False, na_values=[],
                           engine="python" if len(sep) > 1 else "c", skip_blank_lines=True)
        text.columns = [columns[i] for i in pos]
        for c in again:
            df[c] = text[c].to_numpy()
    return df


def read_csv_columns(path: str | Path, kinds: Mapping[str, Kind], *, sep: str = ",",
                     header: bool = True, missing_ids: Literal["error", "drop"] = "error",
                     exact_ids: bool = False, strict_fields: bool = False
                     ) -> tuple[pd.DataFrame, int]:
    """Read the named columns of a delimited file (quoted fields allowed).

    With ``header`` the names in ``kinds`` are header names; without, they are 0-based field
    positions written as strings (``"0"``, ``"2"``). Returns the frame and the number of rows
    dropped for a missing id (``missing_ids="drop"``). A column the file lacks raises an error
    that lists the columns it has. With ``strict_fields`` so does a row with more fields than
    the header (or, without a header, than line 1), naming the line and both counts (every
    column is then parsed, not only those in ``kinds``); without, surplus fields are ignored.
    ``id`` columns are read as text (pandas' missing-value strings are missing), or with
    ``exact_ids`` verbatim (``NA``, ``null``, ... are ids like any other; only a blank id is
    missing), a column of integral numbers then as ``int64``.
    """
    path = Path(path)
    columns = _header_columns(path, sep, header)
    missing = [c for c in kinds if c not in columns]
    if missing:
        what = "in the header" if header else "(fields are numbered from 0)"
        raise MalformedFileError(f"{path}, line 1: no column(s) {', '.join(map(repr, missing))} "
                                 f"{what}; the file has: {', '.join(columns)}")
    n = len(columns)
    width_of = "the header has" if header else "line 1 has"
    quoting = len(sep) == 1
    spec = [(columns.index(c), c, k) for c, k in kinds.items()]
    locate = lambda start=0, spec=spec: locate_bad_line(  # noqa: E731
        path, sep, spec, header=header, start_row=start, max_fields=n, quoting=quoting,
        width_of=width_of)
    # exact ids are read as pandas infers them (text comes as text, numbers as numbers: far
    # faster than ``dtype=str``) and checked by ``_exact_ids`` below
    dtype = {columns.index(c): str for c, k in kinds.items()
             if k == "str" or (k == "id" and not exact_ids)}
    na: dict = {}
    if exact_ids:
        ids = {columns.index(c) for c, k in kinds.items() if k == "id"}
        na = {"keep_default_na": False, "na_values": {i: DEFAULT_NA for i in range(n) if i not in ids}}
    # strict: every column is read (no ``usecols``), as pandas checks the field count of each
    # row only then; the first data row is checked below (pandas makes surplus fields an index)
    usecols = None if strict_fields else sorted(columns.index(c) for c in kinds)
    try:
        with warnings.catch_warnings():  # mixed types: a bad value (reported below) or an
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # unused column
            df = pd.read_csv(path, sep=sep, header=0 if header else None, dtype=dtype,
                             usecols=usecols, engine="python" if len(sep) > 1 else "c",
                             skip_blank_lines=True, **na)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame({i: pd.Series(dtype=object) for i in (usecols or range(n))})
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        if not strict_fields:
            locate = lambda start=0, spec=spec: locate_bad_line(  # noqa: E731
                path, sep, spec, header=header, start_row=start, quoting=quoting)
        raise _fail(path, locate(), f"cannot parse ({exc})") from None
    if strict_fields and (df.shape[1] != n or not (isinstance(df.index, pd.RangeIndex)
                                                   and df.index.start == 0 and df.index.step == 1)):
        raise _fail(path, locate(0, []), f"a row has more fields than {width_of[:-4]} ({n})")
    df.columns = [columns[i] for i in usecols] if usecols is not None else columns
    df = df[list(kinds)]
    if exact_ids:
        df = _exact_ids(df, path, sep, header, columns, [c for c, k in kinds.items() if k == "id"])
    dropped = 0
    ids = [c for c, k in kinds.items() if k == "id"]
    if missing_ids == "drop" and ids:
        keep = ~np.column_stack([_blank(df[c]) for c in ids]).any(axis=1)
        dropped = int((~keep).sum())
        df = df[keep].reset_index(drop=True)
    df, first, col, why = _check_kinds(df, kinds)
    if first is not None:
        if dropped:  # row numbers shifted by the drop: search from the top, ids may be empty
            no_ids = [(i, c, k) for i, c, k in spec if k not in ("id", "time")]
            raise _fail(path, locate(0, no_ids), f"a row is malformed (column {col!r} {why})")
        raise _row_message(path, sep, header, quoting, first, columns.index(col), col, kinds[col],
                           why, n, width_of)
    return df, dropped
