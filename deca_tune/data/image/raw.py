"""Image data sets as published: ``uint8`` tensors ``[N, C, H, W]`` and ``int64`` labels.

Raw images come from torchvision's dataset classes and file formats (``MNIST``,
``FashionMNIST``, ``CIFAR10``: download, md5 check, cache), kept in memory as tensors (no
per-sample PIL decoding). Every loader has the data-set contract of
:mod:`deca_tune.data.registry`: ``loader(root, download=True, **options) -> RawImages``.

Where the files are looked for, in order (``root`` = ``--data-root`` > ``$DECA_TUNE_DATA`` >
``~/.cache/deca_tune``):

1. torchvision's own layout, ``<root>/<ClassName>/raw/...`` (``<root>/cifar-10-batches-py``);
2. the shared offline layout, ``<root>/<slug>/*.gz`` (e.g. ``/work/shared/data/fashion-mnist``,
   or ``root`` itself holding the ``.gz`` files): its ``SHA256SUMS`` is checked, then the files
   are decompressed into a writable cache (option ``cache_dir`` > ``$DECA_TUNE_CACHE`` >
   ``~/.cache/deca_tune``, under ``torchvision/<ClassName>/raw``) -- the data root is never
   written to;
3. otherwise torchvision downloads into ``<root>`` and checks its md5 sums.

Real human label noise: ``mnist``, ``fashion-mnist`` and ``cifar10`` take the option
``noisy_labels=FILE`` (with ``noisy_labels_key`` for a file of several label sets): the file's
``N`` labels replace the training labels and become the noisy labels as given, the published
ones stay as the clean labels (``RawImages.labels_given``), and nothing is injected unless the
spec sets ``noise_rate``. For CIFAR-10N: ``--option noisy_labels=CIFAR-10_human.pt --option
noisy_labels_key=worse_label`` (or ``aggre_label``, ``random_label1``...); when the file has a
``clean_label`` entry it must agree with CIFAR-10's labels (it proves the row order). Formats:
:mod:`deca_tune.data.image.labels`.
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from deca_tune.data.download import DataUnavailableError, locate, sha256_of
from deca_tune.data.image.labels import LabelFileError, read_label_file
from deca_tune.data.registry import IMAGE_DATASETS
from deca_tune.paths import cache_dir as resolve_cache_dir


@dataclass
class RawImages:
    """A data set as published: ``uint8`` images ``[N, C, H, W]`` and ``int64`` labels.

    Two kinds of labels:

    - ``labels_given=False`` (the published sets): ``train_y`` / ``test_y`` are the clean labels;
      the split injects noise into the training labels (spec ``noise_rate``);
    - ``labels_given=True`` (your own files: ``image-folder``, ``image-csv``; or a torchvision set
      with ``noisy_labels``): ``train_y`` / ``test_y`` are the labels as given, i.e. noisy;
      ``train_y_clean`` / ``test_y_clean`` hold clean labels where known (``-1``: unknown;
      ``None``: none known). Noise is injected on top only when the spec asks for it.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    #: crop + flip augmentation by default (CIFAR)
    augment: bool = False
    default_valid_size: int = 10_000
    source: dict[str, Any] = field(default_factory=dict)
    #: True: train_y / test_y are labels as given (noisy), see the class docstring
    labels_given: bool = False
    train_y_clean: torch.Tensor | None = None
    test_y_clean: torch.Tensor | None = None
    #: the file of every image (files on disk only; traceability and ``describe``)
    train_files: Any = None
    test_files: Any = None

    def __post_init__(self) -> None:
        for key in ("train_x", "test_x"):
            x = getattr(self, key)
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{self.name}: {key} must be uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        for xk, yk in (("train_x", "train_y"), ("test_x", "test_y")):
            if len(getattr(self, xk)) != len(getattr(self, yk)):
                raise ValueError(f"{self.name}: {xk} and {yk} differ in length")
        for yk, ck in (("train_y", "train_y_clean"), ("test_y", "test_y_clean")):
            clean = getattr(self, ck)
            if clean is not None and clean.shape != getattr(self, yk).shape:
                raise ValueError(f"{self.name}: {ck} and {yk} differ in length")


# ------------------------------------------------------------------------ file access
def _check_sha256sums(folder: Path, names: list[str]) -> dict[str, str]:
    """Verify ``names`` against ``folder/SHA256SUMS`` when that file exists; return the sums."""
    sums_file = folder / "SHA256SUMS"
    sums: dict[str, str] = {}
    expected: dict[str, str] = {}
    if sums_file.exists():
        for lineno, line in enumerate(sums_file.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"{sums_file}:{lineno}: expected '<sha256> <file>', got {line!r}")
            expected[parts[1].lstrip("*")] = parts[0].lower()
    for name in names:
        digest = sha256_of(folder / name)
        if name in expected and expected[name] != digest:
            raise DataUnavailableError(f"checksum mismatch for {folder / name}: sha256 {digest}, "
                                       f"{sums_file} says {expected[name]}")
        sums[name] = digest
    return sums


