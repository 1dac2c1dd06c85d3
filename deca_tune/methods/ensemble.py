"""``ensemble``: two models of the same backbone with different seeds, each trained normally,
scored by the mean of their probabilities (the paper's Ensemble baseline, section 5.1.3).

The two members, ``f`` (seed ``seed``) and ``twin`` (seed ``seed + 1000``), are trained side by
side in the one loop: each gets its own BCE on the same mini-batches (the losses are summed, so
the gradients, and with Adam the updates, of one member do not depend on the other) and the L2
penalty covers both. They differ in their initialisation only, not in their negatives; in
exchange both are always at the same epoch, so validation, early stopping and the last-epoch
numbers score a real ensemble of two equally trained models (a twin pre-trained separately and
selected at its own best epoch would be paired with an ``f`` of any age). The cost per epoch is
about twice ``normal``'s.
"""
from __future__ import annotations

import torch
from torch import nn

from deca_tune.methods import REC_METHODS
from deca_tune.methods.normal import Normal, bce_loss, pair_logits
from deca_tune.methods.pretrained import PRETRAIN_SEED_OFFSET

TWIN_SEED_OFFSET = PRETRAIN_SEED_OFFSET


@REC_METHODS.register("ensemble")
class Ensemble(Normal):
    """Mean probability of ``f`` and a twin trained alongside it from another seed."""

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.twin: nn.Module = self.make_backbone(self.spec["backbone"],
                                                  seed=int(self.spec["seed"]) + TWIN_SEED_OFFSET)

    def regularised_parameters(self) -> list[nn.Parameter]:
        return list(self.f.parameters()) + list(self.twin.parameters())

    def batch_loss(self, users, pos, neg, step):
        loss_f = bce_loss(*pair_logits(self.f, users, pos, neg))
        loss_twin = bce_loss(*pair_logits(self.twin, users, pos, neg))
        return loss_f + loss_twin, {"bce": float(loss_f.detach()), "bce_twin": float(loss_twin.detach())}

    @torch.no_grad()
    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Mean of the two members' probabilities (higher is better)."""
        return 0.5 * (torch.sigmoid(self.f.score_all(users)) + torch.sigmoid(self.twin.score_all(users)))

    @torch.no_grad()
    def clean_probability(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The ensemble's probability of the pair (its own ranking score)."""
        return 0.5 * (torch.sigmoid(self.f(users, items)) + torch.sigmoid(self.twin(users, items)))

    @torch.no_grad()
    def clean_logit(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """log-odds of the mean probability, computed in log space (no saturation)."""
        a, b = self.f(users, items), self.twin(users, items)
        ls = torch.nn.functional.logsigmoid
        return torch.logaddexp(ls(a), ls(b)) - torch.logaddexp(ls(-a), ls(-b))
