"""Binary DeCA / DeCA(p) loss for implicit-feedback recommendation (paper section 4.1, 4.3, 4.4).

Pure tensor functions on *probabilities* (after the sigmoid), no models. Notation of the paper:

- ``f``  target model, P(y = 1) (Eq. 1);  ``g`` auxiliary model (DeCA) or the frozen
  pre-trained ``f'`` (DeCA(p)),
- ``h``  = P(y~ = 1 | y = 0),  ``h'`` = P(y~ = 1 | y = 1)   (Eq. 2).

The expected log-likelihood E_{Y~P_f}[log P(Y~|Y)] (Eq. 10) is never optimised with both noise
models free; the iterative routine (section 4.3, Eq. 19-22, Algorithms 1-2) alternates two
sub-tasks, replacing the fixed log-probability of one noise model by a large constant:

- **DP** (denoise positives, k = 1): P(y~=1 | y=1) = 1, learn ``h``; -log P(y~=0 | y=1) -> ``C_DP``
  (the paper's ``C1``; the DeCA authors' ``C_1``)::

      positive term  log h * (1 - f)
      negative term  log(1 - h) * (1 - f) - C_DP * f

- **DN** (denoise negatives, k = 0): P(y~=1 | y=0) = 0, learn ``h'``; -log P(y~=1 | y=0) -> ``C_DN``
  (the paper's ``C0``; the DeCA authors' ``C_2``)::

      positive term  log h' * f - C_DN * (1 - f)
      negative term  log(1 - h') * f

The batch loss (Eq. 9 for DeCA, Eq. 13 for DeCA(p)) is::

    mean_pos(KL - positive term) + ratio * mean_neg(KL - negative term)
    KL = alpha * KL(g || f) + (1 - alpha) * KL(f || g)        (Bernoulli KL, element-wise)

For DeCA(p) ``g`` is the frozen pre-trained ``f'``, so the same function applies with ``g``
detached. Note: the paper's Eq. 13 writes alpha * D[P_f || P] + (1 - alpha) * D[P || P_f] (the two
terms the other way round); the DeCA authors' code uses alpha * KL(f' || f) for both methods and
so do we, which keeps one meaning of ``alpha`` across DeCA and DeCA(p).

Numerics: every log goes through :func:`safe_log`, which clamps its argument to ``[EPS, inf)``,
so probabilities at exactly 0 or 1 and constants up to 1e4 give finite losses and gradients.
"""
from __future__ import annotations

from typing import Literal

import torch

#: floor of every log argument (log(EPS) ~ -13.8); the authors add 1e-5 instead of clamping
EPS: float = 1e-6

SubTask = Literal["dp", "dn"]
SUBTASKS: tuple[str, str] = ("dp", "dn")


def safe_log(p: torch.Tensor) -> torch.Tensor:
    """``log(max(p, EPS))``: finite for ``p`` in [0, 1], gradient finite everywhere."""
    return torch.log(p.clamp_min(EPS))


def bernoulli_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Element-wise KL(Bernoulli(p) || Bernoulli(q)) (the KL below Eq. 10)."""
    return (p * (safe_log(p) - safe_log(q))
            + (1.0 - p) * (safe_log(1.0 - p) - safe_log(1.0 - q)))


def agreement_kl(f: torch.Tensor, g: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * KL(g||f) + (1 - alpha) * KL(f||g)``, element-wise (Eq. 9; Eq. 13 with g = f')."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    # alpha 1 (the authors' ML-100K setting) or 0: the other KL's weight is 0 and its value finite
    # (safe_log), so leaving it out gives the same numbers, bit for bit, at half the operations
    if alpha == 1.0:
        return bernoulli_kl(g, f)
    if alpha == 0.0:
        return bernoulli_kl(f, g)
    return alpha * bernoulli_kl(g, f) + (1.0 - alpha) * bernoulli_kl(f, g)


def dp_positive_term(f: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """DP log-likelihood of an observed positive: ``log h * (1 - f)`` (Eq. 10 with Eq. 22, k = 1)."""
    return safe_log(h) * (1.0 - f)


def dp_negative_term(f: torch.Tensor, h: torch.Tensor, c_dp: float) -> torch.Tensor:
    """DP log-likelihood of a sampled negative: ``log(1-h) * (1-f) - C_DP * f`` (Eq. 10/22)."""
    return safe_log(1.0 - h) * (1.0 - f) - c_dp * f


def dn_positive_term(f: torch.Tensor, h_prime: torch.Tensor, c_dn: float) -> torch.Tensor:
    """DN log-likelihood of an observed positive: ``log h' * f - C_DN * (1-f)`` (Eq. 10/22, k = 0)."""
    return safe_log(h_prime) * f - c_dn * (1.0 - f)


