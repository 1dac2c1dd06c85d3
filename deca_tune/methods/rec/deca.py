"""``deca``: DeCA with a co-trained auxiliary model (paper Eq. 9 with Eq. 10/22, Algorithm 1).

Models: the target ``f`` (spec ``backbone``), the auxiliary ``g`` (spec ``aux_backbone``, MF by
default, section 4.4) and two noise models (spec ``h_backbone``, MF by default; Table 6 tries
others): ``h`` = P(y~=1 | y=0), learnt in the DP sub-task, and ``h'`` = P(y~=1 | y=1), learnt in
the DN sub-task. Mini-batches alternate DP (even steps) and DN (odd steps), as Algorithm 1's
``count % 2``. The loss is :func:`deca_tune.losses.deca.deca_loss`; ``g`` receives gradient only
through the agreement KL, the noise models only through the likelihood, and the L2 penalty of
the loop applies to ``f`` alone (Algorithm 1, line 10).

Reduction (spec ``loss_reduction``): ``"recipe"`` (default) reduces the per-pair terms as the
backbone's ``TrainingRecipe.reduction`` reduces ``normal``'s BCE: the mean over the positives
plus ``ratio`` x the mean over the negatives where ``normal`` takes means (every pairs backbone),
the sum over every pair where it sums (the authors' CDAE) -- Eq. 10 and 22 are sums, and one
``l2`` then weighs the same against DeCA's loss as against ``normal``'s. ``"authors"``: the DeCA
authors' code on every backbone, whose CDAE branch (train.py:260-298) takes mean_pos + mean_neg
although their ``normal`` CDAE sums; on the authors' CDAE that makes one ``l2`` weigh about a
batch's number of positives (~80,000 on ML-100K) times more against DeCA
(docs/denoising-methods.md, "Backbone training recipes"). The fidelity bench runs ``"authors"``;
on pairs backbones the two are the same computation.

Hyperparameters: ``C0`` = C_DN (larger: an interacted item is more likely a real positive),
``C1`` = C_DP (larger: a missing interaction is more likely a real negative), section 5.3.2;
``alpha`` in [0, 1] weights KL(g||f) against KL(f||g).

Ablations (Table 5): ``deca-dp`` and ``deca-dn`` run one sub-task on every mini-batch
(``subtask_only``). Logged components: ``deca/kl`` (mean agreement KL over the batch's pairs),
``deca/h_mean`` and ``deca/h_prime_mean`` (mean h and h' over the batch's observed positives;
the inactive noise model is evaluated without gradient) and ``loss/likelihood``; once per epoch
(spec ``agreement_grad``, on by default) ``deca/grad_kl_share*`` and ``deca/grad_norm_*``: how
much of f's gradient the agreement term gives (:meth:`DeCABase.agreement_gradient`).
"""
from __future__ import annotations

import zlib
from typing import Any, Mapping

import torch
from torch import nn

from deca_tune.data.interactions import RecSplit
from deca_tune.losses.deca import (SUBTASKS, agreement_kl, clean_logit, clean_probability, deca_loss,
                                   deca_loss_from_logits, deca_loss_parts, gradient_shares, safe_log)
from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.base import RecMethod
from deca_tune.methods.rec.normal import pair_logits
from deca_tune.models.rec.base import dense_lookups, recipe_of
from deca_tune.tasks.base import SpecError, check_choice, check_range


#: spec ``loss_reduction`` of DeCA / DeCA(p) (module docstring)
LOSS_REDUCTIONS = ("recipe", "authors")


def derive_seed(seed: int, tag: str) -> int:
    """A distinct, reproducible seed for the model called ``tag`` in the trial with ``seed``."""
    return (int(seed) * 1_000_003 + zlib.crc32(tag.encode())) % (2**31 - 1)