def _decompress_into(src: Path, dest: Path) -> None:
    """Gunzip ``src`` to ``dest`` atomically (parallel workers may race on a shared cache)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _torchvision_root_for_idx(cls_name: str, slug: str, raw_names: list[str], root: Path,
                              cache: Path) -> tuple[Path, dict[str, Any]]:
    """Pick the root to hand to a torchvision MNIST-style class (see the module docstring)."""
    plain = [n[:-3] for n in raw_names]
    if all((root / cls_name / "raw" / n).is_file() for n in plain):
        return root, {"layout": "torchvision", "root": str(root)}
    for folder in (root / slug, root):
        if all((folder / n).is_file() for n in raw_names):
            sums = _check_sha256sums(folder, raw_names)
            target = cache / "torchvision"
            for gz_name, name in zip(raw_names, plain):
                dest = target / cls_name / "raw" / name
                if not dest.is_file():
                    _decompress_into(folder / gz_name, dest)
            return target, {"layout": "shared", "root": str(folder), "sha256": sums}
    return root, {"layout": "download", "root": str(root)}


def _torchvision_sets(cls: type, root: Path, download: bool, what: str, fix: str) -> tuple[Any, Any]:
    """torchvision's train and test sets of ``cls`` under ``root``; a failure names the files."""
    try:
        return cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as exc:
        raise DataUnavailableError(f"{what} ({exc}); {fix}") from exc


def _load_idx_dataset(cls_name: str, slug: str, root: Path, cache: Path, download: bool) -> RawImages:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    raw_names = [name for name, _md5 in cls.resources]
    tv_root, source = _torchvision_root_for_idx(cls_name, slug, raw_names, root, cache)
    get = source["layout"] == "download" and download
    if source["layout"] == "download" and not download:
        raise DataUnavailableError(
            f"{slug}: no files in {root / cls_name / 'raw'} (torchvision layout) nor in {root / slug} "
            f"(files {', '.join(raw_names)}); pass --data-root to a folder that has them or allow download")
    train, test = _torchvision_sets(
        cls, tv_root, get, f"{slug}: could not load or download into {tv_root / cls_name / 'raw'}",
        f"put the files {', '.join(raw_names)} in {root / slug} or pass --data-root")
    return RawImages(
        name=slug,
        train_x=train.data.unsqueeze(1).contiguous(),
        train_y=train.targets.long(),
        test_x=test.data.unsqueeze(1).contiguous(),
        test_y=test.targets.long(),
        classes=list(train.classes),
        source=source,
    )


def _label_file(path: str | Path, root: Path) -> Path:
    return locate(path, root, "noisy_labels: label file", hint="not a label file")


def with_noisy_labels(raw: RawImages, root: Path, noisy_labels: str | None,
                      noisy_labels_key: str | None = None) -> RawImages:
    """``raw`` with its training labels replaced by those of the file ``noisy_labels`` (labels as
    given; the published ones become the clean labels). ``None``: ``raw`` unchanged."""
    if noisy_labels is None:
        if noisy_labels_key is not None:
            raise ValueError(f"{raw.name}: option noisy_labels_key needs option noisy_labels (the file)")
        return raw
    file = _label_file(noisy_labels, root)
    labels, obj = read_label_file(file, len(raw.train_y), len(raw.classes), noisy_labels_key)
    if isinstance(obj, dict) and "clean_label" in obj and noisy_labels_key != "clean_label":
        theirs = torch.as_tensor(obj["clean_label"]).long().flatten()
        if theirs.shape != raw.train_y.shape or not torch.equal(theirs, raw.train_y):
            n_bad = int((theirs != raw.train_y).sum()) if theirs.shape == raw.train_y.shape else len(theirs)
            raise LabelFileError(f"{file}: its clean_label entry disagrees with {raw.name}'s training "
                                 f"labels ({n_bad} rows): the file is not in the data set's row order")
    source = {**raw.source, "noisy_labels": str(file), "noisy_labels_key": noisy_labels_key,
              "noisy_labels_sha256": sha256_of(file)}
    return dataclasses.replace(raw, train_y=labels, train_y_clean=raw.train_y, test_y_clean=raw.test_y,
                               labels_given=True, source=source)


def _noisy_labels_defaults(options: dict) -> dict[str, Any]:
    """Labels replaced by a file are noisy as given: inject nothing unless asked."""
    return {"noise_rate": 0.0} if options.get("noisy_labels") else {}


