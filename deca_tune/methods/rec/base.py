"""The method interface for recommendation: what the single rec loop asks of a method.

A method owns its models (the target ``f`` and any auxiliaries), computes the loss of one
mini-batch of (user, positive, sampled negatives) and scores items for ranking. The loop
(``deca_tune.training.rec_trainer``) owns batching, negative sampling, the optimiser, L2,
evaluation and checkpoints.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from deca_tune.methods.base import Method
from deca_tune.models.rec.base import recipe_of


class RecMethod(Method):
    """Recommendation methods. Subclasses override :meth:`batch_loss` and, if needed, the hooks."""

    task = "rec"
    #: negative sampler this method trains with (``deca_tune.data.sampling.SAMPLERS``)
    sampler: str = "uniform"
    #: :meth:`score_all` returns a new tensor on every call (true of every built-in backbone and
    #: method), so the evaluation may mask it in place (``RankingEvaluator``'s ``owned_scores``);
    #: set False if yours returns a tensor it keeps
    fresh_scores: bool = True

    def regularised_parameters(self) -> list[nn.Parameter]:
        """Parameters under the L2 penalty ``l2 / (2 n_users) * ||theta||^2``: the target model's."""
        return list(self.f.parameters())

    def regularised_rows(self, users: torch.Tensor, items: torch.Tensor
                         ) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
        """``recipe: linear``: ``(backbone, user index, item index)`` of every regularised model
        on this batch, whose ``user_tables`` / ``item_tables`` rows at those indices carry the
        batch L2 (``RecTrainer.batch_l2``); ``users``/``items``: the batch's scored pairs."""
        return [(self.f, users, items)]

    def epoch_order(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Indices into the training positives that make one epoch of the pairs batching, in
        order: a permutation (each positive once), drawn from the loop's generator ``rng``."""
        return rng.permutation(n)

    def batch_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                   step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one mini-batch. ``users``/``pos``: ``[B]``; ``neg``: ``[B, ratio]``.

        Returns the scalar loss (without L2) and named components to log.

        A method that also declares a ``neg_users=None`` parameter accepts the rows batching of
        backbones whose ``TrainingRecipe.batching`` is ``"rows"`` (the authors' ``cdae``): then
        ``neg`` is ``[N]`` items of their own users ``neg_users`` ``[N]`` (zero entries of the
        batch's user rows, not paired with the positives). Methods without it are trained on
        ``"pairs"`` batches on every backbone (:func:`takes_row_negatives`).
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


def takes_row_negatives(method: RecMethod) -> bool:
    """Whether ``method.batch_loss`` accepts negatives with their own users (``neg_users``)."""
    return "neg_users" in inspect.signature(method.batch_loss).parameters


#: spec ``loss_scale`` of the BCE baselines (``tce``, ``rce``): ``"deca"``, the base BCE of every
#: rec method (:mod:`deca_tune.losses.bce`, in the backbone recipe's reduction), or
#: ``"denoisingrec"``, the single mean over the mixed batch of the T-CE/R-CE authors' code
LOSS_SCALES = ("deca", "denoisingrec")


def check_loss_scale(spec: Mapping[str, Any], key: str = "loss_scale") -> None:
    """A :class:`deca_tune.tasks.base.SpecError` naming ``key`` unless it is one of ``LOSS_SCALES``."""
    from deca_tune.tasks.base import SpecError  # tasks import the method registries

    value = spec.get(key, "deca")
    if value not in LOSS_SCALES:
        raise SpecError(key, f"unknown value {value!r}; choose one of: {', '.join(LOSS_SCALES)}")


def bce_scale(method: RecMethod, key: str = "loss_scale") -> str:
    """The :func:`deca_tune.losses.bce.reduce_bce` scale of ``method.spec[key]``: the target
    backbone's ``TrainingRecipe.reduction`` for ``"deca"``, ``"single_mean"`` for
    ``"denoisingrec"``; a clear error naming the key otherwise."""
    check_loss_scale(method.spec, key)
    value = method.spec.get(key, "deca")
    return recipe_of(method.f).reduction if value == "deca" else "single_mean"
