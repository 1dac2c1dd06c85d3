"""``manifest.json`` of an experiment: what ran, with which code, data and command.

Keys: ``created``, ``command`` (as typed), ``argv``, ``cwd``, ``host``, ``python``,
``packages`` (versions), ``git`` (commit, dirty), ``config`` (every resolved option),
``datasets``/``backbones``/``methods``/``seeds`` (top level, for the analysis), ``data`` (per
data set: statistics and the source files' SHA-256 from ``RecSplit.meta`` / the image source),
``units`` (key, task, trials, searched space, ``dropped`` ``--set`` keys), ``selection``,
``resources``, ``runs`` (one entry per run of the driver: ``run``, ``started``, ``finished``,
``command``, ``wall_seconds``, ``outcome`` = finished / interrupted / error / killed (closed by the next ``--resume``), ``exit_code``),
``wall_seconds`` (summed over the runs), ``timing`` (per unit: ``search_seconds`` and
``seed_seconds`` summed over the runs, their per-run values in ``runs``, and the trial counts of
the last run), ``slot_use`` (after every run, interrupted ones too: :func:`slot_use` over all runs
so far), ``resumes`` (one entry per ``--resume``), ``finished`` (when the last run that
completed every unit ended).
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

from deca_tune.memory import peak_rss_mb
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


def build_manifest(plan: Plan, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a new experiment; ``data``: the records the driver's checks loaded."""
    cfg = plan.cfg
    if data is None:
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
        "backbones": plan.backbones,  # as run: the family defaults when the options were not given
        "methods": plan.methods,
        "seeds": cfg.seeds,
        "data": data,
        "units": [{"key": u.key, "task": u.task, "dataset": u.dataset, "backbone": u.backbone,
                   "method": u.method, "variant": u.variant, "search_trials": u.n_trials(cfg),
                   "max_epochs": u.max_epochs, "grace_period": u.grace_period,
                   "space": u.space.describe(), "space_files": [Path(f).name for f in u.space.files],
                   "spec": u.spec, "dropped": list(u.dropped)} for u in plan.units],
        "selection": {"score": "best value over epochs of the trainer's selection metric",
                      "split": "clean validation" if cfg.protocol == "paper" else "noisy validation"},
        "selection_metric": {t: get_task(t).selection_metric(cfg.protocol)
                             for t in sorted({u.task for u in plan.units})},
        "timing": {},
        "runs": [],
        "wall_seconds": 0.0,
        "resumes": [],
        "finished": None,
    }


