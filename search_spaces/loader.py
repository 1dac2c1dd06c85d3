"""Load and validate the YAML search spaces in this folder (``deca_tune.search.spaces`` turns them
into Tune domains; nothing here imports Ray).

A file describes one method family of one task::

    task: rec                     # "rec" or "image"
    methods: [deca, deca_p]       # or "*": every method of the task (the shared parameters)
    backbones: [cdae]             # optional: only these backbones (overrides the others' entries)
    params:
      C0:
        distribution: loguniform  # loguniform | uniform | int | logint | choice
        low: 1                    # bounds are inclusive (int/logint too)
        high: 1000
        grid: [1, 10, 100, 1000]  # the paper's grid, used by ``--search grid``
        start: 1000               # optional: Optuna's first trial tries it (warm start)
        form: "text"              # optional: what the value means (e.g. the L2 penalty's form)
      act:
        distribution: choice
        values: [relu, tanh]
        grid: [relu, tanh]

The space of a method is the task's ``"*"`` parameters plus those of the one file that lists the
method (a method listed by no file searches only the shared parameters). A file with
``backbones:`` applies only to those backbones and its entries replace the same parameters of the
other files (CDAE's L2 has another form, so another range and first value: ``rec_cdae.yaml``). Every mistake raises
:class:`SearchSpaceError` naming the file, the line and the key at fault.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from deca_tune.tasks import TASKS

SPACES_DIR = Path(__file__).resolve().parent
DISTRIBUTIONS = ("loguniform", "uniform", "int", "logint", "choice")
_TOP_KEYS = {"task", "methods", "params"}
_OPTIONAL_TOP_KEYS = {"backbones"}
_PARAM_KEYS = {
    "loguniform": {"distribution", "low", "high", "grid"},
    "uniform": {"distribution", "low", "high", "grid"},
    "int": {"distribution", "low", "high", "grid"},
    "logint": {"distribution", "low", "high", "grid"},
    "choice": {"distribution", "values", "grid"},
}
_OPTIONAL_KEYS = {"start", "form"}


class SearchSpaceError(ValueError):
    """A search-space file (or a request for a space) is wrong; the message says where."""


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: its distribution, bounds and paper grid."""

    name: str
    distribution: str
    low: float | int | None = None
    high: float | int | None = None
    values: tuple = ()
    grid: tuple = ()
    start: Any = None  # Optuna's first trial evaluates it (None: sampled)
    source: str = ""  # "file:line", for messages
    form: str = ""  # what the value means (the L2 penalty's form), shown in the plan
    start_note: str = ""  # where ``start`` comes from when the plan replaced it

    def describe(self, search: str = "optuna") -> str:
        """One line: the grid (``search="grid"``), else the distribution and Optuna's first trial."""
        if search == "grid":
            return f"{self.name}: grid {list(self.grid)}"
        if self.distribution == "choice":
            dist = f"choice {list(self.values)}"
        else:
            dist = f"{self.distribution} [{self.low:g}, {self.high:g}]"
        start = "" if self.start is None else f", first trial {self.start:g}" if isinstance(
            self.start, (int, float)) else f", first trial {self.start}"
        note = f" ({self.start_note})" if self.start_note and start else ""
        form = f"; {self.form}" if self.form else ""
        return f"{self.name}: {dist}{start}{note}{form}"


@dataclass(frozen=True)
class SearchSpace:
    """The searched hyperparameters of one method of one task."""

    task: str
    method: str
    params: dict[str, Param] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def grid_size(self) -> int:
        return math.prod(len(p.grid) for p in self.params.values())

    def start_point(self) -> dict[str, Any]:
        """The ``start`` values: the configuration Optuna evaluates first (may be partial)."""
        return {name: p.start for name, p in self.params.items() if p.start is not None}

    def with_start(self, values: dict[str, Any], note: str = "") -> "SearchSpace":
        """The space with the ``start`` of the given parameters replaced, each clamped into its
        range (``note`` says where the values come from; a clamped one says so)."""
        params = dict(self.params)
        for name, value in values.items():
            p = params.get(name)
            if p is None or p.distribution == "choice":
                continue
            v = int(value) if p.distribution in ("int", "logint") else float(value)
            clamped = min(max(v, p.low), p.high)
            why = note if clamped == v else f"{note}: {v:g}, clamped into the range"
            params[name] = replace(p, start=clamped, start_note=why)
        return replace(self, params=params)

    def without(self, names: Iterable[str]) -> "SearchSpace":
        """The space with ``names`` removed (they are fixed by the experiment)."""
        drop = set(names)
        return replace(self, params={k: v for k, v in self.params.items() if k not in drop})

    def describe(self, search: str = "optuna") -> list[str]:
        return [p.describe(search) for p in self.params.values()] or ["(nothing searched)"]


