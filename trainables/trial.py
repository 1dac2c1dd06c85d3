"""The one Ray Tune adapter around the trainers (``docs/architecture.md``, trainer contract).

Per trial: build the trainer from the spec (``deca_tune.training.build_trainer``: the task
family comes from the spec; ``deca_tune.data.load_split`` caches the split per process, and
``reuse_actors`` keeps the process, so a worker parses the files once), restore it from
``tune.get_checkpoint()`` when Tune resumes the trial, then per epoch call
``trainer.train_epoch()``, write the metrics as TensorBoard scalars under
``tune.get_context().get_trial_dir()`` and ``tune.report`` them with a checkpoint of
``trainer.state_dict()``.

TensorBoard's HParams view: each trial's directory also holds its configuration (the spec,
nested entries as dotted keys) as an HParams session, and the scalar ``hparams/score`` (the
best selection-metric value so far, ``score``) per epoch, the metric that view compares.

Reported keys: every numeric metric of the trainer (``epoch``, ``loss``, ``loss/*``,
``valid/*``, ``valid_clean/*``, ``test/*``, ``test_clean/*``, ``epoch_seconds``, ``deca/*``),
plus ``score`` (best value so far of the trainer's ``selection_metric``: what Optuna, ASHA and
the best-config choice see), ``selection_metric`` (its name), ``best_epoch``,
``trainer_finished`` (1 once the trainer is done: max epochs or its own early stopping),
``setup_seconds`` (building the trainer, data included), ``handover_seconds`` (fetching the
driver's data sets from the object store), ``peak_rss_mb`` (the worker's peak resident memory so
far), ``worker_pid``, ``data_from_driver`` (1 when the driver handed the data sets over through
the object store), ``device`` (where
the model trained) and ``gpu_ids`` (what Ray assigned; fractional trials share an id). Test
metrics are reported for analysis only; nothing selects on them.

Deterministic failures are not retried. A spec the trainer rejects (:class:`SpecError`, or a
``ValueError``/``TypeError``/``LookupError`` while building the trainer, e.g. a malformed data
file) and a non-finite loss or metric (``FloatingPointError``) would fail again on every retry,
so the trial does not raise: it reports one last result holding ``trial_error`` (``"Type:
message"``), ``trial_error_type`` and ``score`` (the best so far, NaN before the first epoch; no
``epoch``, so ASHA ignores it) and ends. The driver records it as ``error`` (``summary.py``),
Optuna as a failed trial (``run.py``), and Tune neither retries it (``--max-failures``) nor
reruns it on ``--resume``. Anything else raises as before, so a crash (a killed worker, a lost
node, an out-of-memory error) is retried from the trial's last checkpoint.
"""
from __future__ import annotations

import importlib
import logging
import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import ray
import torch
from ray import tune
from torch.utils.tensorboard import SummaryWriter

from deca_tune.memory import peak_rss_mb
from deca_tune.tasks import SpecError
from deca_tune.training.checkpoints import (CHECKPOINT_FILE, UnsafeCheckpointError, read_checkpoint,
                                            save_checkpoint)

SCORE = "score"
#: the scalar the HParams view shows for each trial: the best selection-metric value so far
HPARAM_METRIC = "hparams/score"
#: key of the last result of a trial that ended with a deterministic error ("Type: message")
TRIAL_ERROR = "trial_error"
DEFAULT_FACTORY = "deca_tune.training:build_trainer"
#: errors that a retry would repeat: while building the trainer (the spec, the data files) ...
SETUP_ERRORS: tuple[type[BaseException], ...] = (SpecError, ValueError, TypeError, LookupError)
#: ... and while training (a non-finite loss or metric)
TRAINING_ERRORS: tuple[type[BaseException], ...] = (FloatingPointError, SpecError)


def describe_error(exc: BaseException) -> str:
    """``"Type: first line of the message"`` (what the summary and the console show)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")[:500]


def report_failure(exc: BaseException, score: float = math.nan) -> None:
    """End the trial with a deterministic error: one last result, no exception (no retry)."""
    tune.report({SCORE: float(score), TRIAL_ERROR: describe_error(exc),
                 "trial_error_type": type(exc).__name__, "worker_pid": os.getpid()})


def resolve_factory(path: str | None) -> Callable[[dict[str, Any]], Any]:
    """``"module:function"`` -> the function; the default is ``build_trainer``."""
    module, _, name = (path or DEFAULT_FACTORY).partition(":")
    if not name:
        raise ValueError(f"trainer_factory must look like 'module:function', got {path!r}")
    return getattr(importlib.import_module(module), name)


def gpu_ids() -> str:
    """The GPUs Ray assigned to this trial, comma-separated ('' for none)."""
    return ",".join(str(g) for g in ray.get_gpu_ids())


def assigned_device(requested: str) -> str:
    """The device of this trial: the GPU Ray assigned (if any and usable), else the CPU.

    Ray restricts ``CUDA_VISIBLE_DEVICES`` to the trial's GPU, so ``cuda`` is that GPU.
    """
    ids = ray.get_gpu_ids()
    if requested not in ("auto", "cuda") or not ids:
        return "cpu" if requested in ("auto", "cuda") else requested
    if not torch.cuda.is_available():
        warnings.warn(f"Ray assigned GPU(s) {ids} to this trial but torch sees no CUDA "
                      "device; training on the CPU")
        return "cpu"
    return "cuda"


def load_checkpoint(trainer: Any, checkpoint: tune.Checkpoint) -> None:
    """Restore ``trainer`` from Tune's checkpoint (``read_checkpoint``: plain data only)."""
    with checkpoint.as_directory() as folder:
        state = read_checkpoint(Path(folder) / CHECKPOINT_FILE)
    trainer.load_state_dict(state)


