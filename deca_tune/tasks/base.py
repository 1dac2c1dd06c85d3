"""The :class:`Task`: what one task family (recommendation, image classification) brings.

The *spec* is the flat, JSON-serialisable dict that fully describes one training run (see
``docs/architecture.md``): ``COMMON_DEFAULTS`` below, the family's ``defaults``, the method's own
hyperparameters (its class attribute ``defaults``) and anything the user fixes. A task never
imports torch on its own: trainers, split builders and backbone builders are named as
``"module:attribute"`` strings and imported when first used, so planning a search or printing
``--help`` stays cheap.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from deca_tune.registry import Registry

#: defaults shared by both task families; each family adds its own (``Task.defaults``)
COMMON_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data_root": None,
    "dataset_options": {},  # options of the data set's loader (e.g. ``path`` of ``csv``)
    "download": True,  # fetch missing public files (URL + SHA-256)
    "verify_checksums": True,
    "protocol": "default",  # "paper": clean validation for selection + the authors' test masking
    "device": "auto",
    "patience": 0,  # early stopping on the selection metric; 0 = off (train max_epochs)
    "restore_best": True,  # fit() restores the best epoch; False keeps the last (authors' runs)
    "pretrain_cache": None,  # f' cache folder (DeCA(p)); None = ~/.cache/deca_tune/pretrained; "off"
}
#: spec keys every family accepts besides the defaults
SPECIAL_KEYS = frozenset({"task", "plugins", "trainer_factory"})
PROTOCOLS = ("default", "paper")


class SpecError(ValueError):
    """A spec value is invalid or a key is unknown; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"spec key {key!r}: {message}")
        self.key = key


