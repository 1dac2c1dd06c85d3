"""Ray Tune plumbing of ``python -m deca_tune.search``: cluster, resources, one Tuner per unit.

Search units go to ``<experiment>/search/<unit>/`` and seed reruns to ``<experiment>/seeds/<unit>/``
(docs/architecture.md). Metric and mode live in one place, the ``TuneConfig`` (``score``, max):
OptunaSearch and ASHA read them from there.

- Optuna's study of each unit is stored in ``<experiment>/optuna/<unit>.db`` (SQLite, study name
  = the unit key), so ``optuna.load_study(study_name=UNIT, storage="sqlite:///.../UNIT.db")`` and
  ``optuna-dashboard`` open it; a trial that ended with a deterministic error
  (``trainables.trial``: a last result with ``trial_error``) is recorded there as failed.
- Every Tuner gets :class:`deca_tune.search.console.ConsoleCallback` (the trial events) and Tune's
  own output only at ``--verbose 2``. A restored Tuner (``--resume``) gets this run's callbacks,
  verbosity and ``--max-failures``, not the pickled ones of the first run.
- ``--max-failures`` retries crashes from the last checkpoint; deterministic errors end their
  trial normally (see ``trainables.trial``), so they are neither retried nor rerun on resume.
- An interrupted fit (Ctrl-C) raises :class:`ExperimentInterrupted` with the number of trials
  that had not ended, counted on the experiment state Tune saved (running trials included).
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from deca_tune.search.console import ConsoleCallback, Progress
from deca_tune.search.plan import Plan, Unit
from deca_tune.search.samplers import make_sampler
from deca_tune.search.spaces import grid_space, tune_space
from trainables import SCORE, TRIAL_ERROR, trainable


class ExperimentInterrupted(Exception):
    """Tune stopped before every trial finished (Ctrl-C, SIGUSR1): resume with ``--resume``."""

    def __init__(self, message: str, unfinished: int = 0, expected: int = 0) -> None:
        super().__init__(message)
        self.unfinished, self.expected = unfinished, expected


class DeterministicAwareOptuna(OptunaSearch):
    """OptunaSearch that records a trial ended by a deterministic error as FAIL.

    Such a trial ends normally with a last result holding ``trial_error`` (no retry), which
    plain OptunaSearch would tell as a completed trial with its score."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get(TRIAL_ERROR):
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and result.get(TRIAL_ERROR):
            result, error = None, True
        super().on_trial_complete(trial_id, result=result, error=error)


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


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), else start a local Ray; returns
    whether this call connected (the caller then shuts it down).

    Already connected (tests, notebooks): keep that connection. Worker output reaches the
    driver (``log_to_driver``), where :func:`deca_tune.search.console.capture` sends it to
    ``search.log``.
    """
    if ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"include_dashboard": False} if target == "local" else {}
    ray.init(address=target, log_to_driver=True, **kwargs)
    return True


def optuna_storage_url(plan: Plan, unit: Unit) -> str:
    """``sqlite:///<experiment>/optuna/<unit>.db``: the unit's Optuna study (name = unit key)."""
    return f"sqlite:///{plan.experiment_dir / 'optuna' / f'{unit.key}.db'}"


def optuna_storage(plan: Plan, unit: Unit) -> Any:
    import optuna

    (plan.experiment_dir / "optuna").mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(optuna_storage_url(plan, unit))


def close_stale_optuna_trials(plan: Plan, unit: Unit) -> None:
    """Mark as failed the study's trials still RUNNING once the unit's search has ended: ones
    the sampler handed out that Tune never reported back (e.g. asked just before a Ctrl-C)."""
    import optuna

    path = plan.experiment_dir / "optuna" / f"{unit.key}.db"
    if not path.exists():
        return
    try:
        storage = optuna.storages.RDBStorage(optuna_storage_url(plan, unit))
        study = optuna.load_study(study_name=unit.key, storage=storage)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    except Exception:  # noqa: BLE001 - bookkeeping only
        pass


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


