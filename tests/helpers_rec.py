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
