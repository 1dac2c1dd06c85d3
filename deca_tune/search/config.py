"""Command line, experiment files and resume of ``python -m deca_tune.search``: everything that
turns what the user typed into one :class:`ExperimentConfig`.

Every option can also come from ``--config FILE``, a YAML mapping whose keys are the option
names (``num-samples`` or ``num_samples``) plus ``set`` (a mapping of fixed spec entries).
Options given on the command line win over the file. ``--resume`` reads the configuration the
experiment was started with from its manifest (:func:`resume_config`); only options that do not
change what the trials compute may differ. A wrong value in the file is reported
with the file, line and key; a wrong value on the command line exits with status 2 like any
argparse error, and so do unknown data set / backbone / method names (with the choices).

List options (``--datasets --backbones --methods --seeds --plugins``) take both ``a b`` and
``a,b`` (also in the file: ``methods: normal,deca`` or ``methods: [normal, deca]``).
``--option KEY=VALUE`` is ``--set dataset_options.KEY=VALUE`` (the spelling of ``python -m
deca_tune.data describe --option``); in the file, ``option:`` is a mapping.
"""
from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import yaml

from deca_tune.options import (OptionError, key_value, nonnegative_float, nonnegative_int, positive_float,
                               positive_int, set_nested, split_list)
from search_spaces.loader import SearchSpaceError, Where, key_lines

#: the default experiment (docs/benchmarks-search.md). ``max_epochs`` / ``grace_period`` None:
#: each unit's epoch budget and ASHA grace period from the authors' configuration of its data set
#: and backbone (``deca_tune/search/budgets.py``)
DEFAULTS: dict[str, Any] = {
    "datasets": ["ml-100k"],
    "backbones": None,  # None: each data set family's (Task.default_backbones: rec gmf, image resnet32)
    "methods": None,  # None: each family's (rec normal deca deca_p; image normal itlm mwnet deca_p)
    "search": "optuna",
    "scheduler": "auto",
    "num_samples": 8,
    "max_epochs": None,
    "seeds": [0, 1, 2],
    "search_seed": 0,
    "sampler": "paired",
    "storage_path": "results",
    "name": None,
    "resume": False,
    "address": None,
    "data_root": None,
    "dry_run": False,
    "protocol": "default",
    "cpus_per_trial": 1.0,
    "gpus_per_trial": 0.0,
    "max_concurrent": None,
    "overlap": 2,
    "grace_period": None,
    "reduction_factor": 2.0,
    "max_failures": 1,
    "verbose": 1,
    "plugins": [],
    "keep_checkpoints": "best",
    "quick": False,
}
#: values of ``--sampler`` (``deca_tune/search/samplers.py``)
SAMPLERS = ("paired", "tpe")
#: values of ``--keep-checkpoints`` (``deca_tune/search/disk.py``)
KEEP_CHECKPOINTS = ("best", "all")
#: keys of an experiment file that are not options: ``about`` (what the file is: budget, seeds,
#: wall time, disk; printed by --dry-run) and ``quick`` (options that --quick overrides)
FILE_ONLY_KEYS = ("about", "quick")


