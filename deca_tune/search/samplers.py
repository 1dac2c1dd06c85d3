"""The Optuna samplers of a search (``--sampler``): ``paired`` (default) and ``tpe``.

Both are Optuna's :class:`~optuna.samplers.TPESampler`, seeded with ``--search-seed``; they
differ only in its random start-up (the first ``n_startup_trials`` = 10 trials, so every trial of
an 8-trial preset):

- ``tpe``: Optuna's own start-up, one random stream per study. A parameter's draw depends on how
  many draws came before it, so a method with extra parameters (DeCA's C0, C1, alpha; T-CE's drop
  rate) gets other lr and l2 values than ``normal`` from its second trial on: with a handful of
  trials, which method happens to try the good lr / l2 region is luck, and it decides the table
  (measured: docs/benchmarks-paper-tables.md).
- ``paired``: the start-up draws each parameter from its own stream, keyed by (search seed,
  parameter name, trial number) (:class:`KeyedRandomSampler`). Every unit's k-th trial then tries
  the same lr and l2 as every other unit's whose space gives them the same range, whatever else
  the method searches, so the methods of a table are compared on paired candidates: a difference
  between them is the method's, not the draw's. The draws no longer depend on the order in
  which Tune asks for trials either. After the start-up, TPE models the results as usual.
"""
from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from deca_tune.search.config import SAMPLERS


class KeyedRandomSampler(RandomSampler):
    """Uniform sampling (log-uniform for log ranges, as :class:`RandomSampler`) in which a value
    depends only on ``(seed, parameter name, trial number)``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.seed = int(seed)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # RandomSampler's transform (log ranges, steps, categorical one-hot), keyed generator
        from optuna._transform import _SearchSpaceTransform

        trans = _SearchSpaceTransform({param_name: param_distribution})
        rng = np.random.default_rng([self.seed, zlib.crc32(param_name.encode()), int(trial.number)])
        values = rng.uniform(trans.bounds[:, 0], trans.bounds[:, 1])
        return trans.untransform(values)[param_name]


def make_sampler(name: str, seed: int) -> TPESampler:
    """The TPE sampler of ``--sampler name`` (see the module docstring)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    sampler = TPESampler(seed=seed)
    if name == "paired":
        if not isinstance(getattr(sampler, "_random_sampler", None), RandomSampler):
            raise RuntimeError("this Optuna's TPESampler has no _random_sampler for its start-up: "
                               "--sampler paired cannot be built; use --sampler tpe")
        sampler._random_sampler = KeyedRandomSampler(seed)
    return sampler


__all__ = ["KeyedRandomSampler", "SAMPLERS", "make_sampler"]
