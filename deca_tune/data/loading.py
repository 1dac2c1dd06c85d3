"""The one way in to data: :func:`load_split` (a trial's split) and :func:`load_dataset` (a data
set as its loader returns it), both cached per process so the trials of one Ray worker parse the
files once. Treat what they return as read-only.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Mapping

from deca_tune.paths import data_root as resolve_data_root
from deca_tune.tasks.base import freeze

_DATASETS: dict[tuple, Any] = {}
_SPLITS: dict[tuple, Any] = {}


class UnknownOptionError(TypeError):
    """An option the data set's loader does not take; the message lists the ones it takes."""


class OptionValueError(UnknownOptionError):
    """A loader option whose value is not of its kind (``n_users=abc``); the message names it."""


def _check_value(name: str, option: str, value: Any, default: Any) -> None:
    """A number option (its default an int or a float) must get a number of that kind."""
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return  # strings, flags, tuples: the loader parses them (its own messages)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int) and not (number and float(value).is_integer()):
        raise OptionValueError(f"data set {name!r}: option {option} must be an integer (default "
                               f"{default}), got {value!r}")
    if isinstance(default, float) and not (number and math.isfinite(float(value))):
        raise OptionValueError(f"data set {name!r}: option {option} must be a finite number (default "
                               f"{default:g}), got {value!r}")


def loader_options(loader: Any) -> list[str] | None:
    """The options a loader takes (``None``: it takes any keyword)."""
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return [p for p in params if p not in ("root", "download")]


def check_options(task: str, name: str, options: Mapping[str, Any]) -> None:
    """Raise :class:`UnknownOptionError` for an option the loader of ``name`` does not take, and
    :class:`OptionValueError` for a value that is not a number where the loader's default is."""
    from deca_tune.tasks import get_task

    loader = get_task(task).datasets.get(name)
    known = loader_options(loader)
    unknown = sorted(set(options) - set(known)) if known is not None else []
    if unknown:
        raise UnknownOptionError(f"data set {name!r} has no option(s) {', '.join(unknown)}; "
                                 f"its options: {', '.join(k for k in known if k != 'verify') or '(none)'}")
    params = inspect.signature(loader).parameters
    for option, value in options.items():
        if option in params:
            _check_value(name, option, value, params[option].default)


def load_dataset(task: str, name: str, data_root: str | None = None, download: bool = True,
                 verify: bool = True, **options: Any) -> Any:
    """Data set ``name`` of family ``task`` as its loader returns it (cached per process).

    ``data_root``: ``--data-root`` > ``$DECA_TUNE_DATA`` > ``~/.cache/deca_tune``; ``verify`` is
    passed to loaders that check checksums. Unknown names raise
    :class:`deca_tune.registry.UnknownNameError` listing the known ones, unknown options
    :class:`UnknownOptionError`.
    """
    from deca_tune.tasks import get_task

    loader = get_task(task).datasets.get(name)
    check_options(task, name, options)
    known = loader_options(loader)
    if known is None or "verify" in known:
        options = {"verify": verify, **options}
    root = resolve_data_root(data_root)
    key = (task, name, str(root), bool(download), freeze(options))
    if key not in _DATASETS:
        _DATASETS[key] = loader(root, download, **options)
    return _DATASETS[key]


def load_split(task: str, spec: Mapping[str, Any]) -> Any:
    """The split a (possibly partial) spec of family ``task`` trains and evaluates on, cached per
    process by what determines it (``Task.split_key``): data set, data root, loader options and,
    for images, the noise and partition settings."""
    from deca_tune.tasks import get_task

    family = get_task(task)
    full = family.make_spec(**{k: v for k, v in spec.items() if k != "task"})
    key = family.split_key(full)
    if key not in _SPLITS:
        _SPLITS[key] = family.build_split(full)
    return _SPLITS[key]


def loaded_datasets() -> dict[tuple, Any]:
    """Every data set this process has loaded (``load_dataset``'s cache), to hand to others."""
    return dict(_DATASETS)


def preload(datasets: Mapping[tuple, Any]) -> None:
    """Seed this process's cache with data sets another process loaded: the search driver hands
    its own to every trial through Ray's object store, so no worker parses the files again (nor
    needs them on its node)."""
    for key, data in datasets.items():
        _DATASETS.setdefault(key, data)


def clear_cache() -> None:
    """Forget every cached data set and split (tests; after files on disk changed)."""
    _DATASETS.clear()
    _SPLITS.clear()
