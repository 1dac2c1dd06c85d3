"""Turn an interaction table into a :class:`RecSplit`: 8:1:1 splits, clean labels, re-indexing.

Shared by every loader that builds its own split (``ml-100k``, ``modcloth``, ``electronics``,
``csv``). All steps are vectorised and linear or ``n log n`` in the rows: ids are factorised
once to integer codes (:func:`encode_ids`, ``pandas.factorize``), and every later step (the
duplicate drop, the splits, the unseen-item drop, the dense re-indexing) works on those codes
with sorts, group ranks and boolean look-up tables; no per-row Python, no ``np.isin`` on text.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from deca_tune.data.interactions import RecSplit

TRAIN, VALID, TEST = 0, 1, 2
_EXACT_FLOAT = 2 ** 53  # integers up to this size survive a trip through float64


def _as_array(uniques: pd.Index | np.ndarray) -> np.ndarray:
    """Distinct ids as a plain numpy array: numbers as they are, text as ``<U`` (no objects)."""
    if isinstance(uniques, pd.Index) and isinstance(uniques.dtype, pd.StringDtype):
        return np.array(uniques.tolist(), dtype=str) if len(uniques) else np.array([], dtype=str)
    values = uniques.to_numpy() if isinstance(uniques, pd.Index) else np.asarray(uniques)
    if values.dtype == object:
        if all(isinstance(v, str) for v in values):
            return np.array(values.tolist(), dtype=str) if len(values) else np.array([], dtype=str)
        return values
    return values


def integral_ids(values: np.ndarray) -> np.ndarray | None:
    """``values`` (distinct ids as read) as ``int64`` when every one is an integral number
    (``1``, ``1.0``, ``+1``, ``1e3``, `` 7 ``), else ``None`` (the ids stay text)."""
    if len(values) == 0:
        return None
    if is_numeric_dtype(values.dtype) and not is_bool_dtype(values.dtype):
        num = pd.Series(values)
    else:
        num = pd.to_numeric(pd.Series(values, dtype=object).astype(str).str.strip(),
                            errors="coerce")
    if not is_numeric_dtype(num.dtype) or num.isna().any():
        return None
    if num.dtype.kind == "u":  # beyond int64
        return None if num.max() > np.iinfo(np.int64).max else num.to_numpy(np.int64)
    if num.dtype.kind in "iu":
        return num.to_numpy(np.int64)
    floats = num.to_numpy(np.float64)
    if not (np.isfinite(floats).all() and (np.abs(floats) <= _EXACT_FLOAT).all()
            and (np.floor(floats) == floats).all()):
        return None
    return floats.astype(np.int64)


def encode_ids(values: pd.Series | np.ndarray, *, numeric: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``int64`` codes ``0..n-1`` in the sorted order of the distinct ``values``, and those
    values (``ids[codes]`` gives the column back).

    With ``numeric``, ids that are all integral numbers (text such as ``"1"`` and ``"1.0"``)
    become one ``int64`` id each, so ``1`` and ``1.0`` are one user, sorted as numbers; any
    other column keeps its text (sorted as text). Missing values are an error: check first.
    """
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    codes = codes.astype(np.int64, copy=False)
    if (codes < 0).any():
        raise ValueError("encode_ids: the ids have missing values")
    ids = _as_array(uniques)
    if numeric and ids.dtype.kind not in "iu":
        as_int = integral_ids(ids)
        if as_int is not None:
            ids, remap = np.unique(as_int, return_inverse=True)
            codes = remap.astype(np.int64)[codes]
    return codes, ids


def _parts_from_rank(rank: np.ndarray, size: np.ndarray, ratios: tuple[float, float]) -> np.ndarray:
    """Row of rank ``r`` in a group of ``n``: train if r < floor(a n), valid if < floor((a+b) n)."""
    n_train = np.floor(ratios[0] * size + 1e-9).astype(np.int64)
    n_train_valid = np.floor((ratios[0] + ratios[1]) * size + 1e-9).astype(np.int64)
    return np.where(rank < n_train, TRAIN, np.where(rank < n_train_valid, VALID, TEST)).astype(np.int8)


def chrono_parts(users: np.ndarray, times: np.ndarray,
                 ratios: tuple[float, float] = (0.8, 0.1)) -> np.ndarray:
    """Per-user chronological split: each user's rows sorted by time (ties: original row order);
    the first floor(0.8 n) are train, up to floor(0.9 n) valid, the rest test.

    Returns the part (``TRAIN``/``VALID``/``TEST``) of every row, in the input order.
    """
    users = np.asarray(users)
    if users.dtype.kind not in "iub":  # text ids: sort integer codes instead (same groups)
        users = pd.factorize(users)[0]
    order = np.lexsort((np.asarray(times), users))  # a stable sort: ties keep the row order
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(users)])
    group_start = np.repeat(starts, sizes)
    rank = np.arange(len(users)) - group_start
    parts = np.empty(len(users), dtype=np.int8)
    parts[order] = _parts_from_rank(rank, np.repeat(sizes, sizes), ratios)
    return parts


def random_parts(n: int, seed: int, ratios: tuple[float, float] = (0.8, 0.1)) -> np.ndarray:
    """Global seeded random split of ``n`` rows: floor(0.8 n) train, up to floor(0.9 n) valid."""
    rank = np.empty(n, dtype=np.int64)
    rank[np.random.default_rng(seed).permutation(n)] = np.arange(n)
    return _parts_from_rank(rank, np.full(n, n), ratios)


