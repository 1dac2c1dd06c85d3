"""``--sampler``: the paired start-up gives every method the same lr and l2 candidates."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from deca_tune.search.samplers import KeyedRandomSampler, make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

COMMON = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "l2": FloatDistribution(1e-2, 1e3, log=True)}
DECA = {"C0": FloatDistribution(1.0, 1000.0, log=True), "C1": FloatDistribution(1.0, 1000.0, log=True),
        "alpha": FloatDistribution(0.0, 1.0)}


def draws(sampler_name: str, space: dict, n: int = 8, seed: int = 0, start: dict | None = None) -> list[dict]:
    """``n`` trials as OptunaSearch asks them (fixed distributions, the first one enqueued)."""
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler_name, seed))
    if start:
        study.enqueue_trial(start)
    out = []
    for i in range(n):
        trial = study.ask(fixed_distributions=space)
        out.append(dict(trial.params))
        study.tell(trial, float(i % 3))
    return out


def test_paired_start_up_gives_every_method_the_same_lr_and_l2():
    normal = draws("paired", COMMON, start={"lr": 1e-3, "l2": 0.1})
    deca = draws("paired", {**COMMON, **DECA}, start={"lr": 1e-3, "l2": 0.1, "C0": 10.0, "C1": 100.0, "alpha": 0.0})
    tce = draws("paired", {"drop_rate": FloatDistribution(0.0, 0.5), **COMMON}, start={"lr": 1e-3, "l2": 0.01,
                                                                                        "drop_rate": 0.2})
    for k in range(1, 8):  # after each unit's own first trial (its authors' configuration)
        assert normal[k]["lr"] == deca[k]["lr"] == tce[k]["lr"], k
        assert normal[k]["l2"] == deca[k]["l2"] == tce[k]["l2"], k
    assert len({round(d["lr"], 12) for d in normal[1:]}) == 7  # distinct candidates, not one repeated
    # another search seed gives other candidates
    assert draws("paired", COMMON, seed=1)[1]["lr"] != normal[1]["lr"]


def test_optunas_own_start_up_shifts_the_draws_of_a_method_with_more_parameters():
    """Why ``paired`` exists: with one stream per study the lr / l2 candidates differ by method."""
    normal = draws("tpe", COMMON, start={"lr": 1e-3, "l2": 0.1})
    deca = draws("tpe", {**COMMON, **DECA}, start={"lr": 1e-3, "l2": 0.1, "C0": 10.0, "C1": 100.0, "alpha": 0.0})
    assert sum(normal[k]["lr"] == deca[k]["lr"] for k in range(2, 8)) == 0


def test_keyed_draws_are_uniform_on_the_transformed_range():
    study = optuna.create_study(sampler=KeyedRandomSampler(3))
    dist = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "n": IntDistribution(1, 4),
            "c": CategoricalDistribution(["a", "b"]), "s": FloatDistribution(0.0, 1.0, step=0.25)}
    lrs, ns, cs, ss = [], [], [], []
    for _ in range(2000):
        t = study.ask(fixed_distributions=dist)
        lrs.append(t.params["lr"]), ns.append(t.params["n"]), cs.append(t.params["c"]), ss.append(t.params["s"])
        study.tell(t, 0.0)
    logs = np.log10(lrs)
    assert logs.min() >= -4 and logs.max() <= -2
    assert abs(np.mean(logs) + 3) < 0.06 and abs(np.std(logs) - 2 / math.sqrt(12)) < 0.04  # log-uniform
    assert set(ns) == {1, 2, 3, 4} and set(cs) == {"a", "b"} and set(ss) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert 0.45 < cs.count("a") / len(cs) < 0.55


def test_unknown_sampler_is_refused():
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'; choose from paired, tpe"):
        make_sampler("cmaes", 0)