@dataclass(frozen=True)
class FamilyFile:
    """One parsed and validated YAML file."""

    path: str
    task: str
    methods: tuple[str, ...] | None  # None: every method ("*")
    params: dict[str, Param]
    backbones: tuple[str, ...] | None = None  # None: every backbone


# ------------------------------------------------------------------------------- parsing
def key_lines(node: yaml.Node, path: str, prefix: tuple = ()) -> dict[tuple, int]:
    """1-based line of every mapping key, addressed by its key path; rejects duplicate keys."""
    lines: dict[tuple, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = prefix + (key_node.value,)
            if key in lines:
                raise SearchSpaceError(f"{path}:{key_node.start_mark.line + 1}: key "
                                       f"{'.'.join(map(str, key))!r} appears twice")
            lines.update(key_lines(value_node, path, key))
            lines[key] = key_node.start_mark.line + 1
    return lines


class Where:
    """Formats ``file:line: key: message`` for errors."""

    def __init__(self, path: str, lines: dict[tuple, int]) -> None:
        self.path, self.lines = path, lines

    def error(self, key: tuple, message: str) -> SearchSpaceError:
        probe = key
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe, 1)
        name = ".".join(map(str, key)) or "(top level)"
        return SearchSpaceError(f"{self.path}:{line}: {name}: {message}")

    def source(self, key: tuple) -> str:
        return f"{self.path}:{self.lines.get(key, 1)}"


def _number(where: Where, key: tuple, value: Any, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise where.error(key, f"must be a finite number, got {value!r}")
    if integer and value != int(value):
        raise where.error(key, f"must be an integer, got {value!r}")
    return int(value) if integer else float(value)


def _parse_param(where: Where, name: str, raw: Any) -> Param:
    key = ("params", name)
    if not isinstance(raw, dict):
        raise where.error(key, "must be a mapping with 'distribution' and its settings")
    dist = raw.get("distribution")
    if dist not in DISTRIBUTIONS:
        raise where.error(key + ("distribution",),
                          f"unknown distribution {dist!r}; choose one of: {', '.join(DISTRIBUTIONS)}")
    allowed = _PARAM_KEYS[dist]
    extra, missing = sorted(set(raw) - allowed - _OPTIONAL_KEYS), sorted(allowed - set(raw))
    if extra:
        raise where.error(key + (extra[0],), f"unknown key for distribution {dist!r}; "
                                             f"allowed: {', '.join(sorted(allowed | _OPTIONAL_KEYS))}")
    if missing:
        raise where.error(key + (missing[0],), f"missing (distribution {dist!r} needs "
                                               f"{', '.join(sorted(allowed - {'distribution'}))})")
    grid = raw["grid"]
    if not isinstance(grid, list) or not grid:
        raise where.error(key + ("grid",), "must be a non-empty list (the paper's grid)")
    if len(set(map(repr, grid))) != len(grid):
        raise where.error(key + ("grid",), f"has repeated values: {grid}")
    if dist == "choice":
        values = raw["values"]
        if not isinstance(values, list) or not values:
            raise where.error(key + ("values",), "must be a non-empty list")
        for g in grid:
            if g not in values:
                raise where.error(key + ("grid",), f"value {g!r} is not one of values {values}")
        start = raw.get("start")
        if start is not None and start not in values:
            raise where.error(key + ("start",), f"value {start!r} is not one of values {values}")
        return Param(name, dist, values=tuple(values), grid=tuple(grid), start=start,
                     source=where.source(key), form=_form(where, key, raw))
    integer = dist in ("int", "logint")
    low = _number(where, key + ("low",), raw["low"], integer)
    high = _number(where, key + ("high",), raw["high"], integer)
    if not low < high:
        raise where.error(key + ("high",), f"must be greater than low ({low!r}), got {high!r}")
    if dist in ("loguniform", "logint") and low <= 0:
        raise where.error(key + ("low",), f"must be > 0 for a {dist} distribution, got {low!r}")
    checked = []
    for g in grid:
        g = _number(where, key + ("grid",), g, integer)
        if not low <= g <= high:
            raise where.error(key + ("grid",), f"value {g!r} is outside [low, high] = [{low}, {high}]")
        checked.append(g)
    start = raw.get("start")
    if start is not None:
        start = _number(where, key + ("start",), start, integer)
        if not low <= start <= high:
            raise where.error(key + ("start",), f"value {start!r} is outside [low, high] = [{low}, {high}]")
    return Param(name, dist, low=low, high=high, grid=tuple(checked), start=start,
                 source=where.source(key), form=_form(where, key, raw))


def _form(where: Where, key: tuple, raw: dict[str, Any]) -> str:
    form = raw.get("form", "")
    if not isinstance(form, str):
        raise where.error(key + ("form",), f"must be a text, got {form!r}")
    return form


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_family(path: str | Path) -> FamilyFile:
    """Parse and validate one search-space file."""
    path = _display(Path(path))
    try:
        text = Path(path).read_text()
        node = yaml.compose(text)
    except OSError as exc:
        raise SearchSpaceError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"{path}: not valid YAML: {exc}") from None
    if node is None:
        raise SearchSpaceError(f"{path}:1: (top level): the file is empty")
    where = Where(path, key_lines(node, path))
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise where.error((), "must be a mapping with keys task, methods, params")
    extra, missing = sorted(set(raw) - _TOP_KEYS - _OPTIONAL_TOP_KEYS), sorted(_TOP_KEYS - set(raw))
    if extra:
        raise where.error((extra[0],), "unknown key; allowed: "
                                       f"{', '.join(sorted(_TOP_KEYS | _OPTIONAL_TOP_KEYS))}")
    if missing:
        raise where.error((missing[0],), "missing")
    task = raw["task"]
    if task not in TASKS:
        raise where.error(("task",), f"unknown task {task!r}; choose one of: {', '.join(TASKS.names())}")
    methods = raw["methods"]
    if methods == "*":
        methods_t = None
    elif isinstance(methods, list) and methods and all(isinstance(m, str) for m in methods):
        methods_t = tuple(methods)
    else:
        raise where.error(("methods",), f'must be "*" or a non-empty list of method names, got {methods!r}')
    params = raw["params"] or {}
    if not isinstance(params, dict):
        raise where.error(("params",), "must be a mapping of parameter name -> distribution")
    parsed = {str(name): _parse_param(where, str(name), spec) for name, spec in params.items()}
    backbones = raw.get("backbones")
    if backbones is not None and not (isinstance(backbones, list) and backbones
                                      and all(isinstance(b, str) for b in backbones)):
        raise where.error(("backbones",), f"must be a non-empty list of backbone names, got {backbones!r}")
    return FamilyFile(path, task, methods_t, parsed, tuple(backbones) if backbones else None)


