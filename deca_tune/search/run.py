"""Ray Tune plumbing of ``python -m deca_tune.search``: cluster, resources, one Tuner per unit.

Search units go to ``<experiment>/search/<unit>/`` and seed reruns to ``<experiment>/seeds/<unit>/``
(docs/architecture.md). Metric and mode live in one place, the ``TuneConfig`` (``score``, max):
OptunaSearch and ASHA read them from there.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from deca_tune.search.plan import Plan, Unit
from deca_tune.search.spaces import grid_space, tune_space
from trainables import SCORE, trainable


class ExperimentInterrupted(Exception):
    """Tune stopped before every trial finished (Ctrl-C, SIGUSR1): resume with ``--resume``."""


class ResourceError(ValueError):
    """Trials would ask for more than any node of the cluster has (they would wait forever)."""


@dataclass
class Resources:
    cpus: float
    gpus: float
    concurrency: int
    cluster: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (f"{self.cpus:g} CPU + {self.gpus:g} GPU per trial, {self.concurrency} concurrent; "
                f"cluster: {self.cluster.get('CPU', 0):g} CPUs, {self.cluster.get('GPU', 0):g} GPUs, "
                f"{int(self.cluster.get('nodes', 1))} node(s)")
        return "\n            ".join([text, *self.notes])


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), else start a local Ray.

    Already connected (tests, notebooks): keep that connection.
    """
    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"include_dashboard": False} if target == "local" else {}
    ray.init(address=target, log_to_driver=True, **kwargs)


def plan_resources(cpus_per_trial: float, gpus_per_trial: float,
                   max_concurrent: int | None) -> Resources:
    """Check the request against the cluster; with no GPU there, fall back to CPUs (never PENDING)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    cluster = {"CPU": float(total.get("CPU", 0)), "GPU": float(total.get("GPU", 0)),
               "nodes": float(len(nodes))}
    notes: list[str] = []
    gpus = gpus_per_trial
    if gpus > 0 and cluster["GPU"] == 0:
        notes.append(f"note: the cluster has no GPUs, so --gpus-per-trial {gpus:g} is ignored and "
                     "trials run on CPUs")
        gpus = 0.0
    max_node_cpu = max((float(n.get("CPU", 0)) for n in nodes), default=0.0)
    if cpus_per_trial > max_node_cpu:
        raise ResourceError(f"--cpus-per-trial {cpus_per_trial:g}: no node of the cluster has that "
                            f"many CPUs (largest: {max_node_cpu:g}); trials would wait forever")
    max_node_gpu = max((float(n.get("GPU", 0)) for n in nodes), default=0.0)
    if gpus > max_node_gpu:
        raise ResourceError(f"--gpus-per-trial {gpus:g}: no node of the cluster has that many GPUs "
                            f"(largest: {max_node_gpu:g}); trials would wait forever")
    auto = max(1, math.floor(cluster["CPU"] / cpus_per_trial + 1e-9))
    if gpus > 0:
        auto = max(1, min(auto, math.floor(cluster["GPU"] / gpus + 1e-9)))
    return Resources(cpus_per_trial, gpus, max_concurrent or auto, cluster, notes)


#: driver-side Tune settings: the trainable writes TensorBoard files itself (Tune's CSV/JSON
#: loggers are added explicitly), and a checkpoint every epoch is intended, not a warning
_TUNE_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
             "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}


@contextlib.contextmanager
def _tune_env() -> Iterator[None]:
    old = {k: os.environ.get(k) for k in _TUNE_ENV}
    os.environ.update(_TUNE_ENV)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _trainable(res: Resources):
    return tune.with_resources(trainable, {"cpu": res.cpus, "gpu": res.gpus})


def _run_config(plan: Plan, folder: str, unit: Unit, callbacks: Sequence[Any]) -> tune.RunConfig:
    return tune.RunConfig(
        name=unit.key,
        storage_path=str(plan.experiment_dir / folder),
        failure_config=tune.FailureConfig(max_failures=plan.cfg.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        sync_config=tune.SyncConfig(sync_artifacts=True),  # TensorBoard files of the trial dir
        callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), *callbacks],
        verbose=plan.cfg.verbose,
    )


def _unfinished(grid: tune.ResultGrid, expected: int) -> int:
    """Trials not yet terminated or errored, counting those the searcher has yet to create."""
    return max(expected, len(grid)) - grid.num_terminated - grid.num_errors


def _fit(path: Path, make_tuner, resourced, resume: bool, expected: int) -> tune.ResultGrid:
    """Fit a new Tuner, or restore one (finished trials kept, errored ones retried)."""
    with _tune_env():
        if resume and tune.Tuner.can_restore(str(path)):
            tuner = tune.Tuner.restore(str(path), resourced, resume_errored=True)
            grid = tuner.get_results()
            if _unfinished(grid, expected) == 0 and grid.num_errors == 0:
                return grid  # done before: nothing to repeat
        else:
            tuner = make_tuner()
        grid = tuner.fit()
    left = _unfinished(grid, expected)
    if left:
        raise ExperimentInterrupted(f"{path}: {left} of {expected} trial(s) did not finish")
    return grid


def run_search(plan: Plan, unit: Unit, res: Resources,
               callbacks: Sequence[Any] = ()) -> tune.ResultGrid:
    """The search of one unit: Optuna + ASHA (or the paper grid) over its space."""
    cfg = plan.cfg
    resourced = _trainable(res)
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=cfg.max_epochs, grace_period=cfg.grace_period,
                               reduction_factor=cfg.reduction_factor)
                 if cfg.use_asha else FIFOScheduler())

    def make_tuner() -> tune.Tuner:
        if cfg.search == "grid":
            space, searcher, samples = grid_space(unit.space), None, 1
        else:
            space, samples = tune_space(unit.space), cfg.num_samples
            start = unit.space.start_point()
            searcher = (OptunaSearch(seed=cfg.search_seed, points_to_evaluate=[start] if start else None)
                        if unit.space.params else None)
        return tune.Tuner(
            resourced,
            param_space={**unit.spec, **space},
            tune_config=tune.TuneConfig(
                metric=SCORE, mode="max", search_alg=searcher, scheduler=scheduler,
                num_samples=samples, max_concurrent_trials=res.concurrency, reuse_actors=True,
                trial_dirname_creator=lambda trial: trial.trial_id),
            run_config=_run_config(plan, "search", unit, callbacks),
        )

    return _fit(plan.experiment_dir / "search" / unit.key, make_tuner, resourced, cfg.resume,
                unit.n_trials(cfg))


def run_seeds(plan: Plan, unit: Unit, best_config: dict[str, Any], res: Resources,
              callbacks: Sequence[Any] = ()) -> tune.ResultGrid:
    """Rerun ``best_config`` once per seed (full ``max_epochs``, no early stopping by Tune)."""
    cfg = plan.cfg
    resourced = _trainable(res)
    config = {**best_config, "seed": tune.grid_search(list(cfg.seeds))}

    def make_tuner() -> tune.Tuner:
        return tune.Tuner(
            resourced,
            param_space=config,
            tune_config=tune.TuneConfig(
                metric=SCORE, mode="max", scheduler=FIFOScheduler(), num_samples=1,
                max_concurrent_trials=res.concurrency, reuse_actors=True,
                trial_dirname_creator=lambda trial: f"seed{trial.config['seed']}_{trial.trial_id}"),
            run_config=_run_config(plan, "seeds", unit, callbacks),
        )

    return _fit(plan.experiment_dir / "seeds" / unit.key, make_tuner, resourced, cfg.resume,
                len(cfg.seeds))


def timed(fn, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start
