"""YAML search spaces (``search_spaces/``) as Ray Tune domains: sampled ones for OptunaSearch
(which converts them to Optuna distributions) and ``tune.grid_search`` over the paper grids."""
from __future__ import annotations

from typing import Any

from ray import tune

from search_spaces.loader import Param, SearchSpace


def tune_domain(param: Param) -> Any:
    """The Tune sampling domain of one parameter (bounds inclusive, as in the YAML files)."""
    if param.distribution == "loguniform":
        return tune.loguniform(param.low, param.high)
    if param.distribution == "uniform":
        return tune.uniform(param.low, param.high)
    if param.distribution == "int":  # Tune's upper bound is exclusive
        return tune.randint(int(param.low), int(param.high) + 1)
    if param.distribution == "logint":
        return tune.lograndint(int(param.low), int(param.high) + 1)
    return tune.choice(list(param.values))


def tune_space(space: SearchSpace) -> dict[str, Any]:
    """Tune sampling domains, for ``Tuner(param_space=...)`` with OptunaSearch."""
    return {name: tune_domain(p) for name, p in space.params.items()}


def grid_space(space: SearchSpace) -> dict[str, Any]:
    """``tune.grid_search`` over the paper grid of every parameter (Tune's variant generator)."""
    return {name: tune.grid_search(list(p.grid)) for name, p in space.params.items()}
