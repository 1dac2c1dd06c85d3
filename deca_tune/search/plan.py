"""The plan of a search experiment: one unit per (data set, backbone, method), nothing run yet.

Names are checked against the task families (``deca_tune.tasks``: data sets, backbones,
methods); an unknown name raises :class:`deca_tune.registry.UnknownNameError` listing the
choices. Each unit carries the spec shared by its trials (the task's ``make_spec`` plus the
experiment's fixed entries) and the search space of its method (``search_spaces/*.yaml``)
without the hyperparameters the experiment fixes.

Fixed entries (``--set``) go to the units whose method reads them: a key that no method of the
experiment knows (a typo, ``C2`` on a recommendation method) raises :class:`PlanError`; a key
that some methods of the experiment read and others do not (``C0`` with ``normal`` and
``deca``) is dropped from the others, and the plan says so (``Unit.dropped``). An experiment
with its own ``trainer_factory`` (tests' fake trainer) keeps every key. Data set options that
name files (the ``csv`` data set's ``path``) are made absolute here, because Ray runs the
trials in other working directories.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from deca_tune.paths import data_root as resolve_data_root
from deca_tune.registry import UnknownNameError, did_you_mean, import_plugins
from deca_tune.search.budgets import authors_cell, authors_start, epoch_budget, grace_period
from deca_tune.search.config import ExperimentConfig, latest_experiment
from deca_tune.tasks import Task, get_task, task_of_dataset
from search_spaces.loader import SearchSpace, SpaceCatalog, load_catalog


@dataclass
class Unit:
    """One (data set, backbone, method) of the experiment: a search, then seed reruns."""

    task: str
    dataset: str
    backbone: str
    method: str
    spec: dict[str, Any]  # shared by every trial of the unit (the search seed)
    space: SearchSpace  # what is searched (fixed entries removed)
    dropped: tuple[str, ...] = field(default=())  # --set keys this unit's method does not read
    max_epochs: int = 10  # epochs per trial: the unit's budget (budgets.py) or --max-epochs
    grace_period: int = 1  # ASHA's grace period, in epochs
    variant: str = ""  # "KEY=VALUE" of a varied spec key (``vary:``), else ""

    @property
    def key(self) -> str:
        """Folder name under ``search/`` and ``seeds/`` (docs/architecture.md)."""
        tail = f"__{self.variant}" if self.variant else ""
        return f"{self.dataset}__{self.backbone}__{self.method}{tail}"

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

    @property
    def backbones(self) -> list[str]:
        """Every backbone of the plan, given or a family default (first use first)."""
        return list(dict.fromkeys(u.backbone for u in self.units))

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(u.method for u in self.units))

    @property
    def total_epochs(self) -> int:
        """Upper bound of the epochs of every search trial and seed run."""
        return sum(u.max_epochs * (u.n_trials(self.cfg) + len(self.cfg.seeds)) for u in self.units)


class PlanError(ValueError):
    """The experiment cannot be planned as given (the message names the option and the key)."""


#: data sets whose options name files: ``"module:function"`` making them absolute
#: (``resolve_options(options, data_root) -> options``)
ABSOLUTE_OPTIONS = {"csv": "deca_tune.data.custom_csv:resolve_options"}


def absolute_options(dataset: str, options: dict[str, Any], data_root: str) -> dict[str, Any]:
    """``options`` of ``dataset`` with relative file paths made absolute (trials run elsewhere)."""
    target = ABSOLUTE_OPTIONS.get(dataset)
    if target is None:  # a loader may carry its own resolve_options(options, data_root)
        task = task_of_dataset(dataset)
        resolve = getattr(task.datasets.get(dataset), "resolve_options", None)
    else:
        module, _, name = target.partition(":")
        resolve = getattr(importlib.import_module(module), name, None)
    if resolve is None:  # an older loader without it: the path is passed on as given
        return options
    try:
        return resolve(dict(options), Path(data_root))
    except (ValueError, FileNotFoundError) as exc:
        raise PlanError(f"data set {dataset!r}: {exc}") from None


def _check_fixed(cfg: ExperimentConfig, pairs: list[tuple[Task, str]]) -> None:
    """Every ``--set`` key must be read by some method of the experiment."""
    if "trainer_factory" in cfg.set:
        return
    for key in cfg.set:
        if any(key in task.known_keys(method) for task, method in pairs):
            continue
        users = sorted(f"{name} {m}" for name in _task_names() for m in get_task(name).methods.names()
                       if key in get_task(name).known_keys(m))
        used = ", ".join(sorted({f"{t.name} {m}" for t, m in pairs}))
        hint = f"; it is a setting of {', '.join(users)}" if users else ""
        raise PlanError(f"--set {key}: no method of this experiment ({used}) has a setting "
                        f"{key!r}{hint}")


def _task_names() -> list[str]:
    from deca_tune.tasks import TASKS

    return list(TASKS.names())


def _choices(kind: str, tasks: list[Task]) -> str:
    return ", ".join(sorted({n for t in tasks for n in getattr(t, kind).names()}))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_units(cfg: ExperimentConfig, data_root: str,
                catalog: SpaceCatalog | None = None) -> list[Unit]:
    """Every (data set, backbone, method) unit of ``cfg``; unknown names raise UnknownNameError."""
    catalog = catalog or load_catalog()
    tasks = {d: task_of_dataset(d) for d in cfg.datasets}
    used = sorted({t.name: t for t in tasks.values()}.values(), key=lambda t: t.name)
    for kind, names in (("backbones", cfg.backbones), ("methods", cfg.methods)):
        for name in names or ():
            if not any(name in getattr(t, kind) for t in used):
                choices = _choices(kind, used)
                raise UnknownNameError(f"unknown {kind[:-1]} {name!r} for {'/'.join(t.name for t in used)} "
                                       f"data sets{did_you_mean(name, choices.split(', '))}; choose one of: "
                                       f"{choices}")

    def chosen(kind: str, task: Task) -> list[str]:
        """The given names this family has, or (option not given) the family's defaults."""
        given = getattr(cfg, kind)
        if given is None:
            return list(getattr(task, f"default_{kind}"))
        return [n for n in given if n in getattr(task, kind)]

    pairs = [(tasks[d], m) for d in cfg.datasets for m in chosen("methods", tasks[d])]
    _check_fixed(cfg, pairs)
    for key in cfg.vary:
        if not any(key in task.known_keys(method) for task, method in pairs):
            used = ", ".join(sorted({f"{t.name} {m}" for t, m in pairs}))
            raise PlanError(f"vary {key}: no method of this experiment ({used}) has a setting {key!r}")
    keep_all = "trainer_factory" in cfg.set
    units = []
    for dataset in cfg.datasets:
        task = tasks[dataset]
        backbones, methods = chosen("backbones", task), chosen("methods", task)
        if not backbones or not methods:
            kind = "backbones" if not backbones else "methods"
            raise UnknownNameError(f"no {kind[:-1]} given for {task.name} data set {dataset!r}; choose "
                                   f"from: {_choices(kind, [task])}")
        for backbone in backbones:
            budget = cfg.max_epochs or epoch_budget(task.name, dataset, backbone)
            grace = cfg.grace_period or grace_period(budget)
            if cfg.use_asha and grace > budget:
                raise PlanError(f"--grace-period {grace} exceeds the epoch budget {budget} of "
                                f"{dataset} {backbone} (give --max-epochs or a smaller --grace-period)")
            for method in methods:
                known = task.known_keys(method)
                fixed = {k: v for k, v in cfg.set.items() if keep_all or k in known}
                dropped = tuple(sorted(set(cfg.set) - set(fixed)))
                spec = task.make_spec(dataset=dataset, backbone=backbone, method=method,
                                      max_epochs=budget, seed=cfg.search_seed,
                                      data_root=data_root, protocol=cfg.protocol,
                                      dataset_options=dict(cfg.set.get("dataset_options") or {}))
                spec = _merge(spec, fixed)
                spec["dataset_options"] = absolute_options(dataset, spec.get("dataset_options") or {},
                                                           data_root)
                if cfg.plugins:  # every trial imports them too (Ray workers start fresh)
                    spec["plugins"] = list(cfg.plugins)
                space = catalog.space(task.name, method, backbone)
                start = authors_start(task.name, dataset, backbone, method)
                if start:
                    space = space.with_start(start, authors_cell(task.name, dataset, backbone, method))
                space = space.without(fixed)
                for variant in _variants(cfg, known, keep_all):
                    vspec = dict(spec, **variant)
                    label = ",".join(f"{k}={v}" for k, v in variant.items())
                    units.append(Unit(task.name, dataset, backbone, method, vspec, space.without(variant),
                                      dropped, budget, grace, label))
    return units


