"""Your own images with the labels they have: ``image-folder`` and ``image-csv``.

    python -m deca_tune.data describe image-folder --option path=photos/train --option image_size=32
    python -m deca_tune.data describe image-csv --option path=labels.csv --option clean_col=verified

image-folder: torchvision's ImageFolder layout, ``PATH/<class>/<file>`` (files at any depth
below the class folder; PNG, JPEG, WebP or BMP, any size and mode; other files are ignored).
Classes are the folder names in sorted order. image-csv: a CSV with a file column (paths
relative to the CSV's folder, or absolute) and a label column (class names; classes are the
sorted training labels, numerically when all are integers).

The labels as found are the *noisy* training labels: nothing is injected (spec ``noise_rate``
defaults to 0 for these sets; set it to add noise on top), and ``meta_per_class`` defaults to 0
(MW-Net's meta set needs clean labels). Validation is carved from the training images with
their noisy labels (spec ``valid_size``, default 10% of them), and model selection reads it.
Clean labels are optional; only where they exist are the clean metrics (``valid_clean/*``,
``test_clean/*``), the noise-detection AUC and the Table 4 clean accuracy computed.

Options (--option KEY=VALUE; ``dataset_options`` in a search spec):
  path          the training folder (image-folder) or the CSV (image-csv); required. A relative
                path is looked up in the current directory, then in the data root.
  test          image-folder: a test folder of the same layout (its classes must be training
                classes); its labels are taken as given (see test_labels).
  test_fraction without a test folder / split column: the share of the images held out, seeded
                by seed (default 0.2).
  seed          seed of the held-out test images (default 0).
  image_size    resize the shorter side to this many pixels and centre-crop a square; default:
                none, every image must already have the same size.
  channels      1 (grey) or 3 (RGB); default auto: 1 when the first image of every class is
                greyscale, else 3.
  clean         clean labels: a folder of the same layout (the class a file name is under is
                its clean class) or a CSV with columns clean_file_col and clean_label_col
                (default "file" and "label"; the clean class by name). Files are matched by
                file name (which must then be unique); unlisted files have no clean label.
  test_labels   given (default): the test labels are labels as found (test/accuracy);
                clean: the test folder's / split column's labels are clean (test_clean/accuracy).
  file_col, label_col    image-csv: the file and label columns (default "file", "label").
  clean_col     image-csv: a column with clean labels (class names; empty = unknown).
  split_col     image-csv: a column saying "train" or "test" for each row.
  name          the data set's name in results (default: the data set's).
  cache         true (default): keep the decoded images on disk ($DECA_TUNE_CACHE, default
                ~/.cache/deca_tune/images/), keyed by every file's SHA-256, the labels and these
                options, so the next load (and every trial of a search) does not decode again.
  workers       decoding threads (default: the CPUs this process may use, at most 16).

Errors name the file: an unreadable or truncated image, an empty class folder, a test class
unknown to training, a CSV row pointing at a missing file (with its line), a clean class that is
not a training class.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from deca_tune.data.download import DataUnavailableError, locate
from deca_tune.data.image.decode import EXTENSIONS, ImageFileError, decode_files, file_digests, is_grey
from deca_tune.data.image.labels import LabelFileError, image_key, read_clean_source
from deca_tune.data.image.raw import RawImages
from deca_tune.data.readers import MalformedFileError, line_of_row
from deca_tune.data.registry import IMAGE_DATASETS
from deca_tune.data.split_cache import cached_split, split_key

#: the option reference (``python -m deca_tune.data describe --help`` shows it)
IMAGE_FILES_HELP: str = __doc__
#: version of the decoding and labelling rules: part of the cache key (bump when results change)
VERSION = 1
CACHE_SUBDIR = "images"
TEST_LABELS = ("given", "clean")


def spec_defaults(options: dict) -> dict[str, Any]:
    """Labels are noisy as given: inject nothing; no meta set unless clean labels are asked for."""
    return {"noise_rate": 0.0, "meta_per_class": 0}


def _resolve(path: str | Path, root: Path, what: str) -> Path:
    return locate(path, root, what, want="any")


def resolve_options(options: dict, root: Path) -> dict:
    """``options`` with ``path``, ``test`` and ``clean`` made absolute (current directory, then
    the data root), for the search driver before Ray starts."""
    if options.get("path") is None:
        raise ValueError("option 'path' is required (e.g. --option path=my_images)")
    out = dict(options)
    for key in ("path", "test", "clean"):
        if out.get(key) is not None:
            out[key] = str(_resolve(out[key], root, f"option {key}:"))
    return out


# ---------------------------------------------------------------------------- scanning

def _image_files(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        found += [Path(dirpath) / f for f in sorted(files)
                  if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    return found


def scan_folder(folder: Path, classes: Sequence[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """(classes, files, class indices) of an ImageFolder-layout ``folder``. With ``classes``
    (a test folder) every class folder must be one of them."""
    if not folder.is_dir():
        raise DataUnavailableError(f"{folder}: not a folder (expected {folder}/<class>/<image files>)")
    found = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if not found:
        raise ImageFileError(f"{folder}: no class folders (expected {folder}/<class>/<image files>)")
    classes = list(found) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for cls in found:
        cls_files = _image_files(folder / cls)
        if cls not in index:
            example = f" (e.g. {cls_files[0]})" if cls_files else ""
            raise ImageFileError(f"{folder / cls}: class {cls!r} of the test folder is not a training "
                                 f"class{example}; training classes: {', '.join(classes[:20])}"
                                 f"{', ...' if len(classes) > 20 else ''}")
        if not cls_files:
            raise ImageFileError(f"{folder / cls}: class folder has no image files "
                                 f"({', '.join(EXTENSIONS)})")
        files += cls_files
        labels += [index[cls]] * len(cls_files)
    return classes, files, labels


def _class_order(values: Sequence[str]) -> list[str]:
    unique = sorted(set(values))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


# ---------------------------------------------------------------------------- building

def _listing_digest(files: Sequence[Path], labels: Sequence[int], digests: Sequence[str], base: Path) -> str:
    h = hashlib.sha256()
    for f, y, d in zip(files, labels, digests):
        h.update(f"{os.path.relpath(f, base)}\t{y}\t{d}\n".encode())
    return h.hexdigest()


def _auto_channels(files: Sequence[Path], labels: Sequence[int]) -> int:
    firsts = {}
    for f, y in zip(files, labels):
        firsts.setdefault(y, f)
    return 1 if all(is_grey(f) for f in firsts.values()) else 3


def _check_common(name: str, path: Any, example: str, test_option: str, test_given: Any, held: str,
                  image_size: Any, channels: Any, test_fraction: Any, test_labels: str) -> None:
    """The options both loaders share; ``test_option`` names what gives the test images (a
    folder, a split column), ``held`` what held-out images are."""
    if path is None:
        raise ValueError(f"{name}: option 'path' is required (e.g. --option path={example})")
    if test_given is not None and test_fraction is not None:
        raise ValueError(f"{name}: give either option {test_option} or test_fraction, not both")
    if test_labels == "clean" and test_given is None:
        raise ValueError(f"{name}: test_labels=clean needs {held} (option {test_option}); held-out "
                         "images keep their noisy labels")
    if image_size is not None and (int(image_size) != image_size or int(image_size) < 1):
        raise ValueError(f"option image_size={image_size!r}: a positive integer (pixels)")
    if channels is not None and str(channels) not in ("1", "3", "auto"):
        raise ValueError(f"option channels={channels!r}; choose 1, 3 or auto")
    if test_fraction is not None and not 0 < float(test_fraction) < 1:
        raise ValueError(f"option test_fraction={test_fraction!r}: between 0 and 1 (exclusive)")
    if test_labels not in TEST_LABELS:
        raise ValueError(f"option test_labels={test_labels!r}; choose one of: {', '.join(TEST_LABELS)}")


def _assemble(name: str, classes: list[str], train_files: list[Path], train_y: list[int],
              test_files: list[Path], test_y: list[int], *, clean_map: dict[str, int] | None,
              clean_train: list[int] | None, clean_test: list[int] | None, test_fraction: float | None,
              seed: int, image_size: int | None, channels: int, test_labels: str, workers: int | None,
              source: dict) -> RawImages:
    """Decode the files, hold out test images if there is no test set, attach clean labels."""
    y = torch.as_tensor(train_y, dtype=torch.int64)
    ty = torch.as_tensor(test_y, dtype=torch.int64)
    cy = torch.as_tensor(clean_train, dtype=torch.int64) if clean_train is not None else torch.full_like(y, -1)
    cty = torch.as_tensor(clean_test, dtype=torch.int64) if clean_test is not None else torch.full_like(ty, -1)
    if clean_map is not None:
        for files, target in ((train_files, cy), (test_files, cty)):
            known = [clean_map.get(image_key(f), -1) for f in files]
            target.copy_(torch.where(target >= 0, target, torch.as_tensor(known, dtype=torch.int64)))
    x = decode_files(train_files, channels, image_size, workers)
    tx = decode_files(test_files, channels, image_size, workers) if test_files else None
    if tx is not None and tx.shape[1:] != x.shape[1:]:
        raise ImageFileError(f"{test_files[0]} is {tx.shape[-2]}x{tx.shape[-1]} but {train_files[0]} is "
                             f"{x.shape[-2]}x{x.shape[-1]}; set option image_size")
    train_names, test_names = [str(f) for f in train_files], [str(f) for f in test_files]
    if tx is None:  # hold out a seeded share of the images as the test set
        n = len(y)
        n_test = int(round(n * (0.2 if test_fraction is None else float(test_fraction))))
        if not 1 <= n_test < n - 1:
            raise ValueError(f"{name}: test_fraction={test_fraction} of {n} images leaves no test or "
                             "no training images; give a test set or another fraction")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        te, tr = perm[:n_test].sort().values, perm[n_test:].sort().values
        tx, ty, cty = x[te], y[te], cy[te]
        x, y, cy = x[tr], y[tr], cy[tr]
        test_names = [train_names[i] for i in te.tolist()]
        train_names = [train_names[i] for i in tr.tolist()]
    if test_labels == "clean":
        cty = ty.clone()
    counts = torch.bincount(y, minlength=len(classes))
    if bool((counts == 0).any()):
        empty = [classes[i] for i in (counts == 0).nonzero().flatten().tolist()]
        raise ImageFileError(f"{name}: classes {', '.join(empty)} have no training image "
                             f"(after holding out the test images)")
    return RawImages(
        name=name, train_x=x.contiguous(), train_y=y, test_x=tx.contiguous(), test_y=ty,
        classes=list(classes), default_valid_size=max(1, len(y) // 10), source=source,
        labels_given=True, train_y_clean=cy if bool((cy >= 0).any()) else None,
        test_y_clean=cty if bool((cty >= 0).any()) else None,
        train_files=np.array(train_names, dtype=str), test_files=np.array(test_names, dtype=str))


def _load(name: str, key: dict, build: Any, cache: bool) -> RawImages:
    raw = cached_split(key, build, enabled=bool(cache), kind=RawImages, subdir=CACHE_SUBDIR)
    # what the files hold (part of the pre-trained prior's cache key: ImageSplit.fingerprint)
    raw.source["content_sha256"] = split_key(key, RawImages)
    return raw


@IMAGE_DATASETS.register("image-folder")
def load_image_folder(root: Path, download: bool = True, *, path: str | None = None,
                      test: str | None = None, test_fraction: float | None = None, seed: int = 0,
                      image_size: int | None = None, channels: int | str | None = None,
                      clean: str | None = None, clean_file_col: str = "file", clean_label_col: str = "label",
                      test_labels: str = "given", name: str = "image-folder", cache: bool = True,
                      workers: int | None = None) -> RawImages:
    """Images in ``PATH/<class>/<file>`` with their folder as the (noisy) label (module docstring)."""
    _check_common("image-folder", path, "my_images", "test", test, "a test folder",
                  image_size, channels, test_fraction, test_labels)
    folder = _resolve(path, root, "image-folder: option path:")
    classes, files, labels = scan_folder(folder)
    test_files: list[Path] = []
    test_y: list[int] = []
    if test is not None:
        _, test_files, test_y = scan_folder(_resolve(test, root, "image-folder: option test:"), classes)
    clean_src = _resolve(clean, root, "image-folder: option clean:") if clean is not None else None
    n_ch = _auto_channels(files, labels) if channels in (None, "auto") else int(channels)
    digests = file_digests(files + test_files, workers)
    if clean_src is None:
        clean_digest = None
    elif clean_src.is_dir():  # a clean folder says its labels by where the file names are
        clean_digest = hashlib.sha256("\n".join(os.path.relpath(f, clean_src)
                                                for f in _image_files(clean_src)).encode()).hexdigest()
    else:
        clean_digest = file_digests([clean_src])[0]
    options = {"test_fraction": test_fraction, "seed": int(seed), "image_size": image_size,
               "channels": n_ch, "test_labels": test_labels, "name": name,
               "clean_cols": [clean_file_col, clean_label_col] if clean_src else None}
    key = {"loader": "image-folder", "version": VERSION, "options": options,
           "train": _listing_digest(files, labels, digests[:len(files)], folder),
           "test": _listing_digest(test_files, test_y, digests[len(files):], folder), "clean": clean_digest,
           "classes": classes}

    def build() -> RawImages:
        clean_map = None
        if clean_src is not None:
            names = [image_key(f) for f in files + test_files]
            if len(set(names)) != len(names):
                seen: dict[str, Path] = {}
                for f in files + test_files:
                    if image_key(f) in seen:
                        raise ImageFileError(f"{f}: file name also used by {seen[image_key(f)]}; clean "
                                             "labels are matched by file name, which must be unique")
                    seen[image_key(f)] = f
            clean_map = read_clean_source(clean_src, classes, file_col=clean_file_col,
                                          label_col=clean_label_col, extensions=EXTENSIONS)
        source = {"layout": "image-folder", "root": str(folder), "test": str(test) if test else None,
                  "clean": str(clean_src) if clean_src else None, "files": len(files) + len(test_files)}
        return _assemble(name, classes, files, labels, test_files, test_y, clean_map=clean_map,
                         clean_train=None, clean_test=None, test_fraction=test_fraction if test is None else None,
                         seed=seed, image_size=image_size, channels=n_ch, test_labels=test_labels,
                         workers=workers, source=source)

    return _load(name, key, build, cache)


def _first(mask: pd.Series) -> int:
    """Position of the first True of a boolean Series (a row number of the CSV's frame)."""
    return int(np.argmax(mask.to_numpy()))


@IMAGE_DATASETS.register("image-csv")
def load_image_csv(root: Path, download: bool = True, *, path: str | None = None, file_col: str = "file",
                   label_col: str = "label", clean_col: str | None = None, split_col: str | None = None,
                   sep: str = ",", test_fraction: float | None = None, seed: int = 0,
                   image_size: int | None = None, channels: int | str | None = None,
                   test_labels: str = "given", name: str = "image-csv", cache: bool = True,
                   workers: int | None = None) -> RawImages:
    """Images listed in a CSV with their (noisy) labels (see the module docstring)."""
    _check_common("image-csv", path, "labels.csv", "split_col", split_col, "test rows",
                  image_size, channels, test_fraction, test_labels)
    csv = _resolve(path, root, "image-csv: option path:")
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False, sep=sep)
    except (ValueError, pd.errors.ParserError) as exc:
        raise MalformedFileError(f"{csv}: {exc}") from None
    for col in (file_col, label_col, clean_col, split_col):
        if col is not None and col not in frame.columns:
            raise MalformedFileError(f"{csv}: no column {col!r}; columns: {', '.join(frame.columns)}")
    if frame.empty:
        raise MalformedFileError(f"{csv}: no rows")
    line = lambda row: line_of_row(csv, row, sep=sep)  # noqa: E731
    base = csv.parent
    paths = [Path(f.strip()) if os.path.isabs(f.strip()) else base / f.strip() for f in frame[file_col]]
    for row, (f, p) in enumerate(zip(frame[file_col], paths)):
        if f.strip() == "" or not p.is_file():
            raise DataUnavailableError(f"{csv}, line {line(row)}: image file {f!r} not found "
                                       f"(looked at {p})")
    labels = frame[label_col].str.strip()
    if (labels == "").any():
        raise MalformedFileError(f"{csv}, line {line(_first(labels == ''))}: empty label")
    labels_text = labels.tolist()
    if split_col is not None:
        parts = frame[split_col].str.strip().str.lower()
        bad = ~parts.isin(["train", "test"])
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise MalformedFileError(f"{csv}, line {line(row)}: {split_col}={frame[split_col].iloc[row]!r}; "
                                     "use train or test")
        is_test = (parts == "test").to_numpy()
    else:
        is_test = np.zeros(len(frame), dtype=bool)
    classes = _class_order([t for t, te in zip(labels_text, is_test) if not te])
    index = {c: i for i, c in enumerate(classes)}
    unknown = ~labels.isin(classes)  # only test rows can be unknown
    if unknown.any():
        row = _first(unknown)
        raise MalformedFileError(f"{csv}, line {line(row)}: test label {labels_text[row]!r} is not a class of "
                                 f"the training rows ({', '.join(classes[:20])})")
    clean = None
    if clean_col is not None:
        clean_text = frame[clean_col].str.strip()
        unknown = (clean_text != "") & ~clean_text.isin(classes)
        if unknown.any():
            row = _first(unknown)
            raise MalformedFileError(f"{csv}, line {line(row)}: clean label {clean_text.iloc[row]!r} is not a "
                                     f"class of the training rows ({', '.join(classes[:20])})")
        clean = clean_text.map(index).fillna(-1).astype(int).tolist()
    y = labels.map(index).astype(int).tolist()
    tr, te = np.flatnonzero(~is_test).tolist(), np.flatnonzero(is_test).tolist()
    if not tr:
        raise MalformedFileError(f"{csv}: no training rows")
    if split_col is not None and not te:
        raise MalformedFileError(f"{csv}: no row has {split_col}=test")
    files = [paths[i] for i in tr]
    test_files = [paths[i] for i in te]
    n_ch = _auto_channels(files, [y[i] for i in tr]) if channels in (None, "auto") else int(channels)
    digests = file_digests(paths, workers)
    h = hashlib.sha256()
    for f, d in zip(paths, digests):
        h.update(f"{f}\t{d}\n".encode())
    with open(csv, "rb") as fh:
        csv_digest = hashlib.file_digest(fh, "sha256").hexdigest()
    options = {"file_col": file_col, "label_col": label_col, "clean_col": clean_col, "split_col": split_col,
               "sep": sep, "test_fraction": test_fraction, "seed": int(seed), "image_size": image_size,
               "channels": n_ch, "test_labels": test_labels, "name": name}
    key = {"loader": "image-csv", "version": VERSION, "options": options, "csv": csv_digest,
           "files": h.hexdigest()}

    def build() -> RawImages:
        source = {"layout": "image-csv", "csv": str(csv), "files": len(paths)}
        return _assemble(name, classes, files, [y[i] for i in tr], test_files, [y[i] for i in te],
                         clean_map=None, clean_train=[clean[i] for i in tr] if clean else None,
                         clean_test=[clean[i] for i in te] if clean else None,
                         test_fraction=test_fraction if split_col is None else None, seed=seed,
                         image_size=image_size, channels=n_ch, test_labels=test_labels,
                         workers=workers, source=source)

    return _load(name, key, build, cache)


for _loader in (load_image_folder, load_image_csv):
    _loader.spec_defaults = spec_defaults  # type: ignore[attr-defined]
    _loader.resolve_options = resolve_options  # type: ignore[attr-defined]

__all__ = ["IMAGE_FILES_HELP", "LabelFileError", "load_image_csv", "load_image_folder", "resolve_options",
           "scan_folder", "spec_defaults"]
