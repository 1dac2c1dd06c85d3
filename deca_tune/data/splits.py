"""Turn an interaction table into a :class:`RecSplit`: 8:1:1 splits, clean labels, re-indexing.

Shared by every loader that builds its own split (``ml-100k``, ``modcloth``, ``electronics``,
``csv``). All steps are vectorised (sorts, group ranks, ``np.unique``), no per-user loops.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from deca_tune.data.interactions import RecSplit

TRAIN, VALID, TEST = 0, 1, 2


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
    order = np.lexsort((np.arange(len(users)), np.asarray(times), users))  # stable by row
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


def dedupe_pairs(df: pd.DataFrame, time_col: str | None = "timestamp") -> tuple[pd.DataFrame, int]:
    """Keep one row per (user, item): the latest one (by time, then file order)."""
    if time_col is not None and time_col in df:
        df = df.sort_values(time_col, kind="stable")
    out = df[~df.duplicated(["user", "item"], keep="last")].sort_index()
    return out, int(len(df) - len(out))


def build_split(name: str, df: pd.DataFrame, parts: np.ndarray, clean: np.ndarray, *,
                ks: tuple[int, ...], drop_unseen_items: bool = True, meta: dict | None = None,
                rating_col: str | None = "rating") -> RecSplit:
    """Assemble a :class:`RecSplit` from raw ``user``/``item`` columns and a part per row.

    ``clean`` marks the rows that are clean positives (used for ``valid_clean``/``test_clean``).
    With ``drop_unseen_items`` validation/test rows whose item never occurs in train are dropped
    (a model cannot rank an item it has no embedding for). Users and items are re-indexed to
    dense ``0..n-1`` in the sorted order of their original ids; the original ids are kept in
    ``meta["original_user_ids"]`` / ``meta["original_item_ids"]`` (numpy arrays).
    """
    parts = np.asarray(parts)
    clean = np.asarray(clean, dtype=bool)
    meta = dict(meta or {})
    keep = np.ones(len(df), dtype=bool)
    if drop_unseen_items:
        train_items = df["item"].to_numpy()[parts == TRAIN]
        seen = np.isin(df["item"].to_numpy(), train_items)
        meta["dropped_unseen_item_valid"] = int(((parts == VALID) & ~seen).sum())
        meta["dropped_unseen_item_test"] = int(((parts == TEST) & ~seen).sum())
        keep = seen | (parts == TRAIN)
    user_ids, users = np.unique(df["user"].to_numpy()[keep], return_inverse=True)
    item_ids, items = np.unique(df["item"].to_numpy()[keep], return_inverse=True)
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
