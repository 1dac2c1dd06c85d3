"""Disk in proportion (``--keep-checkpoints``): what an experiment keeps of its checkpoints.

Every trial writes a checkpoint per epoch (``trainables/trial.py``) and Tune keeps the latest
(``CheckpointConfig(num_to_keep=1)``): ``trainer.pt`` holds the model, the optimiser state, the
best epoch's weights and the RNG states, everything a bit-exact resume of the trial needs. Once a
phase of a unit has ended nothing resumes those trials again (``--resume`` keeps ended trials), so
with ``--keep-checkpoints best`` (the default):

- **search trials**: once the unit's search has ended, the checkpoint folders of its trials are
  removed (the seed runs retrain the best configuration; ``summary/search_trials.csv``, the
  trials' ``result.json`` and TensorBoard files stay). Trials that ended with a crash (an error
  Tune would retry on ``--resume``) keep theirs;
- **seed runs**: once the unit's seed runs have ended, each run's last ``trainer.pt`` is
  rewritten with only the spec, the tracked metrics and the best epoch's weights
  (``best_state``; the last epoch's too when the spec keeps the last, ``restore_best: false``):
  what ``python -m deca_tune.report --export-scores`` and ``python -m deca_tune.recommend``
  load (:func:`deca_tune.training.checkpoints.load_trainer`), without the optimiser state and
  the RNG states.

``--keep-checkpoints all`` keeps every trial's last checkpoint whole. The experiment folder's
size is measured before and after every clean-up; the manifest's ``disk`` records the peak and
the final size.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterable

import torch

from deca_tune.training.checkpoints import CHECKPOINT_FILE, UnsafeCheckpointError, read_checkpoint, shrink_state

#: the manifest entry: {"peak_bytes", "final_bytes", "keep_checkpoints", "freed_bytes"}
DISK_KEY = "disk"


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _checkpoints(trial_dir: Path) -> list[Path]:
    return sorted(p for p in Path(trial_dir).glob("checkpoint_*") if p.is_dir())


def prune_search(results: Iterable[Any]) -> int:
    """Remove the checkpoint folders of the ended search trials (``results``: the unit's
    ``ResultGrid``); trials that ended in a crash keep theirs. Returns the bytes freed."""
    freed = 0
    for result in results:
        if getattr(result, "error", None) is not None or not getattr(result, "path", None):
            continue
        for folder in _checkpoints(Path(result.path)):
            freed += folder_bytes(folder)
            shutil.rmtree(folder, ignore_errors=True)
    return freed


def shrink_seed_runs(results: Iterable[Any]) -> int:
    """Rewrite each seed run's last ``trainer.pt`` with only what the report and recommend
    read (:func:`~deca_tune.training.checkpoints.shrink_state`). Returns the bytes freed."""
    freed = 0
    for result in results:
        if getattr(result, "error", None) is not None or not getattr(result, "path", None):
            continue
        for folder in _checkpoints(Path(result.path)):
            file = folder / CHECKPOINT_FILE
            if not file.is_file():
                continue
            try:
                state = read_checkpoint(file)
            except UnsafeCheckpointError:  # not ours: left as it is (every reader refuses it)
                continue
            small = shrink_state(state)
            if small is None:  # already shrunk, or not a trainer checkpoint (tests' fakes)
                continue
            before = file.stat().st_size
            tmp = file.with_suffix(".tmp")
            torch.save(small, tmp)
            tmp.replace(file)
            freed += before - file.stat().st_size
    return freed


def record(manifest: dict[str, Any], experiment_dir: Path, keep: str, freed: int = 0) -> dict[str, Any]:
    """Measure the experiment folder now and update the manifest's ``disk`` entry (the peak is
    the largest size measured, before a clean-up and at the end)."""
    entry = manifest.setdefault(DISK_KEY, {"peak_bytes": 0, "final_bytes": 0, "freed_bytes": 0})
    size = folder_bytes(experiment_dir)
    entry["peak_bytes"] = max(int(entry.get("peak_bytes", 0)), size)
    entry["final_bytes"] = size
    entry["freed_bytes"] = int(entry.get("freed_bytes", 0)) + int(freed)
    entry["keep_checkpoints"] = keep
    return entry


def clean_up(manifest: dict[str, Any], experiment_dir: Path, keep: str, grid: Any, phase: str) -> int:
    """After a unit's ``phase`` (``"search"`` or ``"seeds"``) ended: measure (the peak), clean
    up as ``keep`` says, measure again. Returns the bytes freed."""
    record(manifest, experiment_dir, keep)
    if keep != "best":
        return 0
    freed = prune_search(grid) if phase == "search" else shrink_seed_runs(grid)
    record(manifest, experiment_dir, keep, freed)
    return freed


def describe(entry: dict[str, Any]) -> str:
    """One console line: peak and final size of the experiment folder."""
    return (f"peak {megabytes(entry.get('peak_bytes', 0))}, final {megabytes(entry.get('final_bytes', 0))} "
            f"(--keep-checkpoints {entry.get('keep_checkpoints')}; checkpoints freed "
            f"{megabytes(entry.get('freed_bytes', 0))})")


def megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


__all__ = ["DISK_KEY", "clean_up", "describe", "folder_bytes", "megabytes", "prune_search", "record",
           "shrink_seed_runs"]
