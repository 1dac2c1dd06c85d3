"""Truncated BCE (T-CE; Wang et al., "Denoising Implicit Feedback for Recommendation", WSDM 2021).

Two forms (spec key ``tce_form`` of :class:`deca_tune.methods.rec.tce.TCE`):

* :func:`truncated_bce` and :func:`drop_rate_schedule`: the published selection and schedule, as
  in the authors' code (github WenjieWWJ/DenoisingRec, ``T_CE/loss.py`` ``loss_function`` and
  ``T_CE/main.py`` ``drop_rate_schedule``), inside the base BCE's scaling
  (:mod:`deca_tune.losses.bce`; the authors' single mean is ``scale="single_mean"``).
* :func:`truncated_bce_positives` and :func:`linear_drop_rate`: this project's earlier variant
  (a fraction of the positives only, ``normal``'s mean_pos + mean_neg scaling), kept so that old
  runs can be reproduced exactly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deca_tune.losses.bce import check_scale, per_sample_bce, reduce_bce


def _check_rate(drop_rate: float) -> None:
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must lie in [0, 1), got {drop_rate}")


def drop_rate_schedule(step: int, drop_rate: float, num_gradual: int, exponent: float = 1.0) -> float:
    """The published schedule: ``linspace(0, drop_rate**exponent, num_gradual)[step]`` while
    ``step < num_gradual``, then ``drop_rate``.

    That is ``drop_rate**exponent * step / (num_gradual - 1)`` (0 at step 0, the full value at
    step ``num_gradual - 1``; always 0 when ``num_gradual == 1``). As in the authors' code the
    plateau is ``drop_rate`` itself, not ``drop_rate**exponent``: with ``exponent != 1`` the rate
    jumps at ``step == num_gradual`` (their default and every released run use ``exponent`` 1).
    ``step`` counts optimiser steps from 0, like their ``count``.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if num_gradual < 1:
        raise ValueError(f"num_gradual must be >= 1, got {num_gradual}")
    if step >= num_gradual:
        return float(drop_rate)
    if num_gradual == 1:
        return 0.0
    top = float(drop_rate) ** float(exponent)
    return top if step == num_gradual - 1 else top * step / (num_gradual - 1)


def linear_drop_rate(step: int, drop_rate: float, num_gradual: int) -> float:
    """The earlier variant's schedule: ``drop_rate * min(step / num_gradual, 1)``."""
    return float(drop_rate) * min(step / num_gradual, 1.0)


def truncated_bce(pos_logits: torch.Tensor, neg_logits: torch.Tensor,
                  drop_rate: float, scale: str = "mean") -> tuple[torch.Tensor, int]:
    """T-CE: the largest-loss positives of the whole mixed batch dropped, the rest reduced by
    ``scale`` (:func:`deca_tune.losses.bce.reduce_bce`).

    The batch is the ``n = B + B * ratio`` samples (positives label 1, negatives label 0). Each
    sample's BCE is multiplied by its label, so negatives rank first (value 0) and positives by
    their loss; the ``int((1 - drop_rate) * n)`` samples with the smallest such value are kept
    (the authors' selection, ``T_CE/loss.py``). The dropped ``n - n_keep`` samples are positives
    while ``n - n_keep <= B`` (e.g. ``drop_rate < 0.5`` with one negative per positive); beyond
    that the remaining negatives are dropped too, the later ones in ``neg_logits`` order first
    (the authors' unstable argsort breaks these ties arbitrarily). At least one sample is kept
    (the original takes the mean of an empty selection, NaN, when ``(1 - drop_rate) * n < 1``).

    ``scale``: ``"mean"`` (default, ``normal``'s Eq.: mean over the kept positives + mean over the
    kept negatives) or ``"sum"`` (the authors' CDAE recipe): when nothing is dropped this is
    :func:`deca_tune.losses.bce.bce_loss` (bit for bit), so T-CE at rate 0 is ``normal``.
    ``"single_mean"``: one mean over everything kept, the authors' scaling (DenoisingRec).

    Returns the loss and the number of samples dropped.
    """
    _check_rate(drop_rate)
    check_scale(scale)
    pos, neg = pos_logits.reshape(-1), neg_logits.reshape(-1)
    n_pos, n = pos.numel(), pos.numel() + neg.numel()
    n_keep = max(int((1.0 - drop_rate) * n), 1)  # the authors' int(remember_rate * len(...))
    if scale == "single_mean":  # the authors' computation, unchanged
        logits = torch.cat([pos, neg])
        labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        if n_keep < n:
            order = torch.argsort((loss * labels).detach(), stable=True)
            loss = loss[order[:n_keep]]
        return loss.mean(), n - n_keep
    pos_loss, neg_loss = per_sample_bce(pos, neg)
    ranked = torch.cat([pos_loss.detach(), torch.zeros_like(neg_loss)])  # loss * label
    keep = torch.zeros(n, dtype=torch.bool, device=ranked.device)
    keep[torch.argsort(ranked, stable=True)[:n_keep]] = True
    return reduce_bce(pos_loss[keep[:n_pos]], neg_loss[keep[n_pos:]], scale), n - n_keep


def truncated_bce_positives(pos_logits: torch.Tensor, neg_logits: torch.Tensor,
                            drop_rate: float) -> tuple[torch.Tensor, int]:
    """The earlier variant (``tce_form: "positives"``): drop the ``floor(drop_rate * n_pos)``
    positives with the largest BCE, then mean over the kept positives plus mean over the
    negatives (``normal``'s :func:`deca_tune.losses.bce.bce_loss` scaling). At
    ``drop_rate = 0`` this is ``normal``'s BCE. Returns the loss and the number of positives
    dropped.
    """
    _check_rate(drop_rate)
    pos_loss = F.binary_cross_entropy_with_logits(pos_logits.reshape(-1), torch.ones_like(pos_logits.reshape(-1)),
                                                  reduction="none")
    neg_loss = F.binary_cross_entropy_with_logits(neg_logits.reshape(-1), torch.zeros_like(neg_logits.reshape(-1)),
                                                  reduction="none")
    n_drop = int(drop_rate * pos_loss.numel())
    if n_drop:
        keep = torch.argsort(pos_loss.detach(), stable=True)[: pos_loss.numel() - n_drop]
        pos_loss = pos_loss[keep]
    return pos_loss.mean() + neg_loss.mean(), n_drop


def check_exponent(exponent: float) -> None:
    if not (math.isfinite(exponent) and exponent > 0):
        raise ValueError(f"exponent must be a finite number > 0, got {exponent}")