def start_run(manifest: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """Append this driver run's entry to ``manifest["runs"]`` (older manifests get the list)."""
    runs = manifest.setdefault("runs", [])
    if not runs and manifest.get("wall_seconds"):  # written before runs were recorded
        runs.append({"run": 1, "started": manifest.get("created"), "finished": manifest.get("finished"),
                     "command": manifest.get("command"), "wall_seconds": manifest["wall_seconds"],
                     "outcome": "unknown"})
    # the code of this run (a resumed experiment may run later code than the one that created it)
    entry = {"run": len(runs) + 1, "started": now(), "finished": None, "command": command_line(argv),
             "git": git_state(), "wall_seconds": None, "outcome": "running", "exit_code": None}
    runs.append(entry)
    return entry


def finish_run(manifest: dict[str, Any], entry: dict[str, Any], seconds: float, outcome: str,
               exit_code: int | None) -> None:
    entry.update({"finished": now(), "wall_seconds": seconds, "outcome": outcome, "exit_code": exit_code,
                  "driver_peak_rss_mb": peak_rss_mb()})
    manifest["wall_seconds"] = sum(float(r.get("wall_seconds") or 0.0) for r in manifest["runs"])
    slots = (manifest.get("resources") or {}).get("concurrency")
    if slots:  # every run's end, an interrupted one too: a record resumed across sessions has it
        manifest["slot_use"] = slot_use(manifest, int(slots))


#: the wall time a preset should stay within: this factor x (sum of trial seconds / slots)
SLOT_TARGET = 1.15


def slot_use(manifest: dict[str, Any], slots: int) -> dict[str, Any]:
    """How busy the trial slots were: the trials' own seconds (search + seed runs, every unit)
    over ``slots`` is the wall time a perfectly packed run would take; ``ratio`` = wall time /
    that (1.0: no slot ever idle; issue 22 asks for <= 1.15). Driver start-up, Tuner start-up
    and each unit's tail (the last trials of a phase leave slots idle) make up the rest."""
    timing = manifest.get("timing", {})
    trial_seconds = sum(float(t.get("search_trial_seconds") or 0.0) + float(t.get("seed_trial_seconds") or 0.0)
                        for t in timing.values())
    ideal = trial_seconds / max(1, int(slots))
    wall = float(manifest.get("wall_seconds") or 0.0)
    return {"trial_seconds": trial_seconds, "slots": int(slots), "ideal_wall_seconds": ideal,
            "wall_seconds": wall, "ratio": wall / ideal if ideal > 0 else None, "target": SLOT_TARGET}


def add_seconds(manifest: dict[str, Any], unit: str, run: int, kind: str, seconds: float) -> None:
    """Add ``seconds`` of ``kind`` ("search" or "seed") to ``unit``'s total and to this run's entry."""
    timing = manifest.setdefault("timing", {}).setdefault(unit, {})
    key = f"{kind}_seconds"
    timing[key] = float(timing.get(key) or 0.0) + seconds
    runs = timing.setdefault("runs", [])
    entry = next((r for r in runs if r.get("run") == run), None)
    if entry is None:
        entry = {"run": run, "search_seconds": 0.0, "seed_seconds": 0.0}
        runs.append(entry)
    entry[key] = float(entry.get(key) or 0.0) + seconds


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str))
    tmp.replace(path)


class ManifestError(ValueError):
    """``manifest.json`` cannot be read back: the message names the file and what is wrong."""


#: entries of a manifest and their JSON types; ``config`` is required (``--resume`` reads it),
#: the others are created when missing (manifests of older versions)
ENTRY_TYPES = {"config": dict, "runs": list, "timing": dict, "resumes": list}


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path``; :class:`ManifestError` for a damaged or foreign file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "is empty" if not text.strip() else (
            f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}; truncated?)")
        raise ManifestError(f"{path} {what}") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if "config" not in manifest:
        raise ManifestError(f"{path}: not an experiment manifest of deca_tune.search: no 'config' entry"
                            + (" (the file is an empty JSON object)" if not manifest else ""))
    for key, kind in ENTRY_TYPES.items():
        if key in manifest and not isinstance(manifest[key], kind):
            raise ManifestError(f"{path}: {key!r} must be a JSON {'object' if kind is dict else 'array'}, "
                                f"got {type(manifest[key]).__name__}")
    return manifest


def close_killed_runs(manifest: dict[str, Any], experiment_dir: Path) -> list[dict[str, Any]]:
    """Close the runs a killed driver (SIGKILL, a lost node) left ``running``: outcome
    ``killed``, ``finished`` and ``wall_seconds`` up to the newest file its trials wrote
    (checkpoints, results) under ``search/`` and ``seeds/``. Call it with the lock held (no
    other driver runs the experiment); returns the runs closed."""
    closed = []
    newest = max((f.stat().st_mtime for sub in ("search", "seeds") if (experiment_dir / sub).is_dir()
                  for f in (experiment_dir / sub).rglob("*") if f.is_file()), default=None)
    for entry in manifest.get("runs", []):
        if entry.get("outcome") != "running":
            continue
        try:
            started = datetime.fromisoformat(str(entry.get("started"))).timestamp()
        except ValueError:
            started = None
        last = newest if newest is not None and started is not None and newest >= started else started
        entry.update({"outcome": "killed", "exit_code": None,
                      "finished": (datetime.fromtimestamp(last).astimezone().isoformat(timespec="seconds")
                                   if last is not None else None),
                      "wall_seconds": max(0.0, last - started) if last is not None else 0.0,
                      "note": "the driver was killed; time up to its trials' last checkpoint"})
        closed.append(entry)
    if closed:
        manifest["wall_seconds"] = sum(float(r.get("wall_seconds") or 0.0) for r in manifest["runs"])
    return closed
