"""Full-ranking Recall@K and NDCG@K, batched over users with ``torch.topk`` (no per-user loop).

For each evaluated user every item is scored, the masked items (training items, and validation
items when scoring test) are excluded, and the top max(K) items are compared with the user's
relevant held-out items. Binary relevance; IDCG over min(|relevant|, K); averages over users with
at least one relevant item.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch


def _dense_rows(pairs: np.ndarray, rows: np.ndarray, n_items: int, row_of_user: np.ndarray,
                device: torch.device) -> torch.Tensor:
    """Boolean ``[len(rows), n_items]`` matrix with True at ``pairs`` whose user is in ``rows``."""
    out = torch.zeros(len(rows), n_items, dtype=torch.bool, device=device)
    if len(pairs):
        r = row_of_user[pairs[:, 0]]
        keep = r >= 0
        out[torch.as_tensor(r[keep], device=device), torch.as_tensor(pairs[keep, 1], device=device)] = True
    return out


def rank_metrics(score_fn: Callable[[torch.Tensor], torch.Tensor], relevant: np.ndarray,
                 mask: np.ndarray, n_users: int, n_items: int, ks: Sequence[int],
                 batch_users: int = 1024, device: torch.device | str = "cpu") -> dict[str, float]:
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
    row_of_user = np.full(n_users, -1, dtype=np.int64)
    # restrict the pair lists to the evaluated users once, then slice per user batch
    rel_sorted = relevant[np.argsort(relevant[:, 0], kind="stable")]
    mask_sorted = mask[np.argsort(mask[:, 0], kind="stable")]
    for start in range(0, len(users), batch_users):
        batch = users[start:start + batch_users]
        row_of_user[batch] = np.arange(len(batch))
        lo, hi = batch[0], batch[-1]
        rel_b = rel_sorted[np.searchsorted(rel_sorted[:, 0], lo):np.searchsorted(rel_sorted[:, 0], hi, "right")]
        mask_b = mask_sorted[np.searchsorted(mask_sorted[:, 0], lo):np.searchsorted(mask_sorted[:, 0], hi, "right")]
        rel = _dense_rows(rel_b, batch, n_items, row_of_user, device)
        masked = _dense_rows(mask_b, batch, n_items, row_of_user, device)
        row_of_user[batch] = -1
        scores = score_fn(torch.as_tensor(batch, device=device)).float()
        scores = scores.masked_fill(masked, float("-inf"))
        top = torch.topk(scores, max_k, dim=1).indices
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