def _pair_key(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """One ``int64`` per (user, item) pair, equal exactly for equal pairs."""
    def small_ints(a: np.ndarray) -> np.ndarray | None:
        if a.dtype.kind in "iu" and len(a) and a.min() >= 0:
            return a.astype(np.int64, copy=False)
        return None

    u, i = small_ints(users), small_ints(items)
    if u is None or i is None or (int(u.max()) + 1) * (int(i.max()) + 1) >= 2 ** 62:
        u = pd.factorize(users)[0].astype(np.int64)  # dense codes: the product fits
        i = pd.factorize(items)[0].astype(np.int64)
    return u * (int(i.max()) + 1 if len(i) else 1) + i


def dedupe_pairs(df: pd.DataFrame, time_col: str | None = "timestamp") -> tuple[pd.DataFrame, int]:
    """Keep one row per (user, item): the latest one (by time, then file order); rows stay in
    file order. Returns the frame and the number of rows dropped.

    One integer sort finds the repeated pairs; only their rows are ranked by time (a stable
    sort of that subset keeps their relative order, so the result is that of sorting all rows).
    """
    if len(df) == 0:
        return df, 0
    key = _pair_key(df["user"].to_numpy(), df["item"].to_numpy())
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    if not same.any():
        return df, 0
    in_group = np.zeros(len(df), dtype=bool)
    in_group[1:] |= same
    in_group[:-1] |= same
    rows = np.sort(order[in_group])  # the rows of repeated pairs, in file order
    sub_key = pd.Series(key[rows])
    if time_col is not None and time_col in df:
        by_time = df[time_col].iloc[rows].reset_index(drop=True).sort_values(kind="stable").index
        sub_key = sub_key.iloc[by_time.to_numpy()]
    last = sub_key.index.to_numpy()[~sub_key.duplicated(keep="last").to_numpy()]
    keep = np.ones(len(df), dtype=bool)
    keep[rows] = False
    keep[rows[last]] = True
    return df.iloc[np.flatnonzero(keep)], int(len(df) - keep.sum())


def _compact(codes: np.ndarray, ids: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-index the codes of the kept rows densely, in the order of ``ids`` (sorted)."""
    present = np.zeros(len(ids), dtype=bool)
    present[codes[keep]] = True
    new = np.cumsum(present, dtype=np.int64) - 1
    return new[codes[keep]], ids[present]


def build_split(name: str, df: pd.DataFrame, parts: np.ndarray, clean: np.ndarray, *,
                ks: tuple[int, ...], drop_unseen_items: bool = True, meta: dict | None = None,
                rating_col: str | None = "rating", user_ids: np.ndarray | None = None,
                item_ids: np.ndarray | None = None) -> RecSplit:
    """Assemble a :class:`RecSplit` from raw ``user``/``item`` columns and a part per row.

    ``clean`` marks the rows that are clean positives (used for ``valid_clean``/``test_clean``).
    With ``drop_unseen_items`` validation/test rows whose item never occurs in train are dropped
    (a model cannot rank an item it has no embedding for). Users and items are re-indexed to
    dense ``0..n-1`` in the sorted order of their original ids; the original ids are kept in
    ``meta["original_user_ids"]`` / ``meta["original_item_ids"]`` (numpy arrays). When the
    columns already hold codes from :func:`encode_ids`, pass its ids as ``user_ids`` /
    ``item_ids`` (the codes must follow their sorted order).
    """
    parts = np.asarray(parts)
    clean = np.asarray(clean, dtype=bool)
    meta = dict(meta or {})
    if user_ids is None:
        users_all, user_ids = encode_ids(df["user"])
    else:
        users_all = df["user"].to_numpy(dtype=np.int64)
    if item_ids is None:
        items_all, item_ids = encode_ids(df["item"])
    else:
        items_all = df["item"].to_numpy(dtype=np.int64)
    keep = np.ones(len(df), dtype=bool)
    if drop_unseen_items:
        in_train = np.zeros(len(item_ids), dtype=bool)
        in_train[items_all[parts == TRAIN]] = True
        seen = in_train[items_all]
        meta["dropped_unseen_item_valid"] = int(((parts == VALID) & ~seen).sum())
        meta["dropped_unseen_item_test"] = int(((parts == TEST) & ~seen).sum())
        keep = seen | (parts == TRAIN)
    users, user_ids = _compact(users_all, user_ids, keep)
    items, item_ids = _compact(items_all, item_ids, keep)
    pairs = np.stack([users, items], axis=1).astype(np.int64)
    kept_parts, kept_clean = parts[keep], clean[keep]
    rating = None
    if rating_col is not None and rating_col in df:
        rating = df[rating_col].to_numpy(dtype=np.float64)[keep][kept_parts == TRAIN]
    meta["original_user_ids"] = user_ids
    meta["original_item_ids"] = item_ids
    return RecSplit(
        name=name, n_users=len(user_ids), n_items=len(item_ids),
        train=pairs[kept_parts == TRAIN],
        valid=pairs[kept_parts == VALID],
        valid_clean=pairs[(kept_parts == VALID) & kept_clean],
        test=pairs[kept_parts == TEST],
        test_clean=pairs[(kept_parts == TEST) & kept_clean],
        ks=tuple(ks), train_rating=rating, meta=meta,
    )