def dn_negative_term(f: torch.Tensor, h_prime: torch.Tensor) -> torch.Tensor:
    """DN log-likelihood of a sampled negative: ``log(1 - h') * f`` (Eq. 10 with Eq. 22, k = 0)."""
    return safe_log(1.0 - h_prime) * f


def deca_loss(f_pos: torch.Tensor, f_neg: torch.Tensor, g_pos: torch.Tensor, g_neg: torch.Tensor,
              noise_pos: torch.Tensor, noise_neg: torch.Tensor, subtask: SubTask, alpha: float,
              c_dp: float, c_dn: float, ratio: float | None = None,
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One mini-batch of the DeCA / DeCA(p) objective (Eq. 9 / Eq. 13 with Eq. 10 and Eq. 22).

    ``*_pos`` are the probabilities on the observed positives, ``*_neg`` on the sampled negatives
    (any shape; flattened). ``noise_*`` is ``h`` for ``subtask="dp"`` and ``h'`` for ``"dn"``.
    ``ratio`` weights the negative mean (default: number of negatives per positive), as the
    authors' ``neg_loss * NSR``. Returns the scalar loss and detached parts:
    ``kl`` (mean KL over all pairs), ``likelihood`` (mean log-likelihood term over all pairs).
    """
    if subtask not in SUBTASKS:
        raise ValueError(f"unknown DeCA sub-task {subtask!r}; choose one of: {', '.join(SUBTASKS)}")
    f_pos, g_pos, noise_pos = f_pos.reshape(-1), g_pos.reshape(-1), noise_pos.reshape(-1)
    f_neg, g_neg, noise_neg = f_neg.reshape(-1), g_neg.reshape(-1), noise_neg.reshape(-1)
    if ratio is None:
        ratio = f_neg.numel() / max(f_pos.numel(), 1)
    if subtask == "dp":
        pos_ll = dp_positive_term(f_pos, noise_pos)
        neg_ll = dp_negative_term(f_neg, noise_neg, c_dp)
    else:
        pos_ll = dn_positive_term(f_pos, noise_pos, c_dn)
        neg_ll = dn_negative_term(f_neg, noise_neg)
    kl_pos = agreement_kl(f_pos, g_pos, alpha)
    kl_neg = agreement_kl(f_neg, g_neg, alpha)
    loss = (kl_pos - pos_ll).mean() + ratio * (kl_neg - neg_ll).mean()
    parts = {
        "kl": torch.cat([kl_pos, kl_neg]).mean().detach(),
        "likelihood": torch.cat([pos_ll, neg_ll]).mean().detach(),
    }
    return loss, parts


def clean_probability(f: torch.Tensor, h: torch.Tensor, h_prime: torch.Tensor) -> torch.Tensor:
    """P(y = 1 | y~ = 1) = h' f / (h' f + h (1 - f)) (Eq. 25); 0 where both terms are 0."""
    num = h_prime * f
    den = num + h * (1.0 - f)
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(num))


def clean_logit(f_logit: torch.Tensor, h_logit: torch.Tensor, h_prime_logit: torch.Tensor) -> torch.Tensor:
    """The log-odds of Eq. 25 from the three models' logits, without saturation:
    ``log(h' f / (h (1 - f))) = z_f + log sigmoid(z_h') - log sigmoid(z_h)``."""
    logsig = torch.nn.functional.logsigmoid
    return f_logit + logsig(h_prime_logit) - logsig(h_logit)