def hparams_of(spec: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """The spec as HParams values: nested mappings as dotted keys, lists and None as text."""
    flat: dict[str, bool | int | float | str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}{key}.", item)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix[:-1]] = value
        else:
            flat[prefix[:-1]] = str(value)

    for key, value in spec.items():
        walk(f"{key}.", value)
    return flat


def write_hparams(writer: SummaryWriter, spec: dict[str, Any]) -> None:
    """Record ``spec`` as the HParams session of the writer's run (its trial directory), with
    :data:`HPARAM_METRIC` as its metric (written per epoch as a scalar)."""
    from torch.utils.tensorboard.summary import hparams

    experiment, start, end = hparams(hparams_of(spec), {HPARAM_METRIC: math.nan})
    file_writer = writer._get_file_writer()
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def trainable(config: dict[str, Any], datasets: dict[tuple, Any] | None = None,
              shared: list[Any] | None = None) -> None:
    """Function trainable: train one trial described by the spec ``config`` (any task family).

    ``datasets``: data sets already loaded (``deca_tune.data.loading.loaded_datasets``);
    ``shared``: ``[ref]``, the object-store reference under which the search driver put its
    data sets once for the whole experiment (``deca_tune.search.run.share_data``; the list keeps
    Tune from resolving it, so the fetch is timed here as ``handover_seconds``). Either seeds this
    worker's cache, so the trial does not parse the files again."""
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "checkpoint created" line per epoch
    handover = time.perf_counter()
    if shared:
        datasets = ray.get(shared[0])
    handover_seconds = time.perf_counter() - handover
    if datasets:
        from deca_tune.data.loading import preload

        preload(datasets)
    spec = dict(config)
    started = time.perf_counter()
    try:
        factory = resolve_factory(spec.pop("trainer_factory", None))
        spec["device"] = assigned_device(spec.get("device", "auto"))
        trainer = factory(spec)
    except SETUP_ERRORS as exc:
        report_failure(exc)
        return
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        try:
            load_checkpoint(trainer, checkpoint)
        except UnsafeCheckpointError as exc:  # would be refused again on every retry
            report_failure(exc)
            return
    setup_seconds = time.perf_counter() - started

    # purge_step drops events a crashed attempt wrote after its last checkpoint
    writer = SummaryWriter(log_dir=tune.get_context().get_trial_dir(),
                           purge_step=trainer.epoch + 1 if checkpoint is not None else None)
    write_hparams(writer, spec)
    try:
        while not trainer.finished:
            try:
                metrics = _numeric(trainer.train_epoch())
                bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
                if bad:
                    raise FloatingPointError(f"epoch {trainer.epoch}: non-finite {', '.join(bad)}")
            except TRAINING_ERRORS as exc:
                best = getattr(trainer, "best", None) or {}
                report_failure(exc, best.get(trainer.selection_metric, math.nan))
                return
            epoch = int(metrics.get("epoch", trainer.epoch))
            for key, value in metrics.items():
                if key != "epoch":
                    writer.add_scalar(key, value, epoch)
            best = trainer.best
            writer.add_scalar(HPARAM_METRIC, float(best[trainer.selection_metric]), epoch)
            writer.flush()  # the artifact sync at report time copies complete files
            metrics.update({
                SCORE: float(best[trainer.selection_metric]),
                "best_epoch": int(best.get("epoch", epoch)),
                "trainer_finished": int(bool(trainer.finished)),
                "setup_seconds": setup_seconds,
                "handover_seconds": handover_seconds,
                "peak_rss_mb": peak_rss_mb(),
                "worker_pid": os.getpid(),
                "data_from_driver": int(bool(datasets)),
            })
            report: dict[str, Any] = {**metrics, "selection_metric": trainer.selection_metric,
                                      "device": spec["device"], "gpu_ids": gpu_ids()}
            with tempfile.TemporaryDirectory() as folder:
                save_checkpoint(trainer, folder)
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
    finally:
        writer.close()
