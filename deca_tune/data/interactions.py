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

        ``default``: training and validation pairs (a validation pair is never ranked, nor
        counted, at test time: see :meth:`evaluation_sets`). ``paper``: the DeCA authors' rule,
        training pairs plus the pairs of their ``valid.rating`` file (clean validation on
        ML-100K, all validation on Modcloth: ``meta["paper_masks"]``).
        """
        if protocol == "paper":
            held = self.valid if self.meta.get("paper_masks") == "valid" else self.valid_clean
            return np.concatenate([self.train, held])
        if protocol != "default":
            raise ValueError(f"unknown protocol {protocol!r}; choose one of: default, paper")
        return np.concatenate([self.train, self.valid])

    def evaluation_sets(self, protocol: str = "default") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{split: (relevant pairs, masked pairs)}`` for ``valid``, ``valid_clean``, ``test``,
        ``test_clean`` under ``protocol``.

        ``default`` keeps every test split disjoint from validation: where a loader's test files
        contain the validation pairs (the DeCA authors' ML-100K: 9,901 of 20,293 noisy and 1,707 of
        3,594 clean test pairs; Adressa files may do the same), those pairs are removed from the
        relevant test sets and masked, so nothing model selection or the search saw counts at test
        time. ``paper`` keeps the authors' files and masks as they are (their Table 2 protocol).
        """
        mask = self.test_mask(protocol)
        test, test_clean = self.test, self.test_clean
        if protocol == "default":
            test, test_clean = minus(test, self.valid, self.n_items), minus(test_clean, self.valid, self.n_items)
        return {"valid": (self.valid, self.train), "valid_clean": (self.valid_clean, self.train),
                "test": (test, mask), "test_clean": (test_clean, mask)}

    def fingerprint(self) -> str:
        """SHA-256 over the interactions a ``normal`` run reads (train, and valid for selection):
        part of the key of cached pre-trained models."""
        h = hashlib.sha256(f"{self.name}|{self.n_users}|{self.n_items}".encode())
        for arr in (self.train, self.valid, self.valid_clean):
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
            h.update(b"|")
        return h.hexdigest()

    def stats(self) -> dict:
        """The paper's Table 1 statistics for this split (plus the size of every part, how many test
        pairs are validation pairs), and the
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
            # validation pairs inside the test files: removed from the test sets (and masked)
            # under the default protocol, kept under --protocol paper (evaluation_sets)
            "test_pairs_in_valid": int(len(self.test) - len(minus(self.test, self.valid, self.n_items))),
            "test_clean_pairs_in_valid": int(len(self.test_clean)
                                             - len(minus(self.test_clean, self.valid, self.n_items))),
            "interactions": int(n_all),
            "sparsity": round(1.0 - n_all / float(self.n_users * self.n_items), 5),
            **dropped,
        }


def minus(a: np.ndarray, b: np.ndarray, n_items: int) -> np.ndarray:
    """Rows of pair array ``a`` that are not in ``b`` (vectorised set difference)."""
    if not len(a) or not len(b):
        return a
    return a[~np.isin(a[:, 0] * n_items + a[:, 1], b[:, 0] * n_items + b[:, 1])]