class ArgumentError(Exception):
    """Raised instead of exiting when the arguments come from an experiment file."""


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def integers(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (one token of a list option; ``nargs`` collects the tokens):
    seeds, so non-negative (numpy's generators refuse negative seeds)."""
    try:
        values = [int(v) for v in split_list([text])]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers (separated by spaces or commas), got {text!r}") from None
    negative = [v for v in values if v < 0]
    if negative:
        raise argparse.ArgumentTypeError(f"seeds must be >= 0, got {negative[0]}")
    return values


# argparse names the type in "invalid <name> value" messages: user words, never helper names
integer.__name__, number.__name__, integers.__name__ = "integer", "number", "list of integers"
#: list options: each token may hold several comma-separated values
LIST_OPTIONS = ("datasets", "backbones", "methods", "seeds", "plugins")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, raise_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raise_errors = raise_errors

    def error(self, message: str):  # type: ignore[override]
        """Exit with status 2; the usage block only for a syntax error (an unknown option, a
        missing argument), never for a value that fails a check."""
        if self.raise_errors:
            raise ArgumentError(message)
        if SYNTAX_ERROR.search(message):
            super().error(message)
        self.fail(message)

    def fail(self, message: str):
        """A value failed a check: ``prog: error: message``, exit status 2, no usage block."""
        if self.raise_errors:
            raise ArgumentError(message)
        self.exit(2, f"{self.prog}: error: {message}\n")


#: argparse's messages for command-line syntax errors (the only ones shown with the usage block)
SYNTAX_ERROR = re.compile(r"unrecognized arguments|expected (one|at most one|at least one|\d+) "
                          r"argument|the following arguments are required|not allowed with argument|"
                          r"ambiguous option|ignored explicit argument")


def build_parser(raise_errors: bool = False) -> argparse.ArgumentParser:
    d = DEFAULTS
    p = _Parser(
        prog="python -m deca_tune.search", raise_errors=raise_errors,
        description="Search hyperparameters with Ray Tune (Optuna + ASHA or the paper grid), rerun "
                    "the best configuration of every method x backbone x data set with several seeds, "
                    "and write the summary tables. With no arguments: the default experiment "
                    "(ml-100k, GMF, normal / deca / deca_p, a small budget).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("what to run")
    g.add_argument("--datasets", nargs="+", default=d["datasets"], metavar="NAME",
                   help="data sets (NAME NAME or NAME,NAME)")
    g.add_argument("--backbones", nargs="+", default=d["backbones"], metavar="NAME",
                   help="backbones (NAME NAME or NAME,NAME); default: each data set family's "
                        "(recommendation: gmf; image: resnet32)")
    g.add_argument("--methods", nargs="+", default=d["methods"], metavar="NAME",
                   help="denoising methods (NAME NAME or NAME,NAME); default: each data set family's "
                        "(recommendation: normal deca deca_p; image: normal itlm mwnet deca_p)")
    g.add_argument("--protocol", choices=["default", "paper"], default=d["protocol"],
                   help="default: select on the noisy validation split; paper: the authors' clean "
                        "validation split and test masking")
    g.add_argument("--data-root", default=d["data_root"],
                   help="data folder (default: $DECA_TUNE_DATA, else ~/.cache/deca_tune)")
    g.add_argument("--set", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   dest="set", help="fix a spec entry for every trial (YAML value; dotted keys for "
                                    "nested entries, e.g. dataset_options.n_users=50); a fixed "
                                    "hyperparameter is removed from the search space; a key no "
                                    "method of the experiment uses is an error, one that only some "
                                    "methods use reaches only those")
    g.add_argument("--option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   dest="option", help="a data set option: the same as --set dataset_options.KEY=VALUE "
                                       "(the spelling of `python -m deca_tune.data describe --option`)")
    g.add_argument("--plugins", nargs="+", default=d["plugins"], metavar="MODULE",
                   help="modules to import first (in the driver and every trial): they register "
                        "your own methods, backbones or data sets (docs/architecture.md)")
    g.add_argument("--config", default=None, metavar="FILE",
                   help="YAML experiment file with any of these options (command line wins)")
    g = p.add_argument_group("search")
    g.add_argument("--search", choices=["optuna", "grid"], default=d["search"],
                   help="optuna: TPE (seeded) over the YAML spaces; grid: the paper grid")
    g.add_argument("--sampler", choices=list(SAMPLERS), default=d["sampler"],
                   help="optuna: paired = TPE whose random start-up gives every unit's k-th trial "
                        "the same value of each parameter (the same lr and l2 for every method), "
                        "tpe = Optuna's own start-up (deca_tune/search/samplers.py)")
    g.add_argument("--scheduler", choices=["auto", "asha", "fifo"], default=d["scheduler"],
                   help="trial scheduler; auto = ASHA for optuna, FIFO (no early stopping) for grid")
    g.add_argument("--num-samples", type=positive_int, default=d["num_samples"],
                   help="trials per method x backbone x data set (optuna; the same for every method)")
    g.add_argument("--max-epochs", type=positive_int, default=d["max_epochs"],
                   help="epochs per trial (search and seed reruns) of every unit; default: each "
                        "unit's budget, the most epochs the DeCA authors' configurations give any "
                        "method on its data set and backbone (e.g. ML-100K: GMF 20, NeuMF 100, "
                        "CDAE 500, LightGCN 200), else 10 (docs/search.md, budgets)")
    g.add_argument("--grace-period", type=positive_int, default=d["grace_period"],
                   help="ASHA: epochs before a trial can be stopped; default: a tenth of each "
                        "unit's epoch budget")
    g.add_argument("--reduction-factor", type=number, default=d["reduction_factor"],
                   help="ASHA: keep 1/reduction_factor of the trials at each rung")
    g.add_argument("--search-seed", type=nonnegative_int, default=d["search_seed"],
                   help="seed of the Optuna sampler and of every search trial")
    g.add_argument("--seeds", nargs="+", type=integers, default=d["seeds"], metavar="SEED",
                   help="seeds of the reruns of each best configuration (0 1 2 or 0,1,2)")
    g = p.add_argument_group("resources and cluster")
    g.add_argument("--cpus-per-trial", type=positive_float, default=d["cpus_per_trial"])
    g.add_argument("--gpus-per-trial", type=nonnegative_float, default=d["gpus_per_trial"],
                   help="fractional values share a GPU (0.25: four trials per GPU)")
    g.add_argument("--max-concurrent", type=positive_int, default=d["max_concurrent"],
                   help="trials at a time (default: what the cluster's CPUs/GPUs allow)")
    g.add_argument("--overlap", type=positive_int, default=d["overlap"],
                   help="units (method x backbone x data set) in flight at once: while one unit's "
                        "search or seed runs leave a slot idle (ASHA's last trials, 3 seeds on 2 "
                        "slots), the next unit's trials take it; 1 = one unit after another")
    g.add_argument("--max-failures", type=nonnegative_int, default=d["max_failures"],
                   help="retries of a crashed trial from its last checkpoint (a killed worker, a "
                        "lost node); deterministic errors (invalid configuration, non-finite loss) "
                        "are never retried")
    g.add_argument("--address", default=d["address"],
                   help="address of an existing Ray cluster (host:port); default: start a local one. "
                        "A cluster with token authentication (Ray's default for `ray start`) needs "
                        "RAY_AUTH_MODE=token in the environment")
    g = p.add_argument_group("output")
    g.add_argument("--storage-path", default=d["storage_path"],
                   help="folder holding experiments (created if missing; must be a writable folder)")
    g.add_argument("--name", default=d["name"],
                   help="experiment name (default: search-<date>-<time>; with --resume: the latest)")
    g.add_argument("--resume", action="store_true", default=d["resume"],
                   help="continue an interrupted experiment (finished trials and seed runs are kept)")
    g.add_argument("--quick", action="store_true", default=d["quick"],
                   help="with --config: apply the file's `quick:` options (a minutes-long version "
                        "of the experiment, run by the tests)")
    g.add_argument("--keep-checkpoints", choices=KEEP_CHECKPOINTS, default=d["keep_checkpoints"],
                   help="best: once a unit's search ends its trials' checkpoints are removed and "
                        "each seed run keeps one file with its best epoch's weights (what report "
                        "--export-scores and recommend read); all: keep every trial's last "
                        "checkpoint with the optimiser state")
    g.add_argument("--dry-run", action="store_true", default=d["dry_run"],
                   help="print the plan (trials, spaces, resources) and run nothing")
    g.add_argument("--verbose", type=integer, choices=[0, 1, 2], default=d["verbose"],
                   help="console output: 0 = the plan and the results; 1 = also one line per trial "
                        "event and the progress; 2 = also Ray Tune's own tables. Everything, Ray's "
                        "output included, is also written to <experiment>/search.log")
    return p


@dataclass
class ExperimentConfig:
    """The resolved options of one experiment (command line + ``--config`` file)."""

    datasets: list[str]
    backbones: list[str] | None  # None: each data set family's defaults
    methods: list[str] | None
    search: str
    scheduler: str
    num_samples: int
    max_epochs: int | None
    seeds: list[int]
    search_seed: int
    storage_path: str
    name: str | None
    resume: bool
    address: str | None
    data_root: str | None
    dry_run: bool
    protocol: str
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int | None
    grace_period: int | None
    reduction_factor: float
    max_failures: int
    verbose: int
    plugins: list[str] = field(default_factory=list)
    keep_checkpoints: str = "best"
    #: Optuna's start-up sampling (samplers.py); "tpe" for experiments started before the option
    sampler: str = "tpe"
    quick: bool = False
    overlap: int = 2
    set: dict[str, Any] = field(default_factory=dict)
    #: spec keys varied across units (one unit per value, for the methods that read the key)
    vary: dict[str, list[Any]] = field(default_factory=dict)
    #: the experiment file's ``about`` mapping (what it is: budget, seeds, wall time, disk)
    about: dict[str, Any] = field(default_factory=dict)
    config: str | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def use_asha(self) -> bool:
        return self.scheduler == "asha" or (self.scheduler == "auto" and self.search == "optuna")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "argv"}


def _file_tokens(raw: dict[str, Any], parser: argparse.ArgumentParser, where: Where,
                 prefix: tuple = ()) -> list[str]:
    """Turn the file's mapping into command-line tokens (so both go through one validation);
    ``prefix``: the key path of the mapping in the file (``("quick",)``), for messages."""
    actions = {a.dest: a for a in parser._actions
               if a.dest not in ("help", "config", "set", "option", "quick")}
    tokens: list[str] = []
    for key, value in raw.items():
        dest = str(key).replace("-", "_")
        if dest in ("set", "option", "vary") + FILE_ONLY_KEYS:
            continue
        if dest not in actions:
            allowed = ", ".join(sorted(a.replace("_", "-") for a in actions)
                                + ["about", "option", "quick", "set", "vary"])
            raise where.error(prefix + (key,), f"unknown option; allowed: {allowed}")
        action = actions[dest]
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise where.error(prefix + (key,), f"must be true or false, got {value!r}")
            tokens += [flag] if value else []
        elif action.nargs == "+":
            values = value if isinstance(value, list) else [value]
            if not values:
                raise where.error(prefix + (key,), "must not be empty")
            tokens += [flag, *map(str, values)]
        elif value is None:
            continue
        elif isinstance(value, (list, dict)):
            raise where.error(prefix + (key,), f"must be a single value, got {value!r}")
        else:
            tokens += [flag, str(value)]
    return tokens


def _mapping(where: Where, raw: dict[str, Any], key: str, prefix: tuple = ()) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise where.error(prefix + (key,), "must be a mapping")
    return value


def _vary(where: Where, raw: dict[str, Any], prefix: tuple = ()) -> dict[str, list[Any]]:
    vary = _mapping(where, raw, "vary", prefix)
    for key, values in vary.items():
        if not isinstance(values, list) or not values:
            raise where.error(prefix + ("vary", key), f"must be a non-empty list of values, got {values!r}")
    return {str(k): list(v) for k, v in vary.items()}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load_file(path: str, parser: argparse.ArgumentParser, quick: bool = False
               ) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[Any]], dict[str, Any]]:
    """(option defaults from the file, its ``set`` mapping, its ``vary`` mapping, its ``about``
    mapping); with ``quick`` the ``quick:`` section's entries override the file's. Errors name
    file, line and key."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ArgumentError(f"--config {path}: cannot read: {exc}") from None
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ArgumentError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        if quick:
            raise ArgumentError(f"{path}:1: --quick: the file has no `quick:` section")
        return {}, {}, {}, {}
    if not isinstance(raw, dict):
        raise ArgumentError(f"{path}:1: the experiment file must be a mapping of option: value")
    where = Where(path, key_lines(node, path))
    fixed = _mapping(where, raw, "set")
    options = _mapping(where, raw, "option")
    if options:
        fixed = {**fixed, "dataset_options": {**(fixed.get("dataset_options") or {}), **options}}
    vary = _vary(where, raw)
    about = _mapping(where, raw, "about")
    checker = build_parser(raise_errors=True)
    section = _mapping(where, raw, "quick")
    for key in ("quick", "about", "config"):
        if key in section:
            raise where.error(("quick", key), "not allowed inside the quick: section")
    _file_tokens(section, checker, where, ("quick",))  # checked even without --quick
    if quick and not section:
        raise where.error((), "--quick: the file has no `quick:` section")
    if quick:
        fixed = _deep_merge(fixed, _mapping(where, section, "set", ("quick",)))
        q_options = _mapping(where, section, "option", ("quick",))
        if q_options:
            fixed = _deep_merge(fixed, {"dataset_options": q_options})
        vary = {**vary, **_vary(where, section, ("quick",))}
        raw = {**raw, **{k: v for k, v in section.items() if k not in ("set", "option", "vary")}}
    tokens = _file_tokens(raw, checker, where)
    try:
        ns = checker.parse_args(tokens)
    except ArgumentError as exc:
        bad = next((k for k in raw if f"--{str(k).replace('_', '-')}" in str(exc)), None)
        raise where.error((bad,) if bad else (), str(exc)) from None
    given = {str(k).replace("-", "_") for k in raw} - {"set", "option", "vary", *FILE_ONLY_KEYS}
    return {dest: getattr(ns, dest) for dest in given}, fixed, vary, about


def _flatten(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """List options as flat lists: ``["normal,deca", "tce"]`` -> ``["normal", "deca", "tce"]``."""
    for dest in LIST_OPTIONS:
        values = getattr(args, dest)
        if values is None:  # not given: the data sets' family defaults (plan.build_units)
            continue
        if dest == "seeds":
            flat = [v for item in values for v in (item if isinstance(item, list) else [item])]
        else:
            flat = split_list(values)
        if not flat and dest != "plugins":
            parser.error(f"argument --{dest}: expected at least one value")
        setattr(args, dest, flat)


def parse_args(argv: Sequence[str] | None) -> ExperimentConfig:
    """Parse ``argv`` (and the ``--config`` file it names); exits with status 2 on bad input."""
    argv = list(argv or [])
    parser = build_parser()
    first = parser.parse_args(argv)
    fixed: dict[str, Any] = {}
    vary: dict[str, list[Any]] = {}
    about: dict[str, Any] = {}
    if first.config:
        try:
            file_defaults, fixed, vary, about = _load_file(first.config, parser, first.quick)
        except (ArgumentError, SearchSpaceError) as exc:
            parser.fail(str(exc))
        parser.set_defaults(**file_defaults)
    elif first.quick:
        parser.error("argument --quick: needs --config FILE (it applies the file's quick: section)")
    args = parser.parse_args(argv)
    _flatten(parser, args)
    try:
        for key, value in args.set:
            set_nested(fixed, key, value)
        for key, value in args.option:
            set_nested(fixed, f"dataset_options.{key}", value)
    except OptionError as exc:
        parser.fail(str(exc))
    if args.reduction_factor <= 1:
        parser.fail(f"argument --reduction-factor: must be > 1, got {args.reduction_factor}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.fail(f"argument --seeds: repeated seeds in {args.seeds}")
    values = {k: v for k, v in vars(args).items() if k not in ("set", "option")}
    cfg = ExperimentConfig(**values, set=fixed, vary=vary, about=about, argv=argv)
    for key in set(vary) & set(fixed):
        parser.fail(f"spec key {key!r} is both fixed (set) and varied (vary)")
    if cfg.use_asha and cfg.grace_period and cfg.max_epochs and cfg.grace_period > cfg.max_epochs:
        parser.fail(f"argument --grace-period: {cfg.grace_period} exceeds --max-epochs {cfg.max_epochs}")
    return cfg


def command_line(argv: Sequence[str]) -> str:
    return " ".join(["python -m deca_tune.search", *map(shlex.quote, argv)])


#: options that may differ when resuming (they do not change what the trials compute)
RESUME_OVERRIDABLE = {"address", "verbose", "max_concurrent", "overlap", "cpus_per_trial", "gpus_per_trial",
                      "max_failures", "dry_run", "resume", "name", "storage_path", "config",
                      "keep_checkpoints", "about"}


class ResumeError(ValueError):
    """``--resume`` cannot continue the experiment as asked; the message says why."""


def explicit_options(argv: Sequence[str]) -> set[str]:
    """Option names (dests) given on the command line or in its ``--config`` file."""
    parser = build_parser(raise_errors=True)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    given = set(vars(parser.parse_args(list(argv))))
    if "config" in given:
        raw = yaml.safe_load(Path(vars(parser.parse_args(list(argv)))["config"]).read_text()) or {}
        given |= {str(k).replace("-", "_") for k in raw} - set(FILE_ONLY_KEYS)
        if "quick" in given and isinstance(raw.get("quick"), dict):
            given |= {str(k).replace("-", "_") for k in raw["quick"]}
    return given


def latest_experiment(storage: Path) -> str | None:
    """Name of the most recently started experiment under ``storage`` (by its manifest)."""
    manifests = sorted(storage.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return manifests[-1].parent.name if manifests else None


def resume_config(cfg: ExperimentConfig) -> tuple[ExperimentConfig, dict[str, Any]]:
    """The configuration the experiment was started with (from its manifest) plus allowed overrides."""
    from deca_tune.search.manifest import read_manifest

    storage = Path(cfg.storage_path).expanduser().resolve()
    name = cfg.name or latest_experiment(storage)
    if name is None:
        raise ResumeError(f"--resume: no experiment with a manifest.json under {storage}; give --name")
    path = storage / name / "manifest.json"
    if not path.exists():
        raise ResumeError(f"--resume: {path} does not exist (known experiments: "
                          f"{', '.join(sorted(p.parent.name for p in storage.glob('*/manifest.json'))) or 'none'})")
    try:
        manifest = read_manifest(path)
    except ValueError as exc:  # ManifestError: the file and what is wrong
        raise ResumeError(f"--resume: {exc}") from None
    original = manifest["config"]
    required = [f.name for f in fields(ExperimentConfig)
                if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in original]
    if missing:
        raise ResumeError(f"--resume: {path}: 'config' lacks {', '.join(map(repr, missing))} "
                          "(damaged, or not written by python -m deca_tune.search)")
    unknown = sorted(set(original) - {f.name for f in fields(ExperimentConfig)})
    if unknown:
        raise ResumeError(f"--resume: {path}: 'config' has unknown entries {', '.join(map(repr, unknown))} "
                          "(written by another version of deca_tune?)")
    explicit = explicit_options(cfg.argv)
    if "option" in explicit:  # --option K=V is --set dataset_options.K=V
        explicit = (explicit - {"option"}) | {"set"}
    changed = sorted(d for d in explicit - RESUME_OVERRIDABLE
                     if d in original and getattr(cfg, d) != original[d])
    if changed:
        was = ", ".join(f"--{d.replace('_', '-')} (was {original[d]!r})" for d in changed)
        raise ResumeError(f"--resume continues {name} as it was planned; these options cannot change: {was}")
    keep = {d: getattr(cfg, d) for d in explicit & RESUME_OVERRIDABLE}
    values = {**original, **keep, "name": name, "storage_path": str(storage), "resume": True,
              "dry_run": cfg.dry_run, "argv": cfg.argv}
    return ExperimentConfig(**values), manifest