class SpaceCatalog:
    """Every family file of a folder; :meth:`space` assembles the space of one method."""

    def __init__(self, families: list[FamilyFile]) -> None:
        self.families = families
        owners: dict[tuple[str, str], str] = {}
        shared: dict[tuple[str, str], str] = {}
        for fam in families:
            if fam.backbones is not None:
                continue  # per-backbone files replace entries, checked in space()
            if fam.methods is None:
                for name, p in fam.params.items():
                    if (fam.task, name) in shared:
                        raise SearchSpaceError(f"{p.source}: params.{name}: also shared by "
                                               f"{shared[(fam.task, name)]}")
                    shared[(fam.task, name)] = p.source
                continue
            for m in fam.methods:
                if (fam.task, m) in owners:
                    raise SearchSpaceError(f"{fam.path}: methods: {fam.task} method {m!r} is also "
                                           f"listed by {owners[(fam.task, m)]}")
                owners[(fam.task, m)] = fam.path
        for fam in families:
            for name, p in fam.params.items():
                if fam.backbones is None and fam.methods is not None and (fam.task, name) in shared:
                    raise SearchSpaceError(f"{p.source}: params.{name}: already a shared "
                                           f"{fam.task} parameter in {shared[(fam.task, name)]}")

    def space(self, task: str, method: str, backbone: str | None = None) -> SearchSpace:
        """The space of ``method``: the task's shared parameters plus its family's, then the
        entries of the files for ``backbone`` (which replace those parameters; they never add
        a parameter the method does not search)."""
        if task not in TASKS:
            raise SearchSpaceError(f"unknown task {task!r}; choose one of: {', '.join(TASKS.names())}")
        params: dict[str, Param] = {}
        files: list[str] = []
        for fam in self.families:
            if fam.task == task and fam.backbones is None and (fam.methods is None or method in fam.methods):
                params.update(fam.params)
                files.append(fam.path)
        for fam in self.families:
            if (fam.task == task and fam.backbones is not None and backbone in fam.backbones
                    and (fam.methods is None or method in fam.methods)):
                used = {k: v for k, v in fam.params.items() if k in params}
                if used:
                    params.update(used)
                    files.append(fam.path)
        return SearchSpace(task, method, params, tuple(files))

    def methods(self, task: str) -> list[str]:
        """Methods that have a family file of their own."""
        return sorted({m for f in self.families if f.task == task and f.methods for m in f.methods})


def load_catalog(directory: str | Path = SPACES_DIR) -> SpaceCatalog:
    """Load every ``*.yaml`` file of ``directory`` (default: this package's folder)."""
    files = sorted(Path(directory).glob("*.yaml"))
    if not files:
        raise SearchSpaceError(f"{directory}: no *.yaml search-space files")
    return SpaceCatalog([load_family(f) for f in files])
