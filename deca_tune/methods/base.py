"""The method interface: what a training loop asks of a method, in both task families.

A method owns its models (the target ``f`` and any auxiliaries), computes the loss of one
mini-batch and scores examples. The loop (``deca_tune.training``) owns everything else:
batching, negative sampling, the optimiser, L2, the schedule, evaluation, checkpoints, and
pre-training the prior ``f'`` of DeCA(p) (with its cache; a method only says which run it wants).

- :class:`Method`: shared by both families: the spec with the method's ``defaults``, backbones
  initialised from their own seed, the hooks.
- the family interfaces on top: :class:`deca_tune.methods.rec.base.RecMethod` (``batch_loss(users,
  pos, neg, step)``, ``score_all``) and :class:`deca_tune.methods.image.base.ImageMethod`.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

#: trains a model with the ``normal`` method under the spec overrides given and returns its
#: target model ``f`` (from the loop's cache when the same run was trained before).
PretrainFn = Callable[[dict[str, Any]], nn.Module]

#: seed offset of a method's second model trained like the first (DeCA(p)'s f', the ensemble's twin)
PRETRAIN_SEED_OFFSET = 1000
#: spec keys of methods with a pre-trained prior (DeCA(p) in both families)
PRETRAIN_DEFAULTS: dict[str, Any] = {
    "pretrain_seed": None,  # None = seed + PRETRAIN_SEED_OFFSET (never the target model's seed)
    "pretrain_overrides": {},  # spec entries that differ for the pre-training run, e.g. {"l2": 0.05}
}


def pretrain_overrides(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec changes of the pre-training run of a prior: its seed, plus ``pretrain_overrides``."""
    extra = spec.get("pretrain_overrides") or {}
    if not isinstance(extra, dict):
        raise TypeError(f"spec key 'pretrain_overrides' must be a dict, got {type(extra).__name__}")
    seed = spec.get("pretrain_seed")
    seed = int(spec["seed"]) + PRETRAIN_SEED_OFFSET if seed is None else int(seed)
    return {"seed": seed, **extra}


class Method(nn.Module):
    """Base of every method: ``cls(spec, split)``; subclasses add models and the loss."""

    #: the task family (``deca_tune.tasks``) whose backbones this method builds
    task: ClassVar[str]
    #: hyperparameters this method reads from the spec, with defaults
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, spec: dict[str, Any], split: Any) -> None:
        super().__init__()
        self.spec = {**self.defaults, **spec}
        self.split = split
        self.f = self.make_backbone(spec["backbone"], seed=int(spec["seed"]))

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any]) -> None:
        """Raise :class:`deca_tune.tasks.SpecError` for an invalid hyperparameter (before training)."""

    def make_backbone(self, name: str, seed: int, **kwargs: Any) -> nn.Module:
        """A fresh backbone of this method's family, initialised from ``seed`` (the global torch
        RNG is left as it was)."""
        from deca_tune.tasks import get_task

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return get_task(self.task).build_backbone(name, self.split, **kwargs)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the loop's optimiser updates (default: every parameter that requires grad)."""
        return [p for p in self.parameters() if p.requires_grad]

    def prepare(self, pretrain: PretrainFn) -> None:
        """Called once before the first epoch of a fresh run (not on resume: the checkpoint holds
        whatever ``prepare`` built)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for methods whose behaviour depends on the epoch (0-based)."""
