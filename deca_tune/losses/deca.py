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


def _likelihood_terms(f_pos: torch.Tensor, f_neg: torch.Tensor, g_pos: torch.Tensor, g_neg: torch.Tensor,
                      noise_pos: torch.Tensor, noise_neg: torch.Tensor, subtask: SubTask, c_dp: float,
                      c_dn: float, ratio: float | None):
    """Flattened f and g, the sub-task's per-pair likelihood terms (Eq. 10 with Eq. 22) on the
    positives and on the negatives, and the negatives' weight ``ratio``."""
    if subtask not in SUBTASKS:
        raise ValueError(f"unknown DeCA sub-task {subtask!r}; choose one of: {', '.join(SUBTASKS)}")
    f_pos, g_pos, noise_pos = f_pos.reshape(-1), g_pos.reshape(-1), noise_pos.reshape(-1)
    f_neg, g_neg, noise_neg = f_neg.reshape(-1), g_neg.reshape(-1), noise_neg.reshape(-1)
    if ratio is None:
        ratio = f_neg.numel() / max(f_pos.numel(), 1)
    if subtask == "dp":
        pos_ll, neg_ll = dp_positive_term(f_pos, noise_pos), dp_negative_term(f_neg, noise_neg, c_dp)
    else:
        pos_ll, neg_ll = dn_positive_term(f_pos, noise_pos, c_dn), dn_negative_term(f_neg, noise_neg)
    return f_pos, f_neg, g_pos, g_neg, pos_ll, neg_ll, ratio


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
    f_pos, f_neg, g_pos, g_neg, pos_ll, neg_ll, ratio = _likelihood_terms(
        f_pos, f_neg, g_pos, g_neg, noise_pos, noise_neg, subtask, c_dp, c_dn, ratio)
    kl_pos = agreement_kl(f_pos, g_pos, alpha)
    kl_neg = agreement_kl(f_neg, g_neg, alpha)
    loss = (kl_pos - pos_ll).mean() + ratio * (kl_neg - neg_ll).mean()
    parts = {
        "kl": torch.cat([kl_pos, kl_neg]).mean().detach(),
        "likelihood": torch.cat([pos_ll, neg_ll]).mean().detach(),
    }
    return loss, parts


