"""The one base BCE of every recommendation method (the paper's and the DeCA authors' scaling).

``bce_loss``: for positives ``[B]`` with logits ``z+`` and negatives ``[B, r]`` (or ``[N]``) with
logits ``z-``,

    L = mean_b softplus(-z+_b) + mean_{b,k} softplus(z-_{b,k})      (reduction "mean")
    L = sum_b  softplus(-z+_b) + sum_{b,k}  softplus(z-_{b,k})      (reduction "sum", the authors' CDAE)

``normal`` trains with it; every baseline applies its own mechanism inside it (T-CE's
truncation, R-CE's weights, the ensemble's twin), so that with the mechanism switched off the
method *is* ``normal``. ``reduce_bce`` is the same reduction for per-sample losses that a method
has masked or re-weighted, plus the one other scaling a published code uses: ``"single_mean"``,
one mean over the mixed batch of positives and negatives (WenjieWWJ/DenoisingRec, T-CE and
R-CE). With one negative per positive ``"single_mean"`` is half of ``"mean"``: under Adam the
gradient's scale cancels, so the only effect is that L2 weighs twice as much (``l2`` x means
``"mean"`` at ``2 l2``; docs/denoising-methods.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: reductions of :func:`reduce_bce`
SCALES = ("mean", "sum", "single_mean")


def bce_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean BCE over the positives plus mean BCE over the negatives (the DeCA authors' scaling);
    ``reduction="sum"``: summed over both (the authors' CDAE, ``TrainingRecipe.reduction``)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction {reduction!r}; choose mean or sum")
    pos = F.binary_cross_entropy_with_logits(pos_logits, torch.ones_like(pos_logits), reduction=reduction)
    neg = F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits), reduction=reduction)
    return pos + neg


def per_sample_bce(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat per-sample BCE of the positives (label 1) and of the negatives (label 0)."""
    pos, neg = pos_logits.reshape(-1), neg_logits.reshape(-1)
    return (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none"),
            F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg), reduction="none"))


def check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"loss scale {scale!r}; choose one of {', '.join(SCALES)}")


def reduce_bce(pos_loss: torch.Tensor, neg_loss: torch.Tensor, scale: str = "mean") -> torch.Tensor:
    """Reduce per-sample (masked or weighted) BCE terms as :func:`bce_loss` does: ``"mean"``:
    mean over ``pos_loss`` + mean over ``neg_loss`` (an empty group adds 0); ``"sum"``: the sum of
    both; ``"single_mean"``: one mean over both together (DenoisingRec's scaling)."""
    check_scale(scale)
    if scale == "single_mean":
        return torch.cat([pos_loss, neg_loss]).mean()
    if scale == "sum":
        return pos_loss.sum() + neg_loss.sum()
    pos = pos_loss.mean() if pos_loss.numel() else pos_loss.sum()
    neg = neg_loss.mean() if neg_loss.numel() else neg_loss.sum()
    return pos + neg