class _TuneEnv:
    """Tune's driver settings (:data:`_TUNE_ENV`) while any fit runs; re-entrant, because units in
    flight at once fit in several threads: the first fit sets them, the last one restores them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fits = 0
        self.saved: dict[str, str | None] = {}

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if self.fits == 0:
                self.saved = {k: os.environ.get(k) for k in _TUNE_ENV}
                os.environ.update(_TUNE_ENV)
            self.fits += 1
        try:
            yield
        finally:
            with self.lock:
                self.fits -= 1
                if self.fits == 0:
                    for k, v in self.saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v


_tune_env = _TuneEnv()


@contextlib.contextmanager
def shared_stop(event: threading.Event) -> Iterator[None]:
    """While active, every ``Tuner.fit`` of this process, in any thread, ends as on Ctrl-C when
    ``event`` is set: Tune saves the experiment state with unfinished trials resumable.

    Tune installs its SIGINT handler only when fitted in the main thread; the driver fits units
    in threads when several run at once (``--overlap``), so the driver's own handler sets this
    one event instead. Tune takes the event from ``ray.tune.tune._setup_signal_catching`` (Ray
    2.x); without that hook the driver runs one unit at a time (:func:`can_share_stop`)."""
    import ray.tune.tune as tune_run

    original = tune_run._setup_signal_catching
    tune_run._setup_signal_catching = lambda: event
    try:
        yield
    finally:
        tune_run._setup_signal_catching = original


def can_share_stop() -> bool:
    """Whether this Ray has the hook :func:`shared_stop` replaces."""
    import ray.tune.tune as tune_run

    return callable(getattr(tune_run, "_setup_signal_catching", None))


#: spec entries of search trials and of seed reruns (for the families whose spec has the key, and
#: unless the experiment fixes it with --set): a search trial evaluates each epoch only what ASHA
#: and Optuna read (its last epoch reports every split); a seed rerun every split every epoch,
#: for the report's per-epoch test curves
SEARCH_TRIAL = {"eval_splits": "selection"}
SEED_RUN = {"eval_splits": "all"}


def _phase_entries(spec: dict[str, Any], fixed: dict[str, Any], entries: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entries.items() if k in spec and k not in fixed}


def share_data() -> tuple[list[Any], float]:
    """Put the data sets the driver loaded (``load_data``) into Ray's object store once for the
    whole experiment and drop the driver's own copies (its caches reload from the split cache
    should it need one again); returns ``([ref], seconds)``. Every trial, on any node, fetches
    them from there instead of parsing the files again (``trainables.trial``)."""
    from deca_tune.data.loading import clear_cache, loaded_datasets

    start = time.perf_counter()
    ref = ray.put(loaded_datasets())
    clear_cache()
    return [ref], time.perf_counter() - start


def _trainable(res: Resources, shared: list[Any]):
    """The trainable with its resources and the data sets the driver shared (:func:`share_data`)."""
    with_data = tune.with_parameters(trainable, shared=shared)
    return tune.with_resources(with_data, {"cpu": res.cpus, "gpu": res.gpus})


#: the name under which :func:`register_trial` registers the experiment's trainable
TRIAL_NAME = "deca_tune_trial"


def register_trial(res: Resources, shared: list[Any]) -> str:
    """Register the experiment's trainable (resources, shared data) once, by name, in the main
    thread: Tune's registry is not safe to write from several threads, and every unit's Tuner
    (fitted in its own thread when units overlap) then only names it."""
    tune.register_trainable(TRIAL_NAME, _trainable(res, shared))
    return TRIAL_NAME


def _run_config(plan: Plan, folder: str, unit: Unit, callbacks: Sequence[Any]) -> tune.RunConfig:
    return tune.RunConfig(
        name=unit.key,
        storage_path=str(plan.experiment_dir / folder),
        failure_config=tune.FailureConfig(max_failures=plan.cfg.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        sync_config=tune.SyncConfig(sync_artifacts=True),  # TensorBoard files of the trial dir
        callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), ConsoleCallback(unit.key, folder), *callbacks],
        verbose=2 if plan.cfg.verbose >= 2 else 0,
    )


def ended_on_disk(path: Path) -> int | None:
    """Trials of the Tune experiment at ``path`` that had ended (TERMINATED or ERROR) in the
    state Tune saved last. After Ctrl-C the in-memory ResultGrid calls running trials
    TERMINATED too, while the saved state keeps them resumable; None if it cannot be read."""
    try:
        analysis = tune.ExperimentAnalysis(str(path))
        return sum(1 for t in analysis.trials if t.status in ("TERMINATED", "ERROR"))
    except Exception:  # noqa: BLE001
        return None


def _refresh_run_config(tuner: tune.Tuner, fresh: tune.RunConfig) -> None:
    """A restored Tuner keeps the pickled RunConfig of the first run: give it this run's
    callbacks (the console, the caller's), verbosity and failure policy."""
    local = getattr(tuner, "_local_tuner", None)
    run_config = local.get_run_config() if local is not None and hasattr(local, "get_run_config") else None
    if run_config is None:
        return
    run_config.callbacks = fresh.callbacks
    run_config.verbose = fresh.verbose
    run_config.failure_config = fresh.failure_config


def _fit(path: Path, make_tuner, resourced, resume: bool, expected: int, run_config: tune.RunConfig,
         progress: Progress | None = None, phase: tuple[str, str] | None = None) -> tune.ResultGrid:
    """Fit a new Tuner, or restore one (ended trials kept, unfinished ones continued)."""
    with _tune_env():
        if resume and tune.Tuner.can_restore(str(path)):
            tuner = tune.Tuner.restore(str(path), resourced, resume_errored=True)
            _refresh_run_config(tuner, run_config)
            grid = tuner.get_results()
            done = grid.num_terminated + grid.num_errors
            if progress is not None:
                progress.account(min(grid.num_terminated, expected), phase=phase)
            if done >= expected and grid.num_errors == 0:
                return grid  # done before: nothing to repeat
        else:
            tuner = make_tuner()
        grid = tuner.fit()
    ended = ended_on_disk(path)
    if ended is None:  # fall back on the in-memory grid
        ended = grid.num_terminated + grid.num_errors
    left = max(expected, len(grid)) - ended
    if left > 0:
        raise ExperimentInterrupted(f"{path.parent.name}/{path.name}: {left} of {expected} trials did "
                                    "not finish", left, expected)
    return grid


def complete_start(space: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The first trial Optuna evaluates: the space's ``start`` values, completed for parameters
    without one from the unit's spec (a number, or the name of a spec key holding one, as ITLM's
    ``trim_ratio: noise_rate``) when it lies in the parameter's range. Ray's Optuna searcher
    takes only complete points, so a start that cannot be completed is dropped ({})."""
    start = dict(space.start_point())
    if not start:
        return {}
    for name, param in space.params.items():
        if name in start:
            continue
        value = spec.get(name)
        if isinstance(value, str) and isinstance(spec.get(value), (int, float)):
            value = spec[value]
        if param.values:
            if value not in param.values:
                return {}
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not param.low <= value <= param.high:
            return {}
        start[name] = value
    return start


def run_search(plan: Plan, unit: Unit, res: Resources, callbacks: Sequence[Any] = (),
               progress: Progress | None = None, registered: str = TRIAL_NAME) -> tune.ResultGrid:
    """The search of one unit: Optuna + ASHA (or the paper grid) over its space. ``registered``:
    the name of the experiment's trainable (:func:`register_trial`)."""
    cfg = plan.cfg
    resourced = registered
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=unit.max_epochs, grace_period=unit.grace_period,
                               reduction_factor=cfg.reduction_factor)
                 if cfg.use_asha else FIFOScheduler())

    def make_tuner() -> tune.Tuner:
        if cfg.search == "grid":
            space, searcher, samples = grid_space(unit.space), None, 1
        else:
            space, samples = tune_space(unit.space), cfg.num_samples
            start = complete_start(unit.space, unit.spec)
            searcher = (DeterministicAwareOptuna(
                sampler=make_sampler(cfg.sampler, cfg.search_seed), points_to_evaluate=[start] if start else None,
                study_name=unit.key, storage=optuna_storage(plan, unit)) if unit.space.params else None)
        return tune.Tuner(
            resourced,
            param_space={**unit.spec, **_phase_entries(unit.spec, cfg.set, SEARCH_TRIAL), **space},
            tune_config=tune.TuneConfig(
                metric=SCORE, mode="max", search_alg=searcher, scheduler=scheduler,
                num_samples=samples, max_concurrent_trials=res.concurrency, reuse_actors=True,
                trial_dirname_creator=lambda trial: trial.trial_id),
            run_config=run_config,
        )

    run_config = _run_config(plan, "search", unit, callbacks)
    grid = _fit(plan.experiment_dir / "search" / unit.key, make_tuner, resourced, cfg.resume,
                unit.n_trials(cfg), run_config, progress, (unit.key, "search"))
    close_stale_optuna_trials(plan, unit)
    return grid


