"""Truncated BCE (T-CE; Wang et al., "Denoising Implicit Feedback for Recommendation", WSDM 2021)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def truncated_bce(pos_logits: torch.Tensor, neg_logits: torch.Tensor,
                  drop_rate: float) -> tuple[torch.Tensor, int]:
    """BCE after dropping the ``floor(drop_rate * n_pos)`` positives with the largest loss (T-CE's
    truncated loss): mean over the kept positives plus mean over the negatives, the scaling of
    ``normal``'s :func:`deca_tune.methods.normal.bce_loss` (the DeCA authors').

    The original T-CE code drops ``drop_rate`` times *all* samples of the batch, always taken
    from the positives (negatives' losses are masked to 0 for the ranking); here the fraction is
    of the positives, as our issue specifies: with one negative per positive the original drops
    twice as many positives for the same ``drop_rate``. At ``drop_rate = 0`` this is ``normal``'s
    BCE. Returns the loss and the number of positives dropped.
    """
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must lie in [0, 1), got {drop_rate}")
    pos_loss = F.binary_cross_entropy_with_logits(pos_logits.reshape(-1), torch.ones_like(pos_logits.reshape(-1)),
                                                  reduction="none")
    neg_loss = F.binary_cross_entropy_with_logits(neg_logits.reshape(-1), torch.zeros_like(neg_logits.reshape(-1)),
                                                  reduction="none")
    n_drop = int(drop_rate * pos_loss.numel())
    if n_drop:
        keep = torch.argsort(pos_loss.detach(), stable=True)[: pos_loss.numel() - n_drop]
        pos_loss = pos_loss[keep]
    return pos_loss.mean() + neg_loss.mean(), n_drop
