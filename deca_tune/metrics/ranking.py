"""Full-ranking Recall@K and NDCG@K, batched over users with ``torch.topk`` (no per-user loop).

For each evaluated user every item is scored, the masked items (training items, and validation
items when scoring test) are excluded, and the top max(K) items are compared with the user's
relevant held-out items. Binary relevance; IDCG over min(|relevant|, K); averages over users with
at least one relevant item. :func:`masked_top_k` is the one masked top-k of the project (also
behind ``python -m deca_tune.recommend``).

:class:`RankingEvaluator` scores several splits in one pass (issue 13): per batch of the union of
their users, the model scores every item once; the splits that share a mask share one top-k, and
a mask that extends another (test: training + validation items, ``RecSplit.test_mask`` puts the
training pairs first; valid: training items) only adds its extra pairs to the already masked
matrix before the next top-k. Hits are looked up in the
sorted (user, item) keys of each split's relevant pairs, so no dense relevance matrix is built.
:func:`rank_metrics` is the one-split case.

Cost on a CPU (issue 21, 125,000 items, one thread): the score matrix is the work; two things
keep it near the matrix product's own cost. A batch's score matrix is kept under
:data:`CPU_SCORE_BYTES` (:func:`score_batch_users`): glibc serves a larger block with a fresh
``mmap`` each time, so every batch paid its page faults (a 67 MB batch's product took 2.5x a
reused buffer's time; 512 MB batches, the old default, 2.4x). And many items get
:func:`top_k_indices`' block top-k (one ``amax`` pass, then ``topk`` of a few blocks), 3-4x
faster than ``torch.topk`` over the whole row, with the same top-k values.
"""
from __future__ import annotations

from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

#: most bytes of one batch's score matrix on a CPU: below glibc's largest ``mmap`` threshold
#: (32 MiB), so the blocks are reused from the heap instead of mapped and faulted in again
CPU_SCORE_BYTES = 30 * 2**20
#: items per block of :func:`top_k_indices`; rows shorter than ``BLOCK_MIN_BLOCKS * k`` blocks
#: take ``torch.topk`` directly
TOPK_BLOCK = 256
BLOCK_MIN_BLOCKS = 8


