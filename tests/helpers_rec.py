"""Tiny hand-made recommendation splits for fast tests (no files needed)."""
from __future__ import annotations

import numpy as np

from deca_tune.data.interactions import RecSplit


def tiny_split(n_users: int = 30, n_items: int = 40, per_user: int = 8, seed: int = 0) -> RecSplit:
    """Each user gets ``per_user`` distinct items; the last two go to valid and test."""
    rng = np.random.default_rng(seed)
    items = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :per_user]
    users = np.repeat(np.arange(n_users), per_user).reshape(n_users, per_user)
    train = np.stack([users[:, :-2].ravel(), items[:, :-2].ravel()], 1)
    valid = np.stack([users[:, -2], items[:, -2]], 1)
    test = np.stack([users[:, -1], items[:, -1]], 1)
    ratings = rng.integers(1, 6, size=len(train)).astype(float)
    return RecSplit("tiny", n_users, n_items, train, valid, valid[::2], test, test[::2],
                    ks=(3, 5), train_rating=ratings)


def rank_metric_bounds(scores: np.ndarray, relevant: np.ndarray, mask: np.ndarray, ks, eps: float,
                       ) -> dict[str, tuple[float, float]]:
    """``{"recall@K" | "ndcg@K": (lowest, highest)}`` over every ranking of ``scores`` moved by at
    most ``eps`` per entry: the range a full-ranking metric (``deca_tune.metrics.ranking``: binary
    relevance, ``mask`` pairs never ranked, users with a relevant pair averaged) can take on a
    machine whose scores differ from these by no more than ``eps``.

    The lowest value moves every relevant item down and every other item up by ``eps`` (an item
    within ``2 eps`` above-or-level counts as ranked first); the highest does the opposite (only an
    item more than ``2 eps`` above counts). Both metrics only grow when a relevant item passes an
    other one, so these are the bounds. With ``eps = 0`` the two agree unless scores tie exactly.
    """
    S = np.asarray(scores, dtype=np.float64)
    n_users, n_items = S.shape
    masked = np.zeros((n_users, n_items), dtype=bool)
    mask = np.asarray(mask, dtype=np.int64).reshape(-1, 2)
    masked[mask[:, 0], mask[:, 1]] = True
    rel = np.zeros((n_users, n_items), dtype=bool)
    relevant = np.asarray(relevant, dtype=np.int64).reshape(-1, 2)
    rel[relevant[:, 0], relevant[:, 1]] = True
    n_rel = rel.sum(1)
    evaluated = n_rel > 0
    others = ~masked & ~rel  # the items a relevant one competes with
    u, i = np.nonzero(rel & ~masked)  # a masked relevant pair is never ranked: always a miss
    s = S[u, i][:, None]
    sums: dict[tuple[str, str], float] = {}
    for side, ahead in (("low", S[u] >= s - 2 * eps), ("high", S[u] > s + 2 * eps)):
        count = (others[u] & ahead).sum(1)
        order = np.lexsort((count, u))  # per user, its relevant items best first
        uu, cc = u[order], count[order]
        first = np.searchsorted(uu, uu)  # index of the user's first relevant item
        pos = cc + np.arange(len(uu)) - first  # 0-based rank among the unmasked items
        for k in ks:
            hit = pos < k
            recall = np.bincount(uu, hit.astype(float), minlength=n_users)
            dcg = np.bincount(uu, hit / np.log2(pos + 2.0), minlength=n_users)
            ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[np.clip(n_rel, 1, k) - 1]
            sums[(side, f"recall@{k}")] = float((recall[evaluated] / n_rel[evaluated]).sum())
            sums[(side, f"ndcg@{k}")] = float((dcg[evaluated] / ideal[evaluated]).sum())
    n = max(int(evaluated.sum()), 1)
    return {metric: (sums[("low", metric)] / n, sums[("high", metric)] / n)
            for k in ks for metric in (f"recall@{k}", f"ndcg@{k}")}
