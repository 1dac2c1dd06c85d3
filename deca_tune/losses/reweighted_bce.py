"""Reweighted BCE (R-CE; Wang et al., "Denoising Implicit Feedback for Recommendation", WSDM 2021).

The authors' code (github WenjieWWJ/DenoisingRec, ``R_CE/loss.py`` ``loss_function``, where beta
is called ``alpha``): every sample's BCE multiplied by the detached prediction to the power beta,

    w = sigmoid(z)^beta        on a positive (label 1),
    w = (1 - sigmoid(z))^beta  on a negative (label 0),
    L = reduce(w * BCE(z, label)),

so hard (large-loss, probably noisy) positives weigh less. ``reduce`` is the base BCE's
(:mod:`deca_tune.losses.bce`): mean over the positives + mean over the negatives by default;
the authors' one mean over the mixed batch is ``scale="single_mean"``. At beta 0 every weight is
exactly 1 and the loss is :func:`deca_tune.losses.bce.bce_loss` (the same numbers, bit for bit:
``tests/test_nesting.py``).
"""
from __future__ import annotations

import math

import torch

from deca_tune.losses.bce import check_scale, per_sample_bce, reduce_bce


def check_beta(beta: float) -> None:
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")


def reweighted_bce(pos_logits: torch.Tensor, neg_logits: torch.Tensor, beta: float,
                   scale: str = "mean") -> torch.Tensor:
    """R-CE's loss (module docstring); the weights carry no gradient (the authors' ``detach``).
    ``1 - sigmoid(z)`` is computed as ``sigmoid(-z)`` (the same number, without cancellation)."""
    check_beta(beta)
    check_scale(scale)
    pos_loss, neg_loss = per_sample_bce(pos_logits, neg_logits)
    w_pos = torch.sigmoid(pos_logits.detach().reshape(-1)).pow(beta)
    w_neg = torch.sigmoid(-neg_logits.detach().reshape(-1)).pow(beta)
    return reduce_bce(pos_loss * w_pos, neg_loss * w_neg, scale)