def _variants(cfg: ExperimentConfig, known: set[str] | Any, keep_all: bool) -> list[dict[str, Any]]:
    """One mapping of varied spec entries per unit of a method (``[{}]``: nothing varied)."""
    out: list[dict[str, Any]] = [{}]
    for key, values in cfg.vary.items():
        if keep_all or key in known:
            out = [{**v, key: value} for v in out for value in values]
    return out


def default_name() -> str:
    return datetime.now().strftime("search-%Y%m%d-%H%M%S")


def build_plan(cfg: ExperimentConfig) -> Plan:
    storage = Path(cfg.storage_path).expanduser().resolve()
    name = cfg.name
    if name is None:
        name = latest_experiment(storage) if cfg.resume else default_name()
        if name is None:
            raise FileNotFoundError(f"--resume: no experiment with a manifest.json under {storage}; "
                                    "give --name")
    root = str(resolve_data_root(cfg.data_root))
    import_plugins(cfg.plugins)
    units = build_units(cfg, root)
    return Plan(cfg, units, root, storage / name)


def describe(plan: Plan, resources: str | None = None) -> str:
    """The human-readable plan (``--dry-run`` prints it; a real run prints it first)."""
    cfg = plan.cfg
    if cfg.search == "optuna":
        start = ("paired start-up: the k-th trial of every unit draws the same lr / l2" if cfg.sampler == "paired"
                 else "Optuna's own start-up")
        search = f"Optuna TPE (seed {cfg.search_seed}; {start}), {cfg.num_samples} trials per unit"
    else:
        search = "the paper grid (Tune grid_search variants)"
    budgets = ("--max-epochs " + str(cfg.max_epochs) if cfg.max_epochs
               else "each unit's epoch budget (the authors' configurations, budgets.py)")
    grace = (f"grace period {cfg.grace_period}" if cfg.grace_period
             else "grace period a tenth of the budget")
    sched = (f"ASHA (time attr epoch, {grace}, reduction factor {cfg.reduction_factor:g}, max "
             f"{budgets})" if cfg.use_asha else f"FIFO (every trial runs {budgets})")
    selection = ("clean validation (--protocol paper)" if cfg.protocol == "paper"
                 else "noisy validation")
    metrics = ", ".join(f"{get_task(t).selection_metric(cfg.protocol)} ({t})"
                        for t in sorted({u.task for u in plan.units}))
    default_resources = (f"{cfg.cpus_per_trial:g} CPU + {cfg.gpus_per_trial:g} GPU per trial, "
                         f"max concurrent {cfg.max_concurrent or 'auto (cluster CPUs / CPUs per trial)'}")
    lines = []
    if cfg.config:
        quick = " --quick" if cfg.quick else ""
        lines.append(f"config:     {cfg.config}{quick}")
        for key, value in cfg.about.items():
            text = " ".join(str(value).split())
            lines.append(f"  {key}: {text}")
    lines += [
        f"experiment: {plan.experiment_dir}{'  (resume)' if cfg.resume else ''}",
        f"search:     {search}; scheduler {sched}",
        f"selection:  best epoch of the {selection} metric: {metrics}, reported as 'score'",
        f"seeds:      best config of each unit rerun with seeds {' '.join(map(str, cfg.seeds))}",
        f"resources:  {resources or default_resources}",
        f"data root:  {plan.data_root}",
    ]
    if cfg.set:
        lines.append(f"fixed:      {cfg.set}")
    if cfg.vary:
        lines.append(f"varied:     {cfg.vary} (one unit per value, for the methods that read the key)")
    lines.append(f"checkpoints: --keep-checkpoints {cfg.keep_checkpoints}")
    if cfg.address:
        lines.append(f"cluster:    {cfg.address}")
    lines.append("")
    shown: dict[tuple, int] = {}
    for i, unit in enumerate(plan.units, 1):
        n = unit.n_trials(cfg)
        asha = f", ASHA grace {unit.grace_period}" if cfg.use_asha else ""
        lines.append(f"[{i}] {unit.key} ({unit.task}): {n} search trials x <= {unit.max_epochs} epochs"
                     f"{asha}, then {len(cfg.seeds)} seed runs")
        files = ", ".join(Path(f).name for f in unit.space.files) or "(no search-space file)"
        params = [p.describe(cfg.search) for p in unit.space.params.values()]
        same = shown.setdefault((files, tuple(params)), i)
        if same != i:
            lines.append(f"    space: the same as [{same}]")
        else:
            lines.append(f"    space from {files}:")
            lines += [f"      {line}" for line in params or ["(nothing searched)"]]
        if unit.dropped:
            lines.append(f"    not used by {unit.method} (dropped for this unit): "
                         + ", ".join(f"--set {k}" for k in unit.dropped))
    n_seed = len(plan.units) * len(cfg.seeds)
    search_epochs = sum(u.n_trials(cfg) * u.max_epochs for u in plan.units)
    seed_epochs = sum(len(cfg.seeds) * u.max_epochs for u in plan.units)
    lines.append("")
    lines.append(f"total: {len(plan.units)} units, {plan.total_trials} search trials (<= {search_epochs} "
                 f"epochs) + {n_seed} seed runs ({seed_epochs} epochs)")
    if cfg.search == "grid" and len({u.n_trials(cfg) for u in plan.units}) > 1:
        lines.append("note: grid sizes differ between methods, so their search budgets differ "
                     "(--search optuna gives every method the same number of trials)")
    return "\n".join(lines)


def grid_trial_count(unit: Unit) -> int:
    """Trials Tune's own variant generator makes of the unit's grid (checks :meth:`grid_size`)."""
    from ray.tune.search.variant_generator import generate_variants

    from deca_tune.search.spaces import grid_space

    return sum(1 for _ in generate_variants({**unit.spec, **grid_space(unit.space)}))


__all__ = ["Plan", "PlanError", "Unit", "absolute_options", "build_plan", "build_units", "describe",
           "grid_trial_count"]