class DeCABase(RecMethod):
    """The DP/DN machinery shared by DeCA and DeCA(p); subclasses provide the prior model ``g``."""

    #: ``None``: alternate DP/DN every mini-batch; ``"dp"``/``"dn"``: that sub-task only (Table 5)
    subtask_only: str | None = None
    #: ``first_batch``: ``"dp"`` (Algorithm 1: DP, DN, DP, ...) or ``"both"`` (the authors' code:
    #: the first mini-batch steps h and h' with ``log(1-h)(1-f) + log(1-h') f`` on positives and
    #: negatives, then DP, DN, ...; their ``denoise_type`` starts as ``'both'``, train.py:387-406)
    #: ``agreement_grad``: log per epoch how much of f's gradient the agreement KL gives
    #: (:meth:`agreement_gradient`; off: False); it never changes what training computes
    #: ``loss_backward``: ``autograd`` (default: results as before the speed work) or ``fused``
    #: (one autograd node with the closed-form gradient, :func:`deca_loss_from_logits`: the same
    #: loss, a gradient equal up to float rounding; measured ~25% faster once, no faster when
    #: re-measured (docs/benchmarks.md, "DeCA's step beside normal's"); its rounding differs,
    #: and over epochs the runs drift apart by more than another CPU's kernels make them,
    #: docs/training-recipes.md)
    #: ``loss_reduction``: ``recipe`` (the backbone recipe's reduction, as ``normal``) or
    #: ``authors`` (mean_pos + ratio * mean_neg on every backbone, the DeCA authors' code)
    defaults: dict[str, Any] = {"C0": 1000.0, "C1": 1000.0, "alpha": 1.0, "h_backbone": "mf",
                                "first_batch": "dp", "agreement_grad": True, "loss_backward": "autograd",
                                "loss_reduction": "recipe"}

    def __init__(self, spec: dict[str, Any], split: RecSplit, subtask_only: str | None = None) -> None:
        super().__init__(spec, split)
        if subtask_only is not None:
            self.subtask_only = subtask_only
        if self.subtask_only is not None and self.subtask_only not in SUBTASKS:
            raise ValueError(f"subtask_only={self.subtask_only!r}; choose one of: {', '.join(SUBTASKS)}")
        self.check_spec(self.spec)
        s = self.spec
        self.alpha = float(s["alpha"])
        self.c_dn, self.c_dp = float(s["C0"]), float(s["C1"])
        self.sums = s["loss_reduction"] == "recipe" and recipe_of(self.f).reduction == "sum"
        seed = int(s["seed"])
        self.h = self.make_backbone(s["h_backbone"], seed=derive_seed(seed, "h"))
        self.h_prime = self.make_backbone(s["h_backbone"], seed=derive_seed(seed, "h_prime"))

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any]) -> None:
        """``alpha`` in [0, 1], ``C0``/``C1`` finite and >= 0, ``first_batch``, the backbones of
        ``h`` (and ``g``) registered; the trainer and the search driver (before Ray) call it."""
        from deca_tune.models.registry import REC_BACKBONES

        s = {**cls.defaults, **spec}
        check_range(s, "alpha", 0, 1)
        check_range(s, "C0", 0)
        check_range(s, "C1", 0)
        check_choice(s, "first_batch", ("dp", "both"))
        check_choice(s, "loss_backward", ("autograd", "fused"))
        check_choice(s, "loss_reduction", LOSS_REDUCTIONS)
        for key in ("h_backbone", "aux_backbone"):
            if key in s and s[key] not in REC_BACKBONES:
                raise SpecError(key, f"unknown backbone {s[key]!r}; choose one of: "
                                     f"{', '.join(REC_BACKBONES.names())}")
        if not isinstance(s.get("pretrain_overrides") or {}, dict):
            raise SpecError("pretrain_overrides", f"must be a mapping, got {s['pretrain_overrides']!r}")

    # the prior / auxiliary model -------------------------------------------------------------
    def prior_logits(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                     neg_users: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def reduction(self, pos: torch.Tensor, neg: torch.Tensor,
                  neg_users: torch.Tensor | None) -> tuple[float, float]:
        """``(ratio, scale)`` of a mini-batch: the loss is ``scale * (mean_pos + ratio * mean_neg)``
        of the per-pair terms. Means (``scale`` 1): ``ratio`` the negatives per positive on pairs
        (the authors' ``neg_loss * NSR``), 1 on row batches (their CDAE branch). Sums (``normal``'s
        reduction on the authors' CDAE, ``loss_reduction: recipe``): ``ratio`` = n_neg / n_pos and
        ``scale`` = n_pos, i.e. the sum over every pair."""
        if self.sums:
            return neg.numel() / max(pos.numel(), 1), float(pos.numel())
        return (neg.shape[1] if neg_users is None else 1.0), 1.0

    def subtask(self, step: int) -> str:
        if self.spec.get("first_batch") == "both" and self.subtask_only is None:
            return "both" if step == 0 else ("dp" if step % 2 == 1 else "dn")
        return self.subtask_only or ("dp" if step % 2 == 0 else "dn")

    def batch_loss(self, users, pos, neg, step, neg_users=None):
        """``neg_users`` given (rows batching, the authors' CDAE): the negatives are entries of the
        batch matrix with their own users; the loss is reduced as :meth:`reduction` says (summed
        as ``normal``'s BCE by default, mean_pos + mean_neg under ``loss_reduction: authors``)."""
        subtask = self.subtask(step)
        if subtask == "both":
            return self._both_batch_loss(users, pos, neg, neg_users)
        f_pos, f_neg = pair_logits(self.f, users, pos, neg, neg_users)
        g_pos, g_neg = self.prior_logits(users, pos, neg, neg_users)
        active, other = (self.h, self.h_prime) if subtask == "dp" else (self.h_prime, self.h)
        n_pos, n_neg = pair_logits(active, users, pos, neg, neg_users)
        sig = torch.sigmoid
        ratio, scale = self.reduction(pos, neg, neg_users)
        if self.spec.get("loss_backward", "autograd") == "fused":
            # deca_loss on the sigmoids, fused: the same loss, its gradient in closed form (issue 21)
            loss, parts, noise_pos = deca_loss_from_logits(
                f_pos, f_neg, g_pos, g_neg, n_pos, n_neg, subtask, alpha=self.alpha, c_dp=self.c_dp,
                c_dn=self.c_dn, ratio=ratio)
        else:
            noise_pos = sig(n_pos)
            loss, parts = deca_loss(sig(f_pos), sig(f_neg), sig(g_pos), sig(g_neg), noise_pos, sig(n_neg),
                                    subtask, alpha=self.alpha, c_dp=self.c_dp, c_dn=self.c_dn, ratio=ratio)
            noise_pos = noise_pos.detach()
        if scale != 1.0:
            loss = loss * scale
        with torch.no_grad():  # tensors: the loop sums the parts and converts them once per epoch
            active_mean = noise_pos.mean()
            other_mean = sig(other(users, pos)).mean()
        h_mean, h_prime_mean = (active_mean, other_mean) if subtask == "dp" else (other_mean, active_mean)
        return loss, {"deca/kl": parts["kl"], "deca/h_mean": h_mean,
                      "deca/h_prime_mean": h_prime_mean, "likelihood": parts["likelihood"]}

    def agreement_gradient(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                           neg_users: torch.Tensor | None = None) -> dict[str, float]:
        """How much of f's gradient comes from the agreement KL against the DP/DN likelihood, on
        one mini-batch at the current weights: per sub-task the method runs, the norms of
        d(agreement)/d theta_f and d(likelihood)/d theta_f (L2 penalty left out) and the share
        |g_KL| / (|g_KL| + |g_lik|) (:func:`deca_tune.losses.deca.gradient_share`).

        Metrics: ``deca/grad_kl_share`` (mean over the sub-tasks), ``deca/grad_kl_share_dp`` /
        ``_dn``, ``deca/grad_norm_kl``, ``deca/grad_norm_likelihood``, ``deca/grad_norm_total``
        (means over the sub-tasks). The caller keeps the RNG and the weights' ``.grad`` as they
        were (the loop runs it under ``torch.random.fork_rng``; nothing here steps or writes
        ``.grad``)."""
        params = [p for p in self.f.parameters() if p.requires_grad]
        subtasks = (self.subtask_only,) if self.subtask_only else SUBTASKS
        sig = torch.sigmoid
        ratio, scale = self.reduction(pos, neg, neg_users)
        # plain lookups: under the linear recipe a row lookup's backward would hand the probe's
        # gradient to the optimiser (applied at the next step) and hide the tables from autograd
        with torch.enable_grad(), dense_lookups(self.f):
            f_pos, f_neg = (sig(x) for x in pair_logits(self.f, users, pos, neg, neg_users))
            with torch.no_grad():
                g_pos, g_neg = (sig(x) for x in self.prior_logits(users, pos, neg, neg_users))
            likelihoods = {}
            for sub in subtasks:  # the agreement term is the same for DP and DN
                with torch.no_grad():
                    noise = self.h if sub == "dp" else self.h_prime
                    n_pos, n_neg = (sig(x) for x in pair_logits(noise, users, pos, neg, neg_users))
                agreement, likelihood = deca_loss_parts(
                    f_pos, f_neg, g_pos, g_neg, n_pos, n_neg, sub, alpha=self.alpha, c_dp=self.c_dp,
                    c_dn=self.c_dn, ratio=ratio)
                agreement, likelihoods[sub] = agreement * scale, likelihood * scale
            per = gradient_shares(agreement, likelihoods, params)
        out = {f"deca/grad_kl_share_{sub}": v["share"] for sub, v in per.items()}
        for key, name in (("share", "grad_kl_share"), ("agreement", "grad_norm_kl"),
                          ("likelihood", "grad_norm_likelihood"), ("total", "grad_norm_total")):
            out[f"deca/{name}"] = sum(v[key] for v in per.values()) / len(per)
        return out

    def _both_batch_loss(self, users, pos, neg, neg_users):
        """The authors' first mini-batch (``first_batch: both``): likelihood term
        ``log(1-h)(1-f) + log(1-h') f`` for positives and negatives alike, both noise models
        learning; same KL and reduction as the DP/DN batches."""
        sig = torch.sigmoid
        f_pos, f_neg = (sig(x) for x in pair_logits(self.f, users, pos, neg, neg_users))
        g_pos, g_neg = (sig(x) for x in self.prior_logits(users, pos, neg, neg_users))
        h_pos, h_neg = (sig(x) for x in pair_logits(self.h, users, pos, neg, neg_users))
        hp_pos, hp_neg = (sig(x) for x in pair_logits(self.h_prime, users, pos, neg, neg_users))
        ratio, scale = self.reduction(pos, neg, neg_users)

        def term(f, h, hp):
            return safe_log(1.0 - h) * (1.0 - f) + safe_log(1.0 - hp) * f

        kl_pos, kl_neg = agreement_kl(f_pos, g_pos, self.alpha), agreement_kl(f_neg, g_neg, self.alpha)
        ll_pos, ll_neg = term(f_pos, h_pos, hp_pos), term(f_neg, h_neg, hp_neg)
        loss = scale * ((kl_pos - ll_pos).mean() + ratio * (kl_neg - ll_neg).mean())
        with torch.no_grad():
            parts = {"deca/kl": float(torch.cat([kl_pos, kl_neg.reshape(-1)]).mean()),
                     "deca/h_mean": float(h_pos.mean()), "deca/h_prime_mean": float(hp_pos.mean()),
                     "likelihood": float(torch.cat([ll_pos, ll_neg.reshape(-1)]).mean())}
        return loss, parts

    @torch.no_grad()
    def clean_probability(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Eq. 25: P(y=1 | y~=1) = h' f / (h' f + h (1 - f))."""
        f = torch.sigmoid(self.f(users, items))
        return clean_probability(f, torch.sigmoid(self.h(users, items)),
                                 torch.sigmoid(self.h_prime(users, items)))

    @torch.no_grad()
    def clean_logit(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The log-odds of Eq. 25 (same ranking, no float saturation; noise-detection AUC)."""
        return clean_logit(self.f(users, items), self.h(users, items), self.h_prime(users, items))


@REC_METHODS.register("deca")
class DeCA(DeCABase):
    """DeCA: co-train f with an auxiliary model g (Eq. 9, Algorithm 1)."""

    defaults = {**DeCABase.defaults, "aux_backbone": "mf"}

    def __init__(self, spec: dict[str, Any], split: RecSplit, subtask_only: str | None = None) -> None:
        super().__init__(spec, split, subtask_only)
        self.g: nn.Module = self.make_backbone(self.spec["aux_backbone"],
                                               seed=derive_seed(int(self.spec["seed"]), "g"))

    def prior_logits(self, users, pos, neg, neg_users=None):
        return pair_logits(self.g, users, pos, neg, neg_users)


def register_ablations(cls: type, name: str) -> None:
    """Table 5's ablations of ``cls``: ``<name>-dp`` and ``<name>-dn`` run one sub-task (DP or
    DN) on every mini-batch instead of alternating."""
    for sub in SUBTASKS:
        doc = f"{cls.__name__} with the {sub.upper()} sub-task only (Table 5)."
        variant = type(f"{cls.__name__}Only{sub.upper()}", (cls,), {"subtask_only": sub, "__doc__": doc,
                                                                    "__module__": cls.__module__})
        REC_METHODS.register(f"{name}-{sub}")(variant)


register_ablations(DeCA, "deca")
