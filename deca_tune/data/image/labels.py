"""Label files for images whose labels are already noisy.

- :func:`read_label_file`: a file of ``N`` class indices replacing a data set's training labels
  (the ``noisy_labels`` option of ``mnist``, ``fashion-mnist`` and ``cifar10``): ``.pt``
  (``torch.save`` of a tensor, array or list, or of a dict with ``key`` naming the entry: the
  CIFAR-10N file ``CIFAR-10_human.pt`` with ``worse_label``, ``aggre_label``,
  ``random_label1``...), ``.npy`` / ``.npz`` (numpy, never pickled) or ``.csv`` (a column named
  ``key``, or the only column; a header line is required).
- :func:`read_clean_source`: clean labels of image files by file name, from a folder of the
  ``ROOT/<class>/<file>`` layout or a CSV naming file and clean class.

``.pt`` files are read with ``torch.load(weights_only=True)``, allowing numpy arrays only (no
arbitrary pickles). Errors name the file, and the row or line of a bad value.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from deca_tune.data.download import DataUnavailableError
from deca_tune.data.readers import MalformedFileError, line_of_row

LABEL_SUFFIXES = (".pt", ".pth", ".npy", ".npz", ".csv")


class LabelFileError(ValueError):
    """A label file that does not fit the data set; the message names the file."""


def _load_pt(path: Path) -> Any:
    import numpy._core.multiarray as multiarray

    allowed = [multiarray._reconstruct, np.ndarray, np.dtype]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds; all mean "cannot use it"
        raise LabelFileError(f"{path}: cannot read the labels ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0]}); a .pt file must hold a tensor, a numpy "
                             "array, a list or a dict of them") from None


def _pick(obj: Any, key: str | None, path: Path) -> Any:
    if isinstance(obj, Mapping):
        if key is None or key not in obj:
            what = "names no entry" if key is None else f"has no entry {key!r}"
            raise LabelFileError(f"{path}: the option noisy_labels_key {what}; the file's entries: "
                                 f"{', '.join(map(str, obj))}")
        return obj[key]
    if key is not None:
        raise LabelFileError(f"{path}: holds one array, not entries; drop noisy_labels_key={key!r}")
    return obj


def _as_labels(values: Any, path: Path) -> np.ndarray:
    arr = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    arr = np.squeeze(arr) if arr.ndim > 1 and sum(d > 1 for d in arr.shape) <= 1 else arr
    if arr.ndim != 1:
        raise LabelFileError(f"{path}: expected one label per image (a 1-D array), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise LabelFileError(f"{path}: row {int(np.argmax(bad))}: label {arr[bad][0]!r} is not a "
                                 "class index (an integer)")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iub":
        raise LabelFileError(f"{path}: labels must be class indices (integers), got {arr.dtype}")
    return arr.astype(np.int64)


def read_label_file(path: str | Path, n: int, n_classes: int, key: str | None = None) -> tuple[torch.Tensor, Any]:
    """The ``n`` labels in ``path`` (see the module docstring) as ``int64``, checked to be class
    indices in ``[0, n_classes)``; also the whole loaded object (a dict: its other entries, e.g.
    CIFAR-10N's ``clean_label``)."""
    path = Path(path)
    if not path.is_file():
        raise DataUnavailableError(f"noisy_labels: label file {str(path)!r} not found")
    suffix = path.suffix.lower()
    line_of = None
    if suffix in (".pt", ".pth"):
        obj = _load_pt(path)
        values = _pick(obj, key, path)
    elif suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise LabelFileError(f"{path}: cannot read the labels ({exc})") from None
        obj = dict(loaded) if suffix == ".npz" else loaded
        values = _pick(obj, key, path)
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (ValueError, pd.errors.ParserError) as exc:
            raise MalformedFileError(f"{path}: {exc}") from None
        if key is None and frame.shape[1] != 1:
            raise LabelFileError(f"{path}: {frame.shape[1]} columns; name the label column with "
                                 f"noisy_labels_key (columns: {', '.join(map(str, frame.columns))})")
        column = frame.columns[0] if key is None else key
        if column not in frame.columns:
            raise LabelFileError(f"{path}: no column {key!r}; columns: {', '.join(map(str, frame.columns))}")
        obj, values = frame, frame[column].to_numpy()
        if values.dtype.kind not in "iuf":
            bad = int(np.argmax(pd.to_numeric(frame[column], errors="coerce").isna().to_numpy()))
            raise MalformedFileError(f"{path}, line {line_of_row(path, bad)}: label "
                                     f"{values[bad]!r} is not a class index")
        line_of = lambda row: line_of_row(path, row)  # noqa: E731
    else:
        raise LabelFileError(f"{path}: unknown label file type {suffix!r}; use one of "
                             f"{', '.join(LABEL_SUFFIXES)}")
    labels = _as_labels(values, path)
    if len(labels) != n:
        raise LabelFileError(f"{path}: {len(labels)} labels, but the training set has {n} images")
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        row = int(np.argmax(bad))
        where = f"line {line_of(row)}" if line_of else f"row {row}"
        raise LabelFileError(f"{path}, {where}: label {int(labels[row])} is out of range: the data "
                             f"set has {n_classes} classes (0..{n_classes - 1})")
    return torch.from_numpy(labels), obj


# ---------------------------------------------------------------------------- clean labels

def image_key(path: str | Path) -> str:
    """How an image is matched with its clean label: its file name (without folders)."""
    return os.path.basename(str(path))


def read_clean_source(source: str | Path, classes: Sequence[str], *, file_col: str = "file",
                      label_col: str = "label", extensions: Sequence[str] = ()) -> dict[str, int]:
    """``{file name: clean class index}`` from ``source``: a folder ``SOURCE/<class>/<file>``
    (any depth below the class folder) or a CSV with columns ``file_col`` and ``label_col``
    (the clean class by name). A class not among ``classes`` or a file named twice is an error
    naming the file (and the CSV line)."""
    source = Path(source)
    index = {c: i for i, c in enumerate(classes)}
    out: dict[str, int] = {}
    where: dict[str, str] = {}

    def add(name: str, label: str, place: str) -> None:
        if label not in index:
            raise LabelFileError(f"{place}: clean class {label!r} is not a class of the training "
                                 f"images ({', '.join(classes[:20])}{', ...' if len(classes) > 20 else ''})")
        if name in out and out[name] != index[label]:
            raise LabelFileError(f"{place}: file {name!r} has a second clean class (also at {where[name]})")
        out[name], where[name] = index[label], place

    if source.is_dir():
        for cls in sorted(e.name for e in os.scandir(source) if e.is_dir()):
            for dirpath, _dirs, files in sorted(os.walk(source / cls, followlinks=True)):
                for f in sorted(files):
                    if not extensions or f.lower().endswith(tuple(extensions)):
                        add(f, cls, str(Path(dirpath) / f))
        return out
    if not source.is_file():
        raise DataUnavailableError(f"clean labels: {str(source)!r} is neither a folder nor a file")
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise MalformedFileError(f"{source}: {exc}") from None
    missing = [c for c in (file_col, label_col) if c not in frame.columns]
    if missing:
        raise LabelFileError(f"{source}: no column {missing[0]!r} (clean labels need columns "
                             f"{file_col!r} and {label_col!r}); columns: {', '.join(frame.columns)}")
    for row, (name, label) in enumerate(zip(frame[file_col], frame[label_col])):
        if label.strip() == "":
            continue  # no clean label for this file
        add(image_key(name), label.strip(), f"{source}, line {line_of_row(source, row)}"
            if label.strip() not in index or image_key(name) in out else str(source))
    return out