def resolve(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute (imported on first use)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _number(spec: Mapping[str, Any], key: str) -> float:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SpecError(key, f"must be a number, got {spec[key]!r}") from None
    if not math.isfinite(float(value)):
        raise SpecError(key, f"must be a finite number, got {spec[key]!r}")
    return float(value)


def check_range(spec: Mapping[str, Any], key: str, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False, integer: bool = False) -> None:
    """Raise :class:`SpecError` unless ``spec[key]`` is a number in the given range."""
    if key not in spec or spec[key] is None:
        return
    value = _number(spec, key)
    if integer and not float(value).is_integer():
        raise SpecError(key, f"must be an integer, got {spec[key]!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise SpecError(key, f"must be {'>' if low_open else '>='} {low:g}, got {spec[key]!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise SpecError(key, f"must be {'<' if high_open else '<='} {high:g}, got {spec[key]!r}")


def check_choice(spec: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> None:
    if key in spec and spec[key] not in choices:
        raise SpecError(key, f"unknown value {spec[key]!r}; choose one of: {', '.join(choices)}")


@dataclass(frozen=True)
class Task:
    """One task family. Fields name what the family brings; methods answer what code asks."""

    name: str
    title: str
    datasets: Registry
    backbones: Registry
    methods: Registry
    #: the family's spec defaults (on top of ``COMMON_DEFAULTS``)
    defaults: Mapping[str, Any]
    #: ``"module:Class"`` of the family's training loop (an ``EpochTrainer``)
    trainer: str
    #: ``"module:function"``: ``build_split(spec) -> split`` (uncached; use ``data.load_split``)
    split_builder: str
    #: spec keys (besides dataset, data_root, dataset_options, download, verify_checksums) that
    #: determine the split, i.e. the cache key of ``load_split``; a tuple of keys stands for the
    #: first of them that is not None (image: ``("data_seed", "seed")``)
    split_keys: tuple[str | tuple[str, ...], ...]
    #: ``"module:function"``: ``build_backbone(name, split, **kwargs) -> nn.Module``
    backbone_builder: str
    #: the selection metric without its split prefix (``valid/`` or ``valid_clean/``)
    metric: str
    #: family-specific spec checks (``check(spec)`` raising :class:`SpecError`)
    checks: tuple[Callable[[Mapping[str, Any]], None], ...] = field(default=())
    #: what ``python -m deca_tune.search`` runs on this family's data sets when ``--backbones``
    #: / ``--methods`` are not given
    default_backbones: tuple[str, ...] = ()
    default_methods: tuple[str, ...] = ()

    # ------------------------------------------------------------------ specs
    def make_spec(self, **overrides: Any) -> dict[str, Any]:
        """Defaults of this family with ``overrides`` applied (method hyperparameters are kept)."""
        given = overrides.get("task", self.name)
        if given != self.name:
            raise SpecError("task", f"is {given!r}, but this is the {self.name!r} family")
        spec = {"task": self.name, **COMMON_DEFAULTS, **self.defaults}
        spec.update(self.dataset_defaults(overrides.get("dataset", spec.get("dataset")),
                                          overrides.get("dataset_options") or {}))
        spec.update({k: v for k, v in overrides.items() if k != "task"})
        return spec

    def dataset_defaults(self, dataset: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        """Spec defaults a data set changes (on top of the family's; the user's settings win):
        its loader's ``spec_defaults(options) -> dict``, if it has one (e.g. no injected noise
        for data sets whose labels are already noisy)."""
        if not isinstance(dataset, str) or dataset not in self.datasets:
            return {}
        hook = getattr(self.datasets.get(dataset), "spec_defaults", None)
        return dict(hook(dict(options) if isinstance(options, Mapping) else {})) if hook else {}

    def method_class(self, name: str) -> Any:
        return self.methods.get(name)

    def known_keys(self, method: str) -> set[str]:
        """Every spec key a trial of ``method`` may carry."""
        cls = self.method_class(method)
        return set(COMMON_DEFAULTS) | set(self.defaults) | set(getattr(cls, "defaults", {})) | SPECIAL_KEYS

    def only_known(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``spec`` without the keys its method does not read (settings shared by several methods
        of an experiment, e.g. ``T1`` given to every image method, reach only those that use them)."""
        known = self.known_keys(spec.get("method", self.defaults["method"]))
        return {k: v for k, v in spec.items() if k in known}

    def validate_spec(self, spec: Mapping[str, Any]) -> None:
        """Check a full spec (after :meth:`make_spec`): names, ranges, choices and unknown keys.

        The trainer calls this before building anything, and the search driver calls it for
        every unit before Ray starts, so a bad value is one clear error, not failed trials.
        """
        for kind, registry in (("dataset", self.datasets), ("backbone", self.backbones),
                               ("method", self.methods)):
            if spec.get(kind) not in registry:
                raise SpecError(kind, f"unknown {registry.kind} {spec.get(kind)!r}; choose one of: "
                                      f"{', '.join(registry.names())}")
        known = self.known_keys(spec["method"])
        unknown = sorted(set(spec) - known)
        if unknown:
            raise SpecError(unknown[0], f"not a setting of {self.name} method {spec['method']!r}; "
                                        f"its settings: {', '.join(sorted(known - SPECIAL_KEYS))}")
        check_range(spec, "seed", 0, integer=True)
        check_range(spec, "max_epochs", 1, integer=True)
        check_range(spec, "lr", 0, low_open=True)
        check_range(spec, "batch_size", 1, integer=True)
        check_range(spec, "patience", 0, integer=True)
        check_choice(spec, "protocol", PROTOCOLS)
        device = str(spec.get("device", "auto"))
        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise SpecError("device", f"unknown value {device!r}; choose one of: auto, cpu, cuda, cuda:N")
        if not isinstance(spec.get("dataset_options") or {}, dict):
            raise SpecError("dataset_options", f"must be a mapping, got {spec['dataset_options']!r}")
        for check in self.checks:
            check(spec)
        method_check = getattr(self.method_class(spec["method"]), "check_spec", None)
        if method_check is not None:
            method_check(spec)

    def selection_metric(self, protocol: str = "default") -> str:
        """What model selection, ASHA and Optuna maximise: noisy validation, or clean (paper)."""
        if protocol not in PROTOCOLS:
            raise SpecError("protocol", f"unknown value {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
        return ("valid_clean" if protocol == "paper" else "valid") + "/" + self.metric

    # --------------------------------------------------------------- building
    def trainer_class(self) -> type:
        return resolve(self.trainer)

    def build_trainer(self, spec: dict[str, Any], split: Any = None) -> Any:
        return self.trainer_class()(spec, split=split)

    def split_key(self, spec: Mapping[str, Any]) -> tuple:
        """What determines the split of ``spec`` (hashable): the cache key of ``load_split``."""
        def value(key: str | tuple[str, ...]) -> Any:
            if isinstance(key, tuple):
                return next((spec[k] for k in key if spec.get(k) is not None), None)
            return spec.get(key)

        keys = ("dataset", "data_root", "dataset_options", "download", "verify_checksums", *self.split_keys)
        return (self.name, *(freeze(value(k)) for k in keys))

    def build_split(self, spec: Mapping[str, Any]) -> Any:
        return resolve(self.split_builder)(spec)

    def build_backbone(self, name: str, split: Any, **kwargs: Any) -> Any:
        return resolve(self.backbone_builder)(name, split, **kwargs)


def freeze(value: Any) -> Any:
    """A hashable stand-in for a spec value (lists and dicts come from YAML or JSON)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value
