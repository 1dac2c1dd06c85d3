"""The recommendation split object shared by every data set, loader and trainer."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass
class RecSplit:
    """Implicit-feedback split with noisy training positives and clean evaluation sets.

    All interaction arrays are ``int64`` of shape ``[n, 2]`` holding dense ``(user, item)`` ids.
    ``train`` are the noisy positives every method trains on; ``valid``/``test`` are noisy
    held-out positives; ``valid_clean``/``test_clean`` the clean subsets (e.g. rating 5).
    """

    name: str
    n_users: int
    n_items: int
    train: np.ndarray
    valid: np.ndarray
    valid_clean: np.ndarray
    test: np.ndarray
    test_clean: np.ndarray
    ks: tuple[int, ...] = (3, 5, 10, 20)
    #: rating of each training row (NaN where unknown): interpretability, motivation study
    train_rating: np.ndarray | None = None
    #: planted truth per training row (True = noisy positive), ``synthetic`` only
    train_noisy: np.ndarray | None = None
    #: True when the noisy test set contains the validation interactions (DeCA authors' files)
    valid_in_test: bool = False
    #: file paths and SHA-256 sums of the sources, and anything else worth recording
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("train", "valid", "valid_clean", "test", "test_clean"):
            arr = np.asarray(getattr(self, key), dtype=np.int64).reshape(-1, 2)
            if len(arr) and (arr[:, 0].min() < 0 or arr[:, 0].max() >= self.n_users
                             or arr[:, 1].min() < 0 or arr[:, 1].max() >= self.n_items):
                raise ValueError(f"{self.name}: {key} has ids outside [0, n_users) x [0, n_items)")
            setattr(self, key, arr)

    def test_mask(self, protocol: str = "default") -> np.ndarray:
        """Pairs to exclude from the ranking when scoring the test sets.

        ``default``: training items, plus validation items when they are disjoint from the test
        set. ``paper``: the DeCA authors' quirk, training items plus clean validation items.
        """
        if protocol == "paper":
            # the authors mask their `valid.rating` file: rating-5 items on ML-100K, but every
            # validation item on Modcloth (loaders say which through meta["paper_masks"])
            held = self.valid if self.meta.get("paper_masks") == "valid" else self.valid_clean
            return np.concatenate([self.train, held])
        if protocol != "default":
            raise ValueError(f"unknown protocol {protocol!r}; choose one of: default, paper")
        if self.valid_in_test:
            return self.train
        return np.concatenate([self.train, self.valid])

    def fingerprint(self) -> str:
        """SHA-256 over the interactions a ``normal`` run reads (train, and valid for selection):
        part of the key of cached pre-trained models."""
        h = hashlib.sha256(f"{self.name}|{self.n_users}|{self.n_items}".encode())
        for arr in (self.train, self.valid, self.valid_clean):
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
            h.update(b"|")
        return h.hexdigest()

    def stats(self) -> dict:
        """The paper's Table 1 statistics for this split (plus the size of every part), and the
        rows the loader dropped (``dropped_*``: integer counts the loader put in ``meta``, e.g.
        ``dropped_duplicates``, ``dropped_unseen_item_valid``, ``dropped_unseen_item_test``)."""
        n_all = len(self.train) + len(self.valid) + len(self.test)
        if self.valid_in_test:
            n_all = len(self.train) + len(self.test)
        dropped = {k: int(v) for k, v in sorted(self.meta.items())
                   if k.startswith("dropped_") and isinstance(v, (int, np.integer))
                   and not isinstance(v, bool)} if isinstance(self.meta, dict) else {}
        return {
            "dataset": self.name,
            "users": int(self.n_users),
            "items": int(self.n_items),
            "train": int(len(self.train)),
            "valid": int(len(self.valid)),
            "test": int(len(self.test)),
            "valid_clean": int(len(self.valid_clean)),
            "test_clean": int(len(self.test_clean)),
            "interactions": int(n_all),
            "sparsity": round(1.0 - n_all / float(self.n_users * self.n_items), 5),
            **dropped,
        }