def run_seeds(plan: Plan, unit: Unit, best_config: dict[str, Any], res: Resources,
              callbacks: Sequence[Any] = (), progress: Progress | None = None,
              registered: str = TRIAL_NAME) -> tune.ResultGrid:
    """Rerun ``best_config`` once per seed (full ``max_epochs``, no early stopping by Tune)."""
    cfg = plan.cfg
    resourced = registered
    config = {**best_config, **_phase_entries(best_config, cfg.set, SEED_RUN),
              "seed": tune.grid_search(list(cfg.seeds))}

    def make_tuner() -> tune.Tuner:
        return tune.Tuner(
            resourced,
            param_space=config,
            tune_config=tune.TuneConfig(
                metric=SCORE, mode="max", scheduler=FIFOScheduler(), num_samples=1,
                max_concurrent_trials=res.concurrency, reuse_actors=True,
                trial_dirname_creator=lambda trial: f"seed{trial.config['seed']}_{trial.trial_id}"),
            run_config=run_config,
        )

    run_config = _run_config(plan, "seeds", unit, callbacks)
    return _fit(plan.experiment_dir / "seeds" / unit.key, make_tuner, resourced, cfg.resume,
                len(cfg.seeds), run_config, progress, (unit.key, "seeds"))


def timed(fn, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start
