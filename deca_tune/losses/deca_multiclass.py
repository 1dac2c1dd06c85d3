"""Multi-class DeCA(p) losses (paper section 4.2-4.3), as pure tensor functions.

Notation (per example ``i`` of a batch of ``B``, ``C`` classes): ``p[i, c] = f(x_i, c)`` the
target model's class probabilities, ``y[i]`` the observed (noisy) label, ``k = T mod C`` the class
attended to at step ``T``, and ``log_h[i, c, j] = log h(x_i, c, j) = log P(y~ = j | y = c, x_i)``
the noise model's log-probabilities (``log_softmax`` over the last axis, so never ``-inf``).

The functions return the per-example *expected log-likelihood* ``E_i`` (the quantity to be
maximised); the DeCA(p) loss of Eq. 16 is ``mean(-E_i) + mean(KL_i)`` (:func:`deca_p_loss`).
Logs of probabilities are clamped at ``log(1e-12)`` wherever a probability (not a log-softmax)
is the input.
"""
from __future__ import annotations

import math

import torch

LOG_EPS = math.log(1e-12)


def safe_log(p: torch.Tensor) -> torch.Tensor:
    """``log(p)`` clamped below at ``log(1e-12)``."""
    return torch.log(p.clamp_min(1e-12))


def expected_loglik_eq22(p: torch.Tensor, log_h_k: torch.Tensor, y: torch.Tensor, k: int,
                         c1: float, c2: float) -> torch.Tensor:
    """Eq. 22, per example: the routine of the first ``T1`` epochs.

    With Eq. 19 (``P(y~ = c | y = c) = 1`` for ``c != k``) the unknowns ``-log P(y~ = k | y != k)``
    and ``-log P(y~ != k, y~ != y | y != k)`` become the constants ``C1`` and ``C2`` (Eq. 20, 21)::

        y~_i == k:  E_i = -C1 * (1 - p_ik)            + log h(x_i, k, k)   * p_ik
        y~_i != k:  E_i = -C2 * (1 - p_ik - p_i,y~_i) + log h(x_i, k, y~_i) * p_ik

    ``p``: ``[B, C]`` probabilities of ``f``; ``log_h_k``: ``[B, C]`` = ``log h(x, k, .)``;
    ``y``: ``[B]`` observed labels. Returns ``[B]``.
    """
    p_k = p[:, k]
    p_obs = p.gather(1, y[:, None]).squeeze(1)
    log_h_obs = log_h_k.gather(1, y[:, None]).squeeze(1)
    is_k = y == k
    constant = torch.where(is_k, -c1 * (1.0 - p_k), -c2 * (1.0 - p_k - p_obs))
    return constant + log_h_obs * p_k


def expected_loglik_eq24(p: torch.Tensor, log_h: torch.Tensor, y: torch.Tensor, k: int,
                         include_observed: bool = True) -> torch.Tensor:
    """Eq. 24, per example: the routine after ``T1`` epochs, with Eq. 23 (``h`` under stop-gradient
    for every candidate true class ``c != k``)::

        E_i = sum_{c != k} SG(log h(x_i, c, y~_i)) * p_ic + log h(x_i, k, y~_i) * p_ik

    This is Eq. 17 with Eq. 23. The printed Eq. 24 also drops the term ``c = y~_i`` when
    ``y~_i != k`` (carried over from Eq. 22, where it was ``log 1 = 0``); ``include_observed=False``
    reproduces that literal reading. ``log_h``: ``[B, C, C]``. Returns ``[B]``.
    """
    idx = y[:, None, None].expand(-1, log_h.shape[1], 1)
    log_h_obs = log_h.gather(2, idx).squeeze(2)  # [B, C]: log h(x_i, c, y~_i) for every c
    is_k = torch.zeros_like(p, dtype=torch.bool)
    is_k[:, k] = True
    coeff = torch.where(is_k, log_h_obs, log_h_obs.detach())
    if not include_observed:
        drop = torch.nn.functional.one_hot(y, p.shape[1]).bool() & (y != k)[:, None]
        coeff = coeff.masked_fill(drop, 0.0)
    return (coeff * p).sum(dim=1)


def kl_f_fprime(log_p: torch.Tensor, log_p_prime: torch.Tensor) -> torch.Tensor:
    """Eq. 18, per example: ``KL(f || f') = sum_c f(x, c) * log(f(x, c) / f'(x, c))``.

    Inputs are log-probabilities ``[B, C]`` (``log_softmax``); returns ``[B]``.
    """
    return (log_p.exp() * (log_p - log_p_prime)).sum(dim=1)


def deca_p_loss(expected_loglik: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    """Eq. 16 averaged over the batch: ``mean(-E[log P(y~ | y)]) + mean(KL(f || f'))``."""
    return -expected_loglik.mean() + kl.mean()
