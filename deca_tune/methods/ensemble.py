"""``ensemble``: two models of the same backbone with different seeds, each trained normally,
scored by the mean of their probabilities (the paper's Ensemble baseline, section 5.1.3).

The first member is ``f``, trained with BCE by the loop; the second is an independent ``normal``
run under seed ``seed + 1000`` (its own initialisation, shuffling and negatives), obtained through
the loop's ``pretrain`` callback and cached exactly like DeCA(p)'s f' (the same file: with the
same seed and settings the two are the same model). The second member is frozen while ``f``
trains; validation, early stopping and test all score the ensemble. Spec keys as DeCA(p):
``pretrain_seed``, ``pretrain_overrides``, ``pretrain_cache``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deca_tune.methods import REC_METHODS
from deca_tune.methods.base import PretrainFn
from deca_tune.methods.normal import Normal
from deca_tune.methods.pretrained import PRETRAIN_DEFAULTS, load_or_pretrain


@REC_METHODS.register("ensemble")
class Ensemble(Normal):
    """Mean probability of ``f`` and an independently trained twin."""

    defaults = dict(PRETRAIN_DEFAULTS)

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.member: nn.Module | None = None
        self.pretrain_info: dict[str, Any] = {}

    def prepare(self, pretrain: PretrainFn) -> None:
        build = lambda seed: self.make_backbone(self.spec["backbone"], seed=seed)  # noqa: E731
        self.member, self.pretrain_info = load_or_pretrain(self.spec, self.split, build, pretrain)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.member is not None:
            self.member.eval()
        return self

    @torch.no_grad()
    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Mean of the two members' probabilities (higher is better)."""
        if self.member is None:
            raise RuntimeError("ensemble: prepare(pretrain) must run first (it trains the twin)")
        return 0.5 * (torch.sigmoid(self.f.score_all(users)) + torch.sigmoid(self.member.score_all(users)))

    @torch.no_grad()
    def clean_probability(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The ensemble's probability of the pair (its own ranking score)."""
        return 0.5 * (torch.sigmoid(self.f(users, items)) + torch.sigmoid(self.member(users, items)))

    @torch.no_grad()
    def clean_logit(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """log-odds of the mean probability, computed in log space (no saturation)."""
        a, b = self.f(users, items), self.member(users, items)
        ls = torch.nn.functional.logsigmoid
        return torch.logaddexp(ls(a), ls(b)) - torch.logaddexp(ls(-a), ls(-b))
