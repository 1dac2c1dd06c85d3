"""Negative samplers: vectorised rejection sampling that never returns a user's training positive.

A sampler proposes candidate items for many positives at once and re-draws, in rounds over the
whole batch, only the candidates that hit one of the user's training positives.

:class:`RowBatches` is the other batching, the DeCA authors' CDAE's: batches of user rows with
all their positives and zero entries of the batch matrix drawn without replacement.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from deca_tune.data.interactions import RecSplit
from deca_tune.registry import Registry

SAMPLERS: Registry = Registry("negative sampler")


class NegativeSampler:
    """Uniform over the items each user has not interacted with in training."""

    max_rounds = 1000
    #: up to this many user x item cells, membership is a lookup in a boolean table (one byte per
    #: cell); above, a binary search over the sorted positive keys (any data size)
    bitmap_cells = 1 << 25
    #: above the bitmap's size: from this many queries, they are sorted before the binary search
    sort_queries_from = 1 << 16

    def __init__(self, split: RecSplit) -> None:
        self.n_users, self.n_items = split.n_users, split.n_items
        keys = split.train[:, 0] * split.n_items + split.train[:, 1]
        self._positive_keys = np.unique(keys)
        self._bitmap: np.ndarray | None = None
        if self.n_users * self.n_items <= self.bitmap_cells:
            self._bitmap = np.zeros(self.n_users * self.n_items, dtype=bool)
            self._bitmap[keys] = True
        n_pos = np.bincount(split.train[:, 0], minlength=split.n_users)
        self._full_users = np.flatnonzero(n_pos >= split.n_items)
        self._train_items = split.train[:, 1]

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        if self._bitmap is not None:
            return self._bitmap[keys]
        order = None
        if len(keys) >= self.sort_queries_from:
            # queries in increasing order: the binary searches walk the positive keys forwards
            # and stay in the cache (10M-row file, 7.6M queries: 1.7 s instead of 10.5 s)
            order = np.argsort(keys)
            keys = keys[order]
        idx = np.searchsorted(self._positive_keys, keys)
        idx = np.minimum(idx, len(self._positive_keys) - 1)
        hit = self._positive_keys[idx] == keys
        if order is None:
            return hit
        out = np.empty_like(hit)
        out[order] = hit
        return out

    def _propose(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.n_items, size=n)

    def sample(self, users: np.ndarray, ratio: int, rng: np.random.Generator) -> np.ndarray:
        """``[len(users), ratio]`` negatives: item ids that are not training positives of that user."""
        users = np.asarray(users, dtype=np.int64)
        if len(self._full_users) and np.isin(users, self._full_users).any():
            bad = users[np.isin(users, self._full_users)][0]
            raise ValueError(f"user {bad} interacted with every item: no negative to sample")
        flat_users = np.repeat(users, ratio)
        items = self._propose(len(flat_users), rng)
        todo = np.flatnonzero(self.is_positive(flat_users, items))
        for _ in range(self.max_rounds):
            if len(todo) == 0:
                return items.reshape(len(users), ratio)
            items[todo] = self._propose(len(todo), rng)
            todo = todo[self.is_positive(flat_users[todo], items[todo])]
        raise RuntimeError("negative sampling did not converge; a user has almost every item")


@SAMPLERS.register("uniform")
class UniformSampler(NegativeSampler):
    """One uniformly random non-interacted item per draw (the paper's default)."""


@SAMPLERS.register("popularity")
class PopularitySampler(NegativeSampler):
    """Items drawn with probability proportional to popularity (WBPR, Gantner et al. 2012):
    the item of a uniformly random training interaction, rejecting the user's positives."""

    def _propose(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._train_items[rng.integers(0, len(self._train_items), size=n)]


@SAMPLERS.register("uniform-unrejected")
class UniformUnrejectedSampler(NegativeSampler):
    """Uniform over all items, the user's training positives NOT rejected: what the DeCA
    authors' sampler does under current scipy (its ``(tensor, j) in dok_matrix`` test never
    matches). Never a default; spec ``sampler: uniform-unrejected`` selects it, to measure how
    much of a difference to the authors' numbers the sampler explains (docs/denoising-methods.md)."""

    def sample(self, users: np.ndarray, ratio: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.n_items, size=(len(np.asarray(users)), ratio))


# ---------------------------------------------------------------------------- rows batching
class RowBatches:
    """The rows batching, the DeCA authors' CDAE training (their ``train.py:206-259``): all
    ``n_users`` rows permuted, ``batch_size`` rows per batch, rows without training positives
    dropped; per batch all positives of its rows (row by row) and ``#pos * neg_ratio`` zero
    entries of the batch's ``rows x n_items`` matrix drawn uniformly without replacement (never a
    training positive). The trainer draws its batches from its generator; the ensemble's twin
    from its own."""

    def __init__(self, split: RecSplit) -> None:
        self.n_users, self.n_items = split.n_users, split.n_items
        self._items = split.train[:, 1]
        self.counts = np.bincount(split.train[:, 0], minlength=split.n_users)
        self._order = np.lexsort((split.train[:, 1], split.train[:, 0]))
        self._start = np.concatenate([[0], np.cumsum(self.counts)])

    def epoch(self, rng: np.random.Generator, batch_size: int,
              ratio: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """One epoch's batches ``(users, pos, neg, neg_users)``, drawn lazily from ``rng``: the
        permutation first, then each batch's zero entries in turn."""
        perm = rng.permutation(self.n_users)
        for lo in range(0, self.n_users, batch_size):
            rows = perm[lo:lo + batch_size]
            rows = rows[self.counts[rows] > 0]
            if not len(rows):
                continue
            pos_row, pos = self.positives(rows)
            neg_row, neg = sample_zero_entries(len(rows), pos_row, pos, self.n_items, len(pos) * ratio, rng)
            yield rows[pos_row], pos, neg, rows[neg_row]

    def positives(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row index into rows, item)`` of every training positive of ``rows``, row by row."""
        counts = self.counts[rows]
        starts = self._start[rows]
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        idx = self._order[np.repeat(starts, counts) + within]
        return np.repeat(np.arange(len(rows)), counts), self._items[idx]


def sample_zero_entries(n_rows: int, pos_row: np.ndarray, pos: np.ndarray, n_items: int, k: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct zero entries of the ``n_rows x n_items`` batch matrix whose ones are at
    ``(pos_row, pos)``, uniformly without replacement (the authors' ``random.sample`` over the
    indices of ``torch.where(batch_matrix == 0)``): ``(row, item)`` arrays."""
    ones = np.unique(pos_row * n_items + pos)
    n_zero = n_rows * n_items - len(ones)
    if k > n_zero:
        raise ValueError(f"rows batching: {k} negatives requested but the batch has only {n_zero} zero entries")
    z = np.sort(rng.choice(n_zero, size=k, replace=False))
    # the z-th zero cell (row-major) is cell z + #{ones whose count of preceding zero cells <= z}
    cells = z + np.searchsorted(ones - np.arange(len(ones)), z, side="right")
    return cells // n_items, cells % n_items