def _resolve_noisy_labels(options: dict, root: Path) -> dict:
    """The option ``noisy_labels`` made absolute (for the search driver, before Ray starts)."""
    if options.get("noisy_labels") is None:
        return options
    return {**options, "noisy_labels": str(_label_file(options["noisy_labels"], root))}


@IMAGE_DATASETS.register("fashion-mnist")
def load_fashion_mnist(root: Path, download: bool = True, verify: bool = True,
                       cache_dir: str | None = None, noisy_labels: str | None = None,
                       noisy_labels_key: str | None = None) -> RawImages:
    """Fashion-MNIST (Xiao et al. 2017): 60k/10k grey 28x28, 10 classes."""
    raw = _load_idx_dataset("FashionMNIST", "fashion-mnist", root, resolve_cache_dir(cache_dir), download)
    return with_noisy_labels(raw, root, noisy_labels, noisy_labels_key)


@IMAGE_DATASETS.register("mnist")
def load_mnist(root: Path, download: bool = True, verify: bool = True,
               cache_dir: str | None = None, noisy_labels: str | None = None,
               noisy_labels_key: str | None = None) -> RawImages:
    """MNIST: 60k/10k grey 28x28, 10 classes."""
    raw = _load_idx_dataset("MNIST", "mnist", root, resolve_cache_dir(cache_dir), download)
    return with_noisy_labels(raw, root, noisy_labels, noisy_labels_key)


def _cifar10_class(verify: bool) -> type:
    from torchvision.datasets import CIFAR10

    if verify:
        return CIFAR10

    class UnverifiedCIFAR10(CIFAR10):
        """Same format, md5 sums not checked (files written by tests or converted copies)."""

        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    return UnverifiedCIFAR10


@IMAGE_DATASETS.register("cifar10")
def load_cifar10(root: Path, download: bool = True, verify: bool = True,
                 cache_dir: str | None = None, noisy_labels: str | None = None,
                 noisy_labels_key: str | None = None) -> RawImages:
    """CIFAR-10: 50k/10k colour 32x32, 10 classes, torchvision's pickled python batches.

    Looks for ``cifar-10-batches-py`` in ``root`` and ``root/cifar10``; else downloads into
    ``root``. ``verify=False`` skips the md5 check of the batch files. ``noisy_labels``: CIFAR-10N
    (see the module docstring).
    """
    from torchvision.datasets import CIFAR10

    cls = _cifar10_class(verify)
    tv_root = next((r for r in (root, root / "cifar10") if (r / CIFAR10.base_folder).is_dir()), root)
    get = download and not (tv_root / CIFAR10.base_folder).is_dir()
    train, test = _torchvision_sets(
        cls, tv_root, get, f"cifar10: could not load or download {tv_root / CIFAR10.base_folder}",
        f"put torchvision's cifar-10-batches-py folder in {root} or pass --data-root")
    raw = RawImages(
        name="cifar10",
        train_x=torch.from_numpy(train.data).permute(0, 3, 1, 2).contiguous(),
        train_y=torch.as_tensor(train.targets, dtype=torch.int64),
        test_x=torch.from_numpy(test.data).permute(0, 3, 1, 2).contiguous(),
        test_y=torch.as_tensor(test.targets, dtype=torch.int64),
        classes=list(train.classes),
        augment=True,
        source={"layout": "torchvision", "root": str(tv_root), "verified": verify},
    )
    return with_noisy_labels(raw, root, noisy_labels, noisy_labels_key)


for _loader in (load_fashion_mnist, load_mnist, load_cifar10):
    _loader.spec_defaults = _noisy_labels_defaults  # type: ignore[attr-defined]
    _loader.resolve_options = _resolve_noisy_labels  # type: ignore[attr-defined]


@IMAGE_DATASETS.register("synthetic-images")
def load_synthetic_images(root: Path | None = None, download: bool = True, verify: bool = True,
                          cache_dir: str | None = None, n_train: int = 3000, n_test: int = 500,
                          n_classes: int = 10, channels: int = 1, image_size: int = 28,
                          seed: int = 0) -> RawImages:
    """A learnable toy set with no files: one random smooth template per class plus pixel noise.

    For tests and smoke runs (``dataset_options`` sets the sizes).
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n_classes, channels, 7, 7, generator=g)
    templates = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, n_classes, (n,), generator=g)
        x = templates[y] * 0.7 + 0.3 * torch.rand(n, channels, image_size, image_size, generator=g)
        return (x * 255).round().clamp(0, 255).to(torch.uint8), y

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return RawImages("synthetic-images", train_x, train_y, test_x, test_y,
                     classes=[str(c) for c in range(n_classes)], default_valid_size=max(n_train // 6, 1),
                     source={"layout": "generated", "seed": seed})

