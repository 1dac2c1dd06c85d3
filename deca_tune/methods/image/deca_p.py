"""``deca_p``: multi-class DeCA with a fixed pre-trained prior (paper section 4.2-4.3, Algorithm 3).

- ``f'``: the same backbone trained with ``normal`` cross-entropy under a different seed (spec
  ``pretrain_seed``, default ``seed + 1000``; ``pretrain_overrides`` changes other settings, e.g.
  ``{"max_epochs": 5}``) on the same noisy data, then frozen (Algorithm 3, lines 1-7); it models
  the prior ``P(Y)``. The loop trains it (or takes it from its cache, shared by every trial of a
  search with the same seed and data).
- ``h``: the noise model ``h(x, c) = P(y~ | y = c, x)``, a 2-layer MLP with ReLU reading ``f``'s
  penultimate embedding and the candidate true class ``c`` (section 4.4).
- At global step ``T`` the attended class is ``k = T mod C``. During the first ``T1`` epochs the
  likelihood term is Eq. 22 with constants ``C1``, ``C2``; afterwards Eq. 24 (``h`` under
  stop-gradient for classes other than ``k``). The loss is Eq. 16: ``-E[log P(y~|y)] + KL(f||f')``
  (Eq. 17, 18). ``f`` and ``h`` are updated together by the loop's optimiser.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from deca_tune.losses.deca import gradient_share
from deca_tune.losses.deca_multiclass import (deca_p_loss, expected_loglik_eq22,
                                              expected_loglik_eq24, kl_f_fprime)
from deca_tune.methods.registry import IMAGE_METHODS
from deca_tune.methods.base import PRETRAIN_DEFAULTS, PretrainFn, pretrain_overrides
from deca_tune.methods.image.base import ImageMethod
from deca_tune.tasks.base import SpecError, check_range


class NoiseModel(nn.Module):
    """``h``: ``[embedding, one_hot(c)] -> hidden (ReLU) -> log P(y~ = . | y = c, x)``.

    The first layer on the concatenation is split into a linear map of the embedding plus a
    per-class vector (exactly a linear layer on the one-hot part), so all ``C`` candidate
    classes cost one small matrix product.
    """

    def __init__(self, embed_dim: int, n_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.embed_proj = nn.Linear(embed_dim, hidden)
        self.class_proj = nn.Linear(n_classes, hidden, bias=False)  # acts on one_hot(c)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``[B, C_true, C_observed]`` for every candidate true class."""
        hid = self.embed_proj(z)[:, None, :] + self.class_proj.weight.t()[None, :, :]
        return F.log_softmax(self.out(F.relu(hid)), dim=-1)


@IMAGE_METHODS.register("deca_p")
class DeCAp(ImageMethod):
    #: ``agreement_grad``: log per epoch how much of f's gradient the KL to f' gives
    #: (:meth:`agreement_gradient`); it never changes what training computes
    defaults = {"C1": 1.0, "C2": 1.0, "T1": 10, "h_hidden": 64, "h_detach": False,
                "eq24_observed_term": True, "agreement_grad": True, **PRETRAIN_DEFAULTS}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any]) -> None:
        """``C1``, ``C2`` finite and >= 0, ``T1`` an integer >= 0, ``h_hidden`` >= 1."""
        s = {**cls.defaults, **spec}
        check_range(s, "C1", 0)
        check_range(s, "C2", 0)
        check_range(s, "T1", 0, integer=True)
        check_range(s, "h_hidden", 1, integer=True)
        if not isinstance(s.get("pretrain_overrides") or {}, dict):
            raise SpecError("pretrain_overrides", f"must be a mapping, got {s['pretrain_overrides']!r}")

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.check_spec(self.spec)
        s = self.spec
        self.c1, self.c2, self.t1 = float(s["C1"]), float(s["C2"]), int(s["T1"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(s["seed"]) + 15485863)
            self.h = NoiseModel(self.f.embed_dim, self.n_classes, int(s["h_hidden"]))
        # built untrained here so that a checkpoint can restore it; prepare() trains it
        self.f_prime = self.make_backbone(s["backbone"], seed=pretrain_overrides(s)["seed"])
        self.f_prime.requires_grad_(False)

    def prepare(self, pretrain: PretrainFn) -> None:
        prior = pretrain(pretrain_overrides(self.spec))
        self.f_prime.load_state_dict(prior.state_dict())
        self.f_prime.requires_grad_(False)
        self.f_prime.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.f_prime.eval()  # frozen prior: batch-norm statistics stay fixed
        return self

    def trainable_parameters(self):
        return [p for m in (self.f, self.h) for p in m.parameters() if p.requires_grad]

    def _terms(self, x, y, step, epoch):
        """(expected log-likelihood per example, KL(f||f') per example, log h) of Eq. 16."""
        k = step % self.n_classes
        logits, z = self.f(x, return_embedding=True)
        log_p = F.log_softmax(logits, dim=1)
        p = log_p.exp()
        with torch.no_grad():
            log_p_prime = F.log_softmax(self.f_prime(x), dim=1)
        log_h = self.h(z.detach() if self.spec["h_detach"] else z)
        if epoch < self.t1:
            expected = expected_loglik_eq22(p, log_h[:, k, :], y, k, self.c1, self.c2)
        else:
            expected = expected_loglik_eq24(p, log_h, y, k, bool(self.spec["eq24_observed_term"]))
        return expected, kl_f_fprime(log_p, log_p_prime), log_h

    def agreement_gradient(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int) -> dict[str, float]:
        """How much of f's gradient comes from the agreement KL(f||f') against the likelihood
        term on one batch (``x`` normalised, without augmentation) at the current weights, with
        the attended class of ``step``: ``deca/grad_kl_share`` = |g_KL| / (|g_KL| + |g_lik|) and
        the norms ``deca/grad_norm_kl``, ``deca/grad_norm_likelihood``, ``deca/grad_norm_total``
        (:func:`deca_tune.losses.deca.gradient_share`). f's batch-norm statistics are restored
        afterwards and no ``.grad`` is written; the caller forks the torch RNG."""
        params = [p for p in self.f.parameters() if p.requires_grad]
        saved = [b.detach().clone() for b in self.f.buffers()]
        try:
            with torch.enable_grad():
                expected, kl, _ = self._terms(x, y, step, epoch)
                got = gradient_share(kl.float().mean(), -expected.float().mean(), params)
        finally:
            with torch.no_grad():
                for b, old in zip(self.f.buffers(), saved):
                    b.copy_(old)
        return {"deca/grad_kl_share": got["share"], "deca/grad_norm_kl": got["agreement"],
                "deca/grad_norm_likelihood": got["likelihood"], "deca/grad_norm_total": got["total"]}

    def batch_loss(self, x, y, step, epoch, lr):
        expected, kl, log_h = self._terms(x, y, step, epoch)
        loss = deca_p_loss(expected, kl)
        with torch.no_grad():  # mean h(x, y~, y~): the noise model's "label kept" probability
            h_keep = log_h[torch.arange(len(y), device=y.device), y, y].exp().mean()
        return loss, {"likelihood": float(-expected.mean().detach()), "kl": float(kl.mean().detach()),
                      "deca/kl": float(kl.mean().detach()), "deca/h_mean": float(h_keep),
                      "deca/phase": 22.0 if epoch < self.t1 else 24.0}
