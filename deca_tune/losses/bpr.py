"""BPR loss (Rendle et al. 2009), used by WBPR (Gantner et al. 2012)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """``mean -log sigmoid(s_ui - s_uj)`` over every (positive ``[B]``, negative ``[B, r]``) pair."""
    diff = pos_logits.reshape(-1, 1) - neg_logits.reshape(pos_logits.numel(), -1)
    return -F.logsigmoid(diff).mean()
