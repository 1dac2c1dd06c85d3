"""Full-ranking Recall@K and NDCG@K, batched over users with ``torch.topk`` (no per-user loop).

For each evaluated user every item is scored, the masked items (training items, and validation
items when scoring test) are excluded, and the top max(K) items are compared with the user's
relevant held-out items. Binary relevance; IDCG over min(|relevant|, K); averages over users with
at least one relevant item. :func:`masked_top_k` is the one masked top-k of the project (also
behind ``python -m deca_tune.recommend``).
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


class PairIndex:
    """(user, item) pairs grouped by user, to build the dense rows of any batch of users at once."""

    def __init__(self, pairs: np.ndarray, n_users: int) -> None:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        order = np.argsort(pairs[:, 0], kind="stable")
        self.items = pairs[order, 1]
        self.starts = np.searchsorted(pairs[order, 0], np.arange(n_users + 1))

    def rows(self, users: np.ndarray, n_items: int, device: torch.device) -> torch.Tensor:
        """Boolean ``[len(users), n_items]``: True at each user's items."""
        lo, hi = self.starts[users], self.starts[users + 1]
        counts = hi - lo
        row = np.repeat(np.arange(len(users)), counts)
        pos = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        out = torch.zeros(len(users), n_items, dtype=torch.bool, device=device)
        out[torch.as_tensor(row, device=device), torch.as_tensor(self.items[pos], device=device)] = True
        return out


def masked_top_k(score_fn: ScoreFn, users: np.ndarray, mask: PairIndex, n_items: int, k: int,
                 batch_users: int = 1024, device: torch.device | str = "cpu",
                 ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Per batch of ``users``: ``(users, scores [B, k], items [B, k])`` of the ``k`` best items,
    the ``mask``'s pairs excluded (their score is ``-inf``; users with fewer than ``k`` unmasked
    items get ``-inf`` entries at the end)."""
    device = torch.device(device)
    k = min(k, n_items)
    for start in range(0, len(users), batch_users):
        batch = users[start:start + batch_users]
        scores = score_fn(torch.as_tensor(batch, device=device)).float()
        scores = scores.masked_fill(mask.rows(batch, n_items, device), float("-inf"))
        values, items = torch.topk(scores, k, dim=1)
        yield batch, values, items


def rank_metrics(score_fn: ScoreFn, relevant: np.ndarray, mask: np.ndarray, n_users: int,
                 n_items: int, ks: Sequence[int], batch_users: int = 1024,
                 device: torch.device | str = "cpu") -> dict[str, float]:
    """Recall@K and NDCG@K of ``score_fn`` (users -> ``[B, n_items]`` scores).

    ``relevant``: ``[n, 2]`` held-out (user, item) pairs; ``mask``: pairs never ranked.
    Returns ``{"recall@K": ..., "ndcg@K": ..., "users": n_evaluated}``.
    """
    device = torch.device(device)
    ks = sorted(set(int(k) for k in ks))
    max_k = min(max(ks), n_items)
    users = np.unique(relevant[:, 0]) if len(relevant) else np.zeros(0, dtype=np.int64)
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    discounts = 1.0 / torch.log2(torch.arange(2, max_k + 2, device=device, dtype=torch.float64))
    idcg_table = torch.cumsum(discounts, 0)
    rel_index = PairIndex(relevant, n_users)
    for batch, _, top in masked_top_k(score_fn, users, PairIndex(mask, n_users), n_items, max_k,
                                      batch_users, device):
        rel = rel_index.rows(batch, n_items, device)
        hits = torch.gather(rel, 1, top).double()
        n_rel = rel.sum(1).double()
        for k in ks:
            kk = min(k, max_k)
            h = hits[:, :kk]
            sums[f"recall@{k}"] += float((h.sum(1) / n_rel).sum())
            dcg = (h * discounts[:kk]).sum(1)
            idcg = idcg_table[(torch.clamp(n_rel, max=kk) - 1).long()]
            sums[f"ndcg@{k}"] += float((dcg / idcg).sum())
    n = max(len(users), 1)
    out = {key: val / n for key, val in sums.items()}
    out["users"] = float(len(users))
    return out
