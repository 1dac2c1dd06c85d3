"""``manifest.json`` of an experiment: what ran, with which code, data and command.

Keys: ``created``, ``command`` (as typed), ``argv``, ``cwd``, ``host``, ``python``,
``packages`` (versions), ``git`` (commit, dirty), ``config`` (every resolved option),
``datasets``/``backbones``/``methods``/``seeds`` (top level, for the analysis), ``data`` (per
data set: statistics and the source files' SHA-256 from ``RecSplit.meta`` / the image source),
``units`` (key, task, trials, searched space), ``selection``, ``resources``, ``timing``
(seconds per unit), ``resumes`` (one entry per ``--resume``), ``finished``.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from deca_tune.search.config import command_line
from deca_tune.search.plan import Plan
from deca_tune.tasks import get_task

PACKAGES = ("deca_tune", "torch", "torchvision", "ray", "optuna", "numpy", "pandas", "tensorboard",
            "pyyaml", "matplotlib")
REPO = Path(__file__).resolve().parents[2]


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(repo: Path = REPO) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def compact(value: Any, max_items: int = 50) -> Any:
    """``value`` as small JSON: arrays and long lists become a one-line description."""
    if isinstance(value, dict):
        return {str(k): compact(v, max_items) for k, v in value.items()}
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy array / torch tensor
        if getattr(value, "ndim", 1) == 0:
            return value.item()
        return f"<{type(value).__name__} {tuple(value.shape)} {value.dtype}>"
    if isinstance(value, (list, tuple)):
        if len(value) > max_items:
            return f"<{type(value).__name__} of {len(value)} items>"
        return [compact(v, max_items) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def data_record(task: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Statistics and source checksums of the split of ``spec`` (loads it: cached per process)."""
    from deca_tune.data import load_split

    try:
        split = load_split(task, spec)
        return {"stats": split.stats(), "meta": compact(split.meta)}
    except Exception as exc:  # recorded, not fatal: the trials will report the same error
        return {"error": f"{type(exc).__name__}: {exc}"}


def build_manifest(plan: Plan) -> dict[str, Any]:
    cfg = plan.cfg
    data = {}
    for unit in plan.units:
        if unit.dataset not in data:
            data[unit.dataset] = data_record(unit.task, unit.spec)
    return {
        "created": now(),
        "command": command_line(cfg.argv),
        "argv": cfg.argv,
        "cwd": str(Path.cwd()),
        "host": platform.node(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "git": git_state(),
        "config": cfg.to_dict(),
        "datasets": cfg.datasets,
        "backbones": cfg.backbones,
        "methods": cfg.methods,
        "seeds": cfg.seeds,
        "data": data,
        "units": [{"key": u.key, "task": u.task, "dataset": u.dataset, "backbone": u.backbone,
                   "method": u.method, "search_trials": u.n_trials(cfg),
                   "space": u.space.describe(), "space_files": [Path(f).name for f in u.space.files],
                   "spec": u.spec} for u in plan.units],
        "selection": {"score": "best value over epochs of the trainer's selection metric",
                      "split": "clean validation" if cfg.protocol == "paper" else "noisy validation"},
        "selection_metric": {t: get_task(t).selection_metric(cfg.protocol)
                             for t in sorted({u.task for u in plan.units})},
        "timing": {},
        "resumes": [],
        "finished": None,
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str))
    tmp.replace(path)


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
