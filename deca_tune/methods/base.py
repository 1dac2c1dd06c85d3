"""The method interface for recommendation: what the single training loop asks of a method.

A method owns its models (the target ``f`` and any auxiliaries), computes the loss of one
mini-batch and scores items for ranking. The loop (``deca_tune.training.rec_trainer``) owns
everything else: batching, negative sampling, the optimiser, L2, evaluation, checkpoints.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from deca_tune.data.interactions import RecSplit
from deca_tune.models.rec import build_backbone

#: trains a model with the ``normal`` method under a derived spec and returns its target model.
#: Methods that need a pre-trained model (DeCA(p)) or several models call it in ``prepare``.
PretrainFn = Callable[[dict[str, Any]], nn.Module]


class RecMethod(nn.Module):
    """Base class. Subclasses override :meth:`batch_loss` and, if needed, the other hooks."""

    #: negative sampler this method trains with (``deca_tune.data.sampling.SAMPLERS``)
    sampler: str = "uniform"
    #: hyperparameters this method reads from the spec, with defaults
    defaults: dict[str, Any] = {}

    def __init__(self, spec: dict[str, Any], split: RecSplit) -> None:
        super().__init__()
        self.spec = {**self.defaults, **spec}
        self.split = split
        self.f = self.make_backbone(spec["backbone"], seed=int(spec["seed"]))

    def make_backbone(self, name: str, seed: int, **kwargs: Any) -> nn.Module:
        """A fresh backbone initialised from ``seed`` (independent of the global RNG)."""
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            return build_backbone(name, self.split, **kwargs)
        finally:
            torch.random.set_rng_state(state)

    def regularised_parameters(self) -> list[nn.Parameter]:
        """Parameters under the L2 penalty ``l2 / (2 n_users) * ||theta||^2``: the target model's."""
        return list(self.f.parameters())

    def prepare(self, pretrain: PretrainFn) -> None:
        """Called once before the first epoch (after construction, before resume)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for methods whose behaviour depends on the epoch."""

    def batch_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                   step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one mini-batch. ``users``/``pos``: ``[B]``; ``neg``: ``[B, ratio]``.

        Returns the scalar loss (without L2) and named components to log.
        """
        raise NotImplementedError

    @torch.no_grad()
    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Ranking scores of every item for ``users``: ``[B, n_items]`` (higher is better)."""
        return self.f.score_all(users)

    @torch.no_grad()
    def clean_probability(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor | None:
        """P(real positive) for observed pairs (paper section 5.4); ``None`` if not defined."""
        return None