def score_batch_users(batch_users: int, n_items: int, device: torch.device) -> int:
    """Users scored at once: ``batch_users``, on a CPU at most as many as keep the
    ``[users, n_items]`` float32 score matrix within :data:`CPU_SCORE_BYTES`."""
    if device.type != "cpu":
        return max(1, int(batch_users))
    return max(1, min(int(batch_users), CPU_SCORE_BYTES // (4 * max(1, n_items))))


def top_k_indices(scores: torch.Tensor, k: int, values: bool = False,
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The columns of each row's ``k`` largest scores, best first (``torch.topk(scores, k,
    dim=1)``; with ``values``, ``(values, indices)``).

    Rows of at least ``BLOCK_MIN_BLOCKS * k`` blocks of :data:`TOPK_BLOCK` items take the block
    top-k: the maxima of the full blocks (one pass), the ``k`` blocks with the largest maxima,
    and ``torch.topk`` over their items plus the last, partial block's. Exact: an item outside
    those blocks has ``k`` items at least as large (each chosen block's maximum, all in
    different blocks), so it is not above the ``k``-th value; the values equal ``torch.topk``'s
    and only the order among equal scores may differ (``torch.topk`` leaves it unspecified too)."""
    b, n = scores.shape
    n_blocks = n // TOPK_BLOCK
    if k <= 0 or n_blocks < BLOCK_MIN_BLOCKS * k:
        top = torch.topk(scores, k, dim=1)
        return (top.values, top.indices) if values else top.indices
    full = n_blocks * TOPK_BLOCK
    block_max = scores[:, :full].reshape(b, n_blocks, TOPK_BLOCK).amax(2)
    blocks = torch.topk(block_max, k, dim=1).indices
    offsets = torch.arange(TOPK_BLOCK, device=scores.device)
    cols = (blocks.unsqueeze(2) * TOPK_BLOCK + offsets).reshape(b, -1)
    if full < n:  # the partial last block: always a candidate
        tail = torch.arange(full, n, device=scores.device).expand(b, n - full)
        cols = torch.cat([cols, tail], 1)
    top = torch.topk(scores.gather(1, cols), k, dim=1)
    idx = cols.gather(1, top.indices)
    return (top.values, idx) if values else idx


class PairIndex:
    """(user, item) pairs grouped by user, to build the dense rows of any batch of users at once."""

    def __init__(self, pairs: np.ndarray, n_users: int) -> None:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        order = np.argsort(pairs[:, 0], kind="stable")
        self.items = pairs[order, 1]
        self.starts = np.searchsorted(pairs[order, 0], np.arange(n_users + 1))

    def pairs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, items)``: for each of ``users`` (row ``r`` of the batch) its items."""
        lo, hi = self.starts[users], self.starts[users + 1]
        counts = hi - lo
        row = np.repeat(np.arange(len(users)), counts)
        pos = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        return row, self.items[pos]

    def rows(self, users: np.ndarray, n_items: int, device: torch.device) -> torch.Tensor:
        """Boolean ``[len(users), n_items]``: True at each user's items."""
        row, items = self.pairs(users)
        out = torch.zeros(len(users), n_items, dtype=torch.bool, device=device)
        out[torch.as_tensor(row, device=device), torch.as_tensor(items, device=device)] = True
        return out


def masked_top_k(score_fn: ScoreFn, users: np.ndarray, mask: PairIndex, n_items: int, k: int,
                 batch_users: int = 1024, device: torch.device | str = "cpu",
                 ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Per batch of ``users``: ``(users, scores [B, k], items [B, k])`` of the ``k`` best items,
    the ``mask``'s pairs excluded (their score is ``-inf``; users with fewer than ``k`` unmasked
    items get ``-inf`` entries at the end)."""
    device = torch.device(device)
    k = min(k, n_items)
    step = score_batch_users(batch_users, n_items, device)
    for start in range(0, len(users), step):
        batch = users[start:start + step]
        scores = score_fn(torch.as_tensor(batch, device=device)).float()
        scores = _masked(scores, mask, batch, device, inplace=False)
        values, items = top_k_indices(scores, k, values=True)
        yield batch, values, items


def _masked(scores: torch.Tensor, index: PairIndex, batch: np.ndarray, device: torch.device,
            inplace: bool) -> torch.Tensor:
    """``scores`` with ``-inf`` at the ``index`` pairs of the batch's users (a new tensor unless
    ``inplace``: a score function may return a view of something it keeps)."""
    row, items = index.pairs(batch)
    where = (torch.as_tensor(row, device=device), torch.as_tensor(items, device=device))
    value = torch.tensor(float("-inf"), device=device, dtype=scores.dtype)
    return scores.index_put_(where, value) if inplace else scores.index_put(where, value)


def _keys(pairs: np.ndarray, n_items: int) -> np.ndarray:
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return np.unique(pairs[:, 0] * n_items + pairs[:, 1])


class RankingEvaluator:
    """Recall@K and NDCG@K of several splits from one scoring pass.

    ``sets``: ``{name: (relevant pairs [n, 2], masked pairs [m, 2])}``. :meth:`evaluate` scores
    the union of the chosen splits' users once per batch of ``batch_users``; splits with equal
    masks share one top-k, and masks are applied in order of size, each one whose first rows are
    the previous mask adding only the rest (any other starts again from the raw scores). Built
    once per split (the trainer keeps one).
    """

    def __init__(self, sets: Mapping[str, tuple[np.ndarray, np.ndarray]], n_users: int, n_items: int,
                 ks: Sequence[int], batch_users: int = 1024) -> None:
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.ks = sorted({int(k) for k in ks})
        self.max_k = min(max(self.ks), self.n_items)
        self.batch_users = int(batch_users)
        self.names = list(sets)
        masks: list[np.ndarray] = []  # distinct masks, as given
        self._mask_of: dict[str, int] = {}
        self._rel_keys: dict[str, np.ndarray] = {}
        self._users: dict[str, np.ndarray] = {}
        self._n_rel: dict[str, np.ndarray] = {}
        for name, (relevant, mask) in sets.items():
            mask = np.asarray(mask, dtype=np.int64).reshape(-1, 2)
            j = next((j for j, other in enumerate(masks) if other is mask or (
                other.shape == mask.shape and np.array_equal(other, mask))), None)
            if j is None:
                j = len(masks)
                masks.append(mask)
            self._mask_of[name] = j
            rel = _keys(relevant, self.n_items)
            self._rel_keys[name] = rel
            self._users[name] = np.unique(rel // self.n_items)
            self._n_rel[name] = np.bincount(rel // self.n_items, minlength=self.n_users)
        #: the masks in the order applied: (mask id, pairs to add, starts from the raw scores);
        #: a mask whose first rows are the previous mask (``test_mask`` = train + valid) adds
        #: only the rest, any other one starts again from the raw scores
        self._steps: list[tuple[int, PairIndex, bool]] = []
        previous: np.ndarray | None = None
        for j in sorted(range(len(masks)), key=lambda j: len(masks[j])):
            mask = masks[j]
            nested = previous is not None and len(previous) <= len(mask) and np.array_equal(
                mask[:len(previous)], previous)
            self._steps.append((j, PairIndex(mask[len(previous):] if nested else mask, self.n_users),
                                not nested))
            previous = mask
        self._on_device: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def users(self, names: Sequence[str] | None = None) -> np.ndarray:
        """The users :meth:`evaluate` scores for ``names``: those with a relevant pair in any."""
        names = self.names if names is None else list(names)
        return np.unique(np.concatenate([self._users[n] for n in names])) if names else \
            np.zeros(0, dtype=np.int64)

    def _device_tables(self, name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (name, str(device))
        if key not in self._on_device:
            self._on_device[key] = (torch.as_tensor(self._rel_keys[name], device=device),
                                    torch.as_tensor(self._n_rel[name], device=device))
        return self._on_device[key]

    @torch.no_grad()
    def evaluate(self, score_fn: ScoreFn, names: Sequence[str] | None = None,
                 device: torch.device | str = "cpu", owned_scores: bool = False,
                 ) -> dict[str, dict[str, float]]:
        """``{name: {"recall@K": .., "ndcg@K": .., "users": n}}`` for ``names`` (default: all).

        ``owned_scores``: ``score_fn`` returns a new tensor each call (every rec method's
        ``score_all``), so the first mask may be written into it instead of into a copy, when no
        later mask starts again from the raw scores: one pass over the score matrix less."""
        device = torch.device(device)
        names = self.names if names is None else [n for n in self.names if n in set(names)]
        needed = {self._mask_of[n] for n in names}
        last = max((i for i, (j, _, _) in enumerate(self._steps) if j in needed), default=-1)
        steps = self._steps[:last + 1]
        by_mask = {j: [n for n in names if self._mask_of[n] == j] for j in needed}
        users = self.users(names)
        ks, max_k, n_items = self.ks, self.max_k, self.n_items
        sums = {n: {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")} for n in names}
        discounts = 1.0 / torch.log2(torch.arange(2, max_k + 2, device=device, dtype=torch.float64))
        idcg_table = torch.cumsum(discounts, 0)
        # the raw scores are needed again only if a mask after the first starts from them
        reuse_raw = owned_scores and not any(restart for _, _, restart in steps[1:])
        step = score_batch_users(self.batch_users, n_items, device)
        for start in range(0, len(users), step):
            batch = users[start:start + step]
            batch_t = torch.as_tensor(batch, device=device)
            raw = score_fn(batch_t).float()
            current: torch.Tensor | None = None
            for j, extra, restart in steps:
                if current is None or restart:
                    current = _masked(raw, extra, batch, device, inplace=reuse_raw)
                else:
                    current = _masked(current, extra, batch, device, inplace=True)
                if j not in needed:
                    continue
                top = top_k_indices(current, max_k)
                for name in by_mask[j]:
                    rel_keys, n_rel_all = self._device_tables(name, device)
                    rows = torch.nonzero(n_rel_all[batch_t] > 0).squeeze(1)
                    if rows.numel() == 0:
                        continue
                    row_users = batch_t[rows]
                    keys = row_users[:, None] * n_items + top[rows]
                    pos = torch.searchsorted(rel_keys, keys).clamp_(max=len(rel_keys) - 1)
                    hits = (rel_keys[pos] == keys).double()
                    n_rel = n_rel_all[row_users].double()
                    acc = sums[name]
                    for k in ks:
                        kk = min(k, max_k)
                        h = hits[:, :kk]
                        acc[f"recall@{k}"] += float((h.sum(1) / n_rel).sum())
                        dcg = (h * discounts[:kk]).sum(1)
                        idcg = idcg_table[(torch.clamp(n_rel, max=kk) - 1).long()]
                        acc[f"ndcg@{k}"] += float((dcg / idcg).sum())
        out: dict[str, dict[str, float]] = {}
        for name in names:
            n = len(self._users[name])
            out[name] = {key: val / max(n, 1) for key, val in sums[name].items()}
            out[name]["users"] = float(n)
        return out


def rank_metrics(score_fn: ScoreFn, relevant: np.ndarray, mask: np.ndarray, n_users: int,
                 n_items: int, ks: Sequence[int], batch_users: int = 1024,
                 device: torch.device | str = "cpu", owned_scores: bool = False) -> dict[str, float]:
    """Recall@K and NDCG@K of ``score_fn`` (users -> ``[B, n_items]`` scores).

    ``relevant``: ``[n, 2]`` held-out (user, item) pairs; ``mask``: pairs never ranked.
    Returns ``{"recall@K": ..., "ndcg@K": ..., "users": n_evaluated}``.
    """
    evaluator = RankingEvaluator({"split": (relevant, mask)}, n_users, n_items, ks, batch_users)
    return evaluator.evaluate(score_fn, device=device, owned_scores=owned_scores)["split"]