def deca_loss_parts(f_pos: torch.Tensor, f_neg: torch.Tensor, g_pos: torch.Tensor, g_neg: torch.Tensor,
                    noise_pos: torch.Tensor, noise_neg: torch.Tensor, subtask: SubTask, alpha: float,
                    c_dp: float, c_dn: float, ratio: float | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`deca_loss` split into its two terms, ``(agreement, likelihood)``, with
    ``agreement + likelihood`` equal to the loss up to rounding:

        agreement  = mean_pos(KL) + ratio * mean_neg(KL)
        likelihood = -(mean_pos(positive term) + ratio * mean_neg(negative term))

    For diagnostics only (how much of f's gradient each term gives); training uses
    :func:`deca_loss`, whose summation order this does not change."""
    f_pos, f_neg, g_pos, g_neg, pos_ll, neg_ll, ratio = _likelihood_terms(
        f_pos, f_neg, g_pos, g_neg, noise_pos, noise_neg, subtask, c_dp, c_dn, ratio)
    agreement = agreement_kl(f_pos, g_pos, alpha).mean() + ratio * agreement_kl(f_neg, g_neg, alpha).mean()
    likelihood = -(pos_ll.mean() + ratio * neg_ll.mean())
    return agreement, likelihood


def gradient_shares(agreement: torch.Tensor, likelihoods: dict[str, torch.Tensor],
                    params: list[torch.Tensor]) -> dict[str, dict[str, float]]:
    """How much of the gradient on ``params`` comes from each term, for one agreement term and
    one or more likelihood terms (DeCA's DP and DN share the agreement): per likelihood the L2
    norms of d agreement / d params, d likelihood / d params and of their sum (the loss's
    gradient without L2), and ``share`` = |g_agreement| / (|g_agreement| + |g_likelihood|) in
    [0, 1] (0: the agreement does not move the parameters at all; 0.5: as much as the
    likelihood; NaN when neither does). ``torch.autograd.grad`` with the graph retained: no
    ``.grad`` is written. Cost: 1 + len(likelihoods) backward passes."""

    def grads(term: torch.Tensor) -> list[torch.Tensor]:
        got = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(got, params)]

    def norm(values: list[torch.Tensor]) -> float:
        return float(torch.sqrt(sum((g.double() ** 2).sum() for g in values)))

    g_a = grads(agreement)
    n_a = norm(g_a)
    out = {}
    for name, likelihood in likelihoods.items():
        g_l = grads(likelihood)
        n_l = norm(g_l)
        out[name] = {"agreement": n_a, "likelihood": n_l, "total": norm([a + b for a, b in zip(g_a, g_l)]),
                     "share": n_a / (n_a + n_l) if n_a + n_l > 0 else float("nan")}
    return out


def gradient_share(agreement: torch.Tensor, likelihood: torch.Tensor,
                   params: list[torch.Tensor]) -> dict[str, float]:
    """:func:`gradient_shares` for one likelihood term."""
    return gradient_shares(agreement, {"": likelihood}, params)[""]


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


# ------------------------------------------------------------------ fused form (issue 21)
def _dlog(x: torch.Tensor) -> torch.Tensor:
    """d safe_log(x) / dx: ``1 / x`` where ``x >= EPS`` (``clamp_min``'s gradient mask), else 0."""
    return torch.where(x >= EPS, 1.0 / x.clamp_min(EPS), torch.zeros_like(x))


def _kl_grads(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d KL(a||b) / da, d KL(a||b) / db)`` of :func:`bernoulli_kl` (safe logs included)::

        dKL/da = (log a - log b) + a/a' - (log(1-a) - log(1-b)) - (1-a)/(1-a)'
        dKL/db = -a/b + (1-a)/(1-b)
    """
    na, nb = 1.0 - a, 1.0 - b
    da = (safe_log(a) - safe_log(b)) + a * _dlog(a) - (safe_log(na) - safe_log(nb)) - na * _dlog(na)
    db = -a * _dlog(b) + na * _dlog(nb)
    return da, db


def _agreement_grads(f: torch.Tensor, g: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`agreement_kl` with respect to ``f`` and ``g``."""
    grads_f, grads_g = [], []
    if alpha != 0.0:
        dg, df = _kl_grads(g, f)  # KL(g||f)
        grads_f.append(alpha * df if alpha != 1.0 else df)
        grads_g.append(alpha * dg if alpha != 1.0 else dg)
    if alpha != 1.0:
        df, dg = _kl_grads(f, g)  # KL(f||g)
        grads_f.append((1.0 - alpha) * df if alpha != 0.0 else df)
        grads_g.append((1.0 - alpha) * dg if alpha != 0.0 else dg)
    return sum(grads_f), sum(grads_g)


def _likelihood_grads(f: torch.Tensor, noise: torch.Tensor, subtask: str, positive: bool,
                      c_dp: float, c_dn: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d ll / df, d ll / d noise)`` of the four likelihood terms above (Eq. 10 with Eq. 22)."""
    if subtask == "dp" and positive:  # log h (1-f)
        return -safe_log(noise), (1.0 - f) * _dlog(noise)
    if subtask == "dp":  # log(1-h) (1-f) - C_DP f
        one_minus = 1.0 - noise
        return -safe_log(one_minus) - c_dp, -(1.0 - f) * _dlog(one_minus)
    if positive:  # log h' f - C_DN (1-f)
        return safe_log(noise) + c_dn, f * _dlog(noise)
    one_minus = 1.0 - noise  # log(1-h') f
    return safe_log(one_minus), -f * _dlog(one_minus)


class _FusedDeCALoss(torch.autograd.Function):
    """:func:`deca_loss` of the sigmoids of six logit tensors, its forward the very same
    operations (the same loss, bit for bit), its backward the closed form of the gradient with
    respect to the logits (about a third of autograd's operations through ~50 small tensors;
    equal to autograd's gradient up to float rounding)."""

    @staticmethod
    def forward(ctx, f_pos, f_neg, g_pos, g_neg, n_pos, n_neg, subtask, alpha, c_dp, c_dn, ratio):  # type: ignore[override]
        probs = [torch.sigmoid(x) for x in (f_pos, f_neg, g_pos, g_neg, n_pos, n_neg)]
        loss, parts = deca_loss(*probs, subtask, alpha=alpha, c_dp=c_dp, c_dn=c_dn, ratio=ratio)
        ctx.save_for_backward(*probs)
        ctx.settings = (subtask, alpha, c_dp, c_dn, ratio, f_neg.shape)
        ctx.mark_non_differentiable(parts["kl"], parts["likelihood"], probs[4])
        return loss, parts["kl"], parts["likelihood"], probs[4]

    @staticmethod
    def backward(ctx, grad, _kl, _ll, _noise):  # type: ignore[override]
        f_pos, f_neg, g_pos, g_neg, n_pos, n_neg = ctx.saved_tensors
        subtask, alpha, c_dp, c_dn, ratio, neg_shape = ctx.settings
        if ratio is None:
            ratio = f_neg.numel() / max(f_pos.numel(), 1)
        need_g = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]
        grads = {}
        for positive, f, g, n, weight in ((True, f_pos, g_pos, n_pos, grad / f_pos.numel()),
                                          (False, f_neg, g_neg, n_neg, grad * ratio / f_neg.numel())):
            kf, kg = _agreement_grads(f, g, alpha)
            lf, ln = _likelihood_grads(f, n, subtask, positive, c_dp, c_dn)
            # d loss / d logit = weight * d(KL - ll) / dp * sigmoid'(logit), sigmoid' = (1 - p) p
            grads[positive] = ((kf - lf) * weight * (1.0 - f) * f,
                               kg * weight * (1.0 - g) * g if need_g else None,
                               -ln * weight * (1.0 - n) * n)
        (fp, gp, np_), (fn, gn, nn_) = grads[True], grads[False]
        out = [fp, fn, gp, gn, np_, nn_]
        needs = ctx.needs_input_grad[:6]
        return (*[o if need and o is not None else None for o, need in zip(out, needs)],
                None, None, None, None, None)


def deca_loss_from_logits(f_pos: torch.Tensor, f_neg: torch.Tensor, g_pos: torch.Tensor,
                          g_neg: torch.Tensor, noise_pos: torch.Tensor, noise_neg: torch.Tensor,
                          subtask: SubTask, alpha: float, c_dp: float, c_dn: float,
                          ratio: float | None = None,
                          ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """:func:`deca_loss` on the sigmoids of the six logit tensors, fused (one autograd node,
    closed-form backward): ``(loss, parts, sigmoid(noise_pos))``; same loss, gradient equal up to
    float rounding (tests/test_losses_deca.py). DeCA's step on GMF is dominated by these ~50
    operations on ``[batch]`` tensors and their backward (issue 21)."""
    if subtask not in SUBTASKS:
        raise ValueError(f"unknown DeCA sub-task {subtask!r}; choose one of: {', '.join(SUBTASKS)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    flat = [x.reshape(-1) for x in (f_pos, f_neg, g_pos, g_neg, noise_pos, noise_neg)]
    loss, kl, ll, noise = _FusedDeCALoss.apply(*flat, subtask, float(alpha), float(c_dp), float(c_dn), ratio)
    return loss, {"kl": kl, "likelihood": ll}, noise
