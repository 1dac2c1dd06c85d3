"""An on-disk cache of parsed splits: parse a ratings file once, load it in a fraction of a second.

:func:`cached_split` keys a :class:`RecSplit` by the SHA-256 of what determines it (the caller's
``key_parts``: the SHA-256 of every source file, the loader options and the loader's own
version) together with :data:`FORMAT_VERSION` and the field names of :class:`RecSplit`. An
entry is one ``.npz`` file under ``<cache dir>/splits/`` (:func:`deca_tune.paths.cache_dir`:
``$DECA_TUNE_CACHE`` or ``~/.cache/deca_tune``): the arrays as plain numpy arrays plus the rest
as a JSON document, read back with ``allow_pickle=False`` (never a pickle). It is written to a
temporary file in the same folder and renamed into place (atomic: a reader sees the old entry,
the new one, or none). An entry that cannot be read (truncated, corrupt, other format) is
rebuilt and overwritten, not an error; so is a cache folder that cannot be written to, with a
warning (the split is then returned uncached). Delete the folder to clear the cache.

The same store keeps other dataclasses of arrays and JSON values (``kind``, ``subdir``): the
decoded image files of ``image-folder`` / ``image-csv`` are
:class:`deca_tune.data.image.raw.RawImages` entries under ``<cache dir>/images/`` (CPU torch
tensors are stored as their numpy arrays and come back as tensors).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from deca_tune.data.interactions import RecSplit
from deca_tune.paths import cache_dir

#: bump when the stored layout (or the meaning of a stored field) changes
FORMAT_VERSION = 1
SUBDIR = "splits"
_META = "__json__"


class _Uncacheable(TypeError):
    """A value in the split that this format cannot store without pickle."""


def split_key(key_parts: dict, kind: type = RecSplit) -> str:
    """The SHA-256 (hex) naming the cache entry of ``key_parts`` (a ``kind`` dataclass)."""
    doc = {"format": FORMAT_VERSION, "fields": [f.name for f in dataclasses.fields(kind)],
           "key": key_parts}
    if kind is not RecSplit:  # keeps the keys of existing RecSplit entries
        doc["kind"] = kind.__qualname__
    text = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(key_parts: dict, root: str | os.PathLike | None = None) -> Path:
    """Where the entry of ``key_parts`` lives (it need not exist)."""
    return cache_dir(root) / SUBDIR / f"{split_key(key_parts)}.npz"


# ----------------------------------------------------------------------------- encoding

def _is_tensor(value: Any) -> bool:
    """A torch tensor (checked by name: this module does not import torch)."""
    return type(value).__name__ == "Tensor" and type(value).__module__.startswith("torch")


def _encode(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """``value`` as JSON, its arrays moved to ``arrays`` (``{"__array__": name, "dtype": ...}``);
    a CPU torch tensor is stored as its numpy array and comes back as a tensor."""
    if _is_tensor(value):
        if value.device.type != "cpu" or value.requires_grad:
            raise _Uncacheable(f"{where}: a tensor that is not a plain CPU tensor")
        arr = value.contiguous().numpy()
        name = f"a{len(arrays)}"
        arrays[name] = arr
        return {"__array__": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "kind": "tensor"}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            if not all(isinstance(v, str) for v in value.ravel().tolist()):
                raise _Uncacheable(f"{where}: an object array")
            stored, kind = np.array(value.tolist(), dtype=str), "object-str"
        else:
            stored, kind = value, "plain"
            if value.dtype.kind in "iu" and value.size:  # store ids compactly, restore exactly
                small = np.promote_types(np.min_scalar_type(int(value.min())),
                                         np.min_scalar_type(int(value.max())))
                if small.itemsize < value.dtype.itemsize:
                    stored = value.astype(small)
        name = f"a{len(arrays)}"
        arrays[name] = np.ascontiguousarray(stored)
        return {"__array__": name, "dtype": value.dtype.str, "shape": list(value.shape),
                "kind": kind}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _Uncacheable(f"{where}: a dict with non-text keys")
        return {"__dict__": {k: _encode(v, arrays, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays, where) for v in value]
    if isinstance(value, np.generic):
        return {"__scalar__": value.dtype.str, "value": value.item()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _Uncacheable(f"{where}: a {type(value).__name__}")


def _decode(value: Any, arrays: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        arr = arrays[value["__array__"]]
        if value["kind"] == "tensor":
            import torch

            if list(arr.shape) != value["shape"] or arr.dtype.str != value["dtype"]:
                raise ValueError("array shape or dtype does not match the record")
            return torch.from_numpy(np.ascontiguousarray(arr))
        if value["kind"] == "object-str":
            out = np.empty(arr.shape, dtype=object)
            out[...] = arr.tolist() if arr.ndim else arr.item()
            return out
        arr = arr.astype(np.dtype(value["dtype"]), copy=False)
        if list(arr.shape) != value["shape"]:
            raise ValueError("array shape does not match the record")
        return arr
    if "__dict__" in value:
        return {k: _decode(v, arrays) for k, v in value["__dict__"].items()}
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__scalar__" in value:
        return np.dtype(value["__scalar__"]).type(value["value"])
    raise ValueError(f"unknown record {sorted(value)}")


def write_entry(split: Any, path: Path, key: str) -> None:
    """Write ``split`` (a :class:`RecSplit` or another dataclass of arrays, tensors and JSON
    values) to ``path`` atomically (temporary file + rename in the same folder)."""
    arrays: dict[str, np.ndarray] = {}
    fields = {f.name: _encode(getattr(split, f.name), arrays, f.name)
              for f in dataclasses.fields(split)}
    doc = {"format": FORMAT_VERSION, "key": key, "fields": fields}
    try:
        text = json.dumps(doc)
    except (TypeError, ValueError) as exc:  # e.g. a numpy scalar whose value is no JSON
        raise _Uncacheable(f"a value ({exc})") from None
    arrays[_META] = np.frombuffer(text.encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_entry(path: Path, key: str, kind: type = RecSplit) -> Any:
    """Read an entry written by :func:`write_entry` (a ``kind``); any problem raises (callers
    rebuild)."""
    with np.load(path, allow_pickle=False) as npz:
        doc = json.loads(bytes(npz[_META]).decode())
        if doc.get("format") != FORMAT_VERSION or doc.get("key") != key:
            raise ValueError("the entry is of another format or key")
        arrays = {name: npz[name] for name in npz.files if name != _META}
    fields = {name: _decode(value, arrays) for name, value in doc["fields"].items()}
    return kind(**fields)


# ----------------------------------------------------------------------------- the cache

def cached_split(key_parts: dict, build: Callable[[], Any], *,
                 root: str | os.PathLike | None = None, enabled: bool = True,
                 kind: type = RecSplit, subdir: str = SUBDIR) -> Any:
    """The split ``build()`` returns, from the on-disk cache when an entry for ``key_parts``
    exists (see the module docstring).

    ``key_parts`` must determine the split completely: include the SHA-256 of every source file
    (:func:`deca_tune.data.download.sha256_of`), every loader option that changes the result and
    a version of the loader's own logic (bump it when the parsing changes). Values must be JSON
    (anything else is keyed by its ``str``). ``root``: the cache directory (default
    :func:`deca_tune.paths.cache_dir`); ``enabled=False`` just calls ``build``. ``kind``: the
    dataclass ``build`` returns (default :class:`RecSplit`; the decoded image files use
    :class:`deca_tune.data.image.raw.RawImages`), stored under ``<root>/<subdir>/``.
    """
    if not enabled:
        return build()
    key = split_key(key_parts, kind)
    path = cache_dir(root) / subdir / f"{key}.npz"
    if path.exists():
        try:
            return read_entry(path, key, kind)
        except Exception as exc:  # noqa: BLE001 - a bad entry is rebuilt, whatever is wrong
            warnings.warn(f"split cache: {path} is unreadable ({type(exc).__name__}: {exc}); "
                          f"rebuilding it", RuntimeWarning, stacklevel=2)
    split = build()
    try:
        write_entry(split, path, key)
    except _Uncacheable as exc:
        warnings.warn(f"split cache: {getattr(split, 'name', kind.__name__)!r} not cached ({exc} cannot be stored "
                      f"without pickle)", RuntimeWarning, stacklevel=2)
    except OSError as exc:
        warnings.warn(f"split cache: cannot write {path} ({exc}); the split is not cached",
                      RuntimeWarning, stacklevel=2)
    return split
