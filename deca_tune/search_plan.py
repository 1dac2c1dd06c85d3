"""The plan of a search experiment: one unit per (data set, backbone, method), nothing run yet.

Names are checked against the registries (data sets, backbones, methods of each task family);
an unknown name raises :class:`deca_tune.registry.UnknownNameError` listing the choices. Each
unit carries the spec shared by its trials (``deca_tune.training.spec.make_spec`` plus the
experiment's fixed entries) and the search space of its method (``search_spaces/*.yaml``)
without the hyperparameters the experiment fixes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from deca_tune.paths import data_root as resolve_data_root
from deca_tune.registry import Registry, UnknownNameError
from deca_tune.search_config import ExperimentConfig
from deca_tune.training.spec import make_spec
from search_spaces.loader import SearchSpace, SpaceCatalog, load_catalog

TASKS = ("rec", "image")


def registries() -> dict[str, dict[str, Registry]]:
    """The name registries of each task family: ``{task: {"dataset"|"backbone"|"method": R}}``."""
    from deca_tune.data import IMAGE_DATASETS, REC_DATASETS
    from deca_tune.methods import IMAGE_METHODS, REC_METHODS
    from deca_tune.models.rec import REC_BACKBONES
    from deca_tune.models.vision import VISION_BACKBONES

    return {
        "rec": {"dataset": REC_DATASETS, "backbone": REC_BACKBONES, "method": REC_METHODS},
        "image": {"dataset": IMAGE_DATASETS, "backbone": VISION_BACKBONES, "method": IMAGE_METHODS},
    }


@dataclass
class Unit:
    """One (data set, backbone, method) of the experiment: a search, then seed reruns."""

    task: str
    dataset: str
    backbone: str
    method: str
    spec: dict[str, Any]  # shared by every trial of the unit (the search seed)
    space: SearchSpace  # what is searched (fixed entries removed)

    @property
    def key(self) -> str:
        """Folder name under ``search/`` and ``seeds/`` (docs/architecture.md)."""
        return f"{self.dataset}__{self.backbone}__{self.method}"

    def n_trials(self, cfg: ExperimentConfig) -> int:
        return self.space.grid_size() if cfg.search == "grid" else cfg.num_samples


@dataclass
class Plan:
    cfg: ExperimentConfig
    units: list[Unit]
    data_root: str
    experiment_dir: Path

    @property
    def total_trials(self) -> int:
        return sum(u.n_trials(self.cfg) for u in self.units)


def _choices(kind: str, tasks: list[str], regs: dict[str, dict[str, Registry]]) -> str:
    names = sorted({n for t in tasks for n in regs[t][kind].names()})
    return ", ".join(names)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _task_of_dataset(name: str, regs: dict[str, dict[str, Registry]]) -> str:
    for task in TASKS:
        if name in regs[task]["dataset"]:
            return task
    raise UnknownNameError(f"unknown data set {name!r}; choose one of: {_choices('dataset', list(TASKS), regs)}")


def build_units(cfg: ExperimentConfig, data_root: str,
                catalog: SpaceCatalog | None = None) -> list[Unit]:
    """Every (data set, backbone, method) unit of ``cfg``; unknown names raise UnknownNameError."""
    regs = registries()
    catalog = catalog or load_catalog()
    tasks = {d: _task_of_dataset(d, regs) for d in cfg.datasets}
    used = sorted(set(tasks.values()))
    for kind, names in (("backbone", cfg.backbones), ("method", cfg.methods)):
        for name in names:
            if not any(name in regs[t][kind] for t in used):
                label = "backbone" if kind == "backbone" else "method"
                raise UnknownNameError(f"unknown {label} {name!r} for {'/'.join(used)} data sets; "
                                       f"choose one of: {_choices(kind, used, regs)}")
    units = []
    for dataset in cfg.datasets:
        task = tasks[dataset]
        backbones = [b for b in cfg.backbones if b in regs[task]["backbone"]]
        methods = [m for m in cfg.methods if m in regs[task]["method"]]
        if not backbones or not methods:
            kind = "backbone" if not backbones else "method"
            raise UnknownNameError(f"no {kind} given for {task} data set {dataset!r}; choose from: "
                                   f"{_choices(kind, [task], regs)}")
        for backbone in backbones:
            for method in methods:
                spec = make_spec(task, dataset=dataset, backbone=backbone, method=method,
                                 max_epochs=cfg.max_epochs, seed=cfg.search_seed,
                                 data_root=data_root, protocol=cfg.protocol)
                spec = _merge(spec, cfg.set)
                space = catalog.space(task, method).without(cfg.set)
                units.append(Unit(task, dataset, backbone, method, spec, space))
    return units


def default_name() -> str:
    return datetime.now().strftime("search-%Y%m%d-%H%M%S")


def latest_experiment(storage: Path) -> str | None:
    """Name of the most recently started experiment under ``storage`` (by its manifest)."""
    manifests = sorted(storage.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return manifests[-1].parent.name if manifests else None


def build_plan(cfg: ExperimentConfig) -> Plan:
    storage = Path(cfg.storage_path).expanduser().resolve()
    name = cfg.name
    if name is None:
        name = latest_experiment(storage) if cfg.resume else default_name()
        if name is None:
            raise FileNotFoundError(f"--resume: no experiment with a manifest.json under {storage}; "
                                    "give --name")
    root = str(resolve_data_root(cfg.data_root))
    units = build_units(cfg, root)
    return Plan(cfg, units, root, storage / name)


def describe(plan: Plan, resources: str | None = None) -> str:
    """The human-readable plan (``--dry-run`` prints it; a real run prints it first)."""
    cfg = plan.cfg
    if cfg.search == "optuna":
        search = f"Optuna TPE (seed {cfg.search_seed}), {cfg.num_samples} trials per unit"
    else:
        search = "the paper grid (Tune grid_search variants)"
    sched = (f"ASHA (time attr epoch, grace period {cfg.grace_period}, reduction factor "
             f"{cfg.reduction_factor:g}, max {cfg.max_epochs} epochs)" if cfg.use_asha
             else f"FIFO (every trial runs {cfg.max_epochs} epochs)")
    selection = ("clean validation (--protocol paper)" if cfg.protocol == "paper"
                 else "noisy validation")
    default_resources = (f"{cfg.cpus_per_trial:g} CPU + {cfg.gpus_per_trial:g} GPU per trial, "
                         f"max concurrent {cfg.max_concurrent or 'auto (cluster CPUs / CPUs per trial)'}")
    lines = [
        f"experiment: {plan.experiment_dir}{'  (resume)' if cfg.resume else ''}",
        f"search:     {search}; scheduler {sched}",
        f"selection:  best epoch of the {selection} NDCG@20 (rec) / accuracy (image), "
        "reported as 'score'",
        f"seeds:      best config of each unit rerun with seeds {' '.join(map(str, cfg.seeds))}",
        f"resources:  {resources or default_resources}",
        f"data root:  {plan.data_root}",
    ]
    if cfg.set:
        lines.append(f"fixed:      {cfg.set}")
    if cfg.address:
        lines.append(f"cluster:    {cfg.address}")
    lines.append("")
    for i, unit in enumerate(plan.units, 1):
        n = unit.n_trials(cfg)
        lines.append(f"[{i}] {unit.key} ({unit.task}): {n} search trials x <= {cfg.max_epochs} epochs, "
                     f"then {len(cfg.seeds)} seed runs")
        files = ", ".join(Path(f).name for f in unit.space.files) or "(no search-space file)"
        lines.append(f"    space from {files}:")
        lines += [f"      {line}" for line in unit.space.describe()]
    n_seed = len(plan.units) * len(cfg.seeds)
    lines.append("")
    lines.append(f"total: {plan.total_trials} search trials (<= {plan.total_trials * cfg.max_epochs} "
                 f"epochs) + {n_seed} seed runs ({n_seed * cfg.max_epochs} epochs)")
    if cfg.search == "grid" and len({u.n_trials(cfg) for u in plan.units}) > 1:
        lines.append("note: grid sizes differ between methods, so their search budgets differ "
                     "(--search optuna gives every method the same number of trials)")
    return "\n".join(lines)


def grid_trial_count(unit: Unit) -> int:
    """Trials Tune's own variant generator makes of the unit's grid (checks :meth:`grid_size`)."""
    from ray.tune.search.variant_generator import generate_variants

    return sum(1 for _ in generate_variants({**unit.spec, **unit.space.to_grid()}))


__all__ = ["Plan", "Unit", "build_plan", "build_units", "describe", "grid_trial_count"]
