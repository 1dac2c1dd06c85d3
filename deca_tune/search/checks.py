"""Everything the driver checks before Ray starts, so that a bad input is one clear error (exit
status 2, the culprit named) instead of an experiment whose trials all fail.

- :func:`check_units` (also in ``--dry-run``): every unit's spec passes its task's
  ``validate_spec`` (the check the trainer itself runs: ranges, choices, keys the method does
  not know), with each searched parameter's bounds (Optuna) or grid values (``--search grid``)
  substituted in turn, and the data set options are options its loader takes. Units with their
  own ``trainer_factory`` (tests' fake trainer) skip the trainer's checks.
- :func:`check_paths` (also in ``--dry-run``): ``--storage-path`` is a writable folder or can be
  created as one (nothing is created here), and a data root given explicitly (``--data-root``
  or ``$DECA_TUNE_DATA``) exists: a mistyped one is never created by a download.
- :func:`load_data` (real runs only): every data set of the plan loads, once; what it returns
  is the ``data`` entry of ``manifest.json`` (statistics and checksums).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deca_tune.paths import ENV_VAR
from deca_tune.search.plan import Plan, Unit
from deca_tune.tasks import SpecError, get_task
from search_spaces.loader import Param


class CheckError(ValueError):
    """The experiment would fail: the message names the unit, the option or the key and why."""


def _origin(plan: Plan, key: str) -> str:
    """Where a spec value came from, for messages."""
    if key in plan.cfg.set:
        return f" (from --set {key}={plan.cfg.set[key]!r})"
    return ""


def searched_values(param: Param, search: str) -> list[Any]:
    """The values of ``param`` a search may give a trial (bounds for Optuna, else the grid)."""
    if search == "grid":
        return list(param.grid)
    if param.distribution == "choice":
        return list(param.values)
    values = [param.low, param.high]
    if param.start is not None:
        values.append(param.start)
    return values


def check_unit(plan: Plan, unit: Unit) -> None:
    from deca_tune.data.loading import UnknownOptionError, check_options

    try:
        check_options(unit.task, unit.dataset, unit.spec.get("dataset_options") or {})
    except UnknownOptionError as exc:
        raise CheckError(f"{unit.key}: data set options (--option KEY=VALUE): {exc}") from None
    if "trainer_factory" in unit.spec:
        return  # not the project's trainer: its own rules
    task = get_task(unit.task)
    try:
        task.validate_spec(unit.spec)
    except SpecError as exc:
        raise CheckError(f"{unit.key}: {exc}{_origin(plan, exc.key)}") from None
    for name, param in unit.space.params.items():
        for value in searched_values(param, plan.cfg.search):
            try:
                task.validate_spec({**unit.spec, name: value})
            except SpecError as exc:
                raise CheckError(f"{unit.key}: the searched value {name} = {value!r} "
                                 f"({param.source or 'search space'}) is invalid: {exc}") from None


def check_units(plan: Plan) -> None:
    for unit in plan.units:
        check_unit(plan, unit)


def _writable_folder(path: Path, option: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise CheckError(f"{option} {path}: is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise CheckError(f"{option} {path}: the folder is not writable")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CheckError(f"{option} {path}: {parent} is a file, so the folder cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CheckError(f"{option} {path}: cannot create it ({parent} is not writable)")


def check_paths(plan: Plan) -> None:
    """Storage path and data root (creates nothing)."""
    _writable_folder(plan.experiment_dir.parent, "--storage-path")
    if plan.experiment_dir.exists() and not plan.experiment_dir.is_dir():
        raise CheckError(f"--name {plan.experiment_dir.name}: {plan.experiment_dir} is a file, not a folder")
    cfg = plan.cfg
    explicit = ("--data-root", cfg.data_root) if cfg.data_root else (
        (f"${ENV_VAR}", os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if explicit is not None and not Path(plan.data_root).is_dir():
        what = "is a file, not a folder" if Path(plan.data_root).exists() else "no such folder"
        raise CheckError(f"{explicit[0]} {explicit[1]}: {what} ({plan.data_root}); create it first "
                         "if you mean a new, empty data root")


def load_data(plan: Plan) -> dict[str, dict[str, Any]]:
    """Load every data set of the plan once; ``{dataset: {"stats", "meta"}}`` for the manifest."""
    from deca_tune.data import load_split
    from deca_tune.search.manifest import compact

    records: dict[str, dict[str, Any]] = {}
    for unit in plan.units:
        if unit.dataset in records:
            continue
        try:
            split = load_split(unit.task, unit.spec)
            records[unit.dataset] = {"stats": split.stats(), "meta": compact(split.meta)}
        except Exception as exc:  # noqa: BLE001 - any failure here would fail every trial
            users = ", ".join(u.key for u in plan.units if u.dataset == unit.dataset)
            raise CheckError(f"data set {unit.dataset!r} (units {users}) cannot be loaded: "
                             f"{type(exc).__name__}: {exc}") from None
    return records


__all__ = ["CheckError", "check_paths", "check_unit", "check_units", "load_data", "searched_values"]
