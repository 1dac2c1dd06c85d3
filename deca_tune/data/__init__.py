"""Data sets by name: ``REC_DATASETS`` (recommendation) and ``IMAGE_DATASETS`` (image).

A recommendation loader is ``loader(root: Path, download: bool, **options) -> RecSplit`` where
``root`` is :func:`deca_tune.paths.data_root`; add one with ``@REC_DATASETS.register("name")``
in its own module and import that module below. Use :func:`load_rec_dataset` to get a split:
it caches per process, so the trials of one worker parse the files once.
"""
from __future__ import annotations

import inspect
from typing import Any

from deca_tune.data.interactions import RecSplit
from deca_tune.paths import data_root
from deca_tune.registry import Registry

REC_DATASETS: Registry = Registry("recommendation data set")
IMAGE_DATASETS: Registry = Registry("image data set")

_CACHE: dict[tuple, RecSplit] = {}


class UnknownOptionError(TypeError):
    """An option the data set's loader does not take; the message lists the ones it takes."""


def _freeze(value: Any) -> Any:
    """A hashable stand-in for an option value (lists/dicts come from YAML or JSON)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def load_rec_dataset(name: str, data_root: str | None = None, download: bool = True,
                     **options: Any) -> RecSplit:
    """The :class:`RecSplit` of data set ``name`` (cached per process; do not mutate it).

    ``data_root``: ``--data-root`` > ``$DECA_TUNE_DATA`` > ``~/.cache/deca_tune``. ``options``
    go to the loader (e.g. ``seed`` for random splits, ``path`` for ``csv``). Unknown names
    raise :class:`deca_tune.registry.UnknownNameError` listing the known ones.
    """
    loader = REC_DATASETS.get(name)
    _check_options(name, loader, options)
    root = _resolve_root(data_root)
    key = (name, str(root), _freeze(options))
    if key not in _CACHE:
        _CACHE[key] = loader(root, download, **options)
    return _CACHE[key]


def _check_options(name: str, loader: Any, options: dict[str, Any]) -> None:
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [p for p in params if p not in ("root", "download")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UnknownOptionError(f"data set {name!r} has no option(s) {', '.join(unknown)}; "
                        f"its options: {', '.join(known) or '(none)'}")


def clear_cache() -> None:
    """Forget every cached split (tests; after files on disk changed)."""
    _CACHE.clear()


_resolve_root = data_root  # the module-level name ``data_root`` is shadowed by the argument

# loaders register themselves on import (one line per module)
from deca_tune.data import (  # noqa: E402,F401
    adressa, custom_csv, deca_splits, marketbias, movielens, synthetic)
from deca_tune.data import images  # noqa: E402,F401  (image data sets: IMAGE_DATASETS)
