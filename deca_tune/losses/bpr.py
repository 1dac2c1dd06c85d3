"""BPR loss (Rendle et al. 2009), used by WBPR (Gantner et al. 2012)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor,
             weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """``mean -log sigmoid(s_ui - s_uj)`` over every (positive ``[B]``, negative ``[B, r]``) pair;
    ``reduction="sum"``: the sum (the authors' CDAE, whose L2 form assumes a summed loss).

    With ``weights`` (``[B]``, one per positive, e.g. WBPR's user weight ``w_u``) each pair's term
    is multiplied by its positive's weight and the sum is still divided by the number of pairs
    ``B * r`` (not by the weights' sum), so weights of mean 1 keep the unweighted loss's scale.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction {reduction!r}; choose mean or sum")
    diff = pos_logits.reshape(-1, 1) - neg_logits.reshape(pos_logits.numel(), -1)
    terms = -F.logsigmoid(diff)
    if weights is not None:
        terms = terms * weights.reshape(-1, 1).to(terms.dtype)
    return terms.sum() if reduction == "sum" else terms.mean()
