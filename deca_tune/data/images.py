"""Image classification data with injected label noise (paper section 5.1, Table 4).

Raw images come from torchvision's dataset classes and file formats (``MNIST``,
``FashionMNIST``, ``CIFAR10``: download, md5 check, cache). Everything is kept in memory as
``uint8`` tensors ``[N, C, H, W]``; batches are normalised (and, for CIFAR, augmented with a
4-pixel-padded random crop + horizontal flip) on whole tensors by :func:`normalise` and
:func:`augment_batch` -- no per-sample PIL decoding.

Where the files are looked for, in order (``root`` = ``--data-root`` > ``$DECA_TUNE_DATA`` >
``~/.cache/deca_tune``):

1. torchvision's own layout, ``<root>/<ClassName>/raw/...`` (``<root>/cifar-10-batches-py``);
2. the shared offline layout, ``<root>/<slug>/*.gz`` (e.g. ``/work/shared/data/fashion-mnist``,
   or ``root`` itself holding the ``.gz`` files): its ``SHA256SUMS`` is checked, then the files
   are decompressed into a writable cache (``$DECA_TUNE_CACHE`` or ``~/.cache/deca_tune``, under
   ``torchvision/<ClassName>/raw``) -- the data root is never written to;
3. otherwise torchvision downloads into ``<root>`` and checks its md5 sums.

:func:`build_image_split` then carves (seeded) a clean meta set of ``meta_per_class`` images per
class (MW-Net's clean data, taken before noise and removed from training for *every* method so
all methods train on the same images), a validation split of ``valid_size`` images, and injects
label noise into train and validation (:mod:`deca_tune.data.noise`). The test split stays clean.
"""
from __future__ import annotations

import functools
import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from deca_tune.data import IMAGE_DATASETS
from deca_tune.data.download import DataUnavailableError, sha256_of
from deca_tune.data.noise import inject_noise
from deca_tune.paths import cache_dir as image_cache_dir
from deca_tune.paths import data_root as resolve_data_root



@dataclass
class RawImages:
    """A data set as published: ``uint8`` images ``[N, C, H, W]`` and ``int64`` labels."""

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

    def __post_init__(self) -> None:
        for key in ("train_x", "test_x"):
            x = getattr(self, key)
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{self.name}: {key} must be uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        for xk, yk in (("train_x", "train_y"), ("test_x", "test_y")):
            if len(getattr(self, xk)) != len(getattr(self, yk)):
                raise ValueError(f"{self.name}: {xk} and {yk} differ in length")


@dataclass
class ImageSplit:
    """Noisy training/validation data and a clean test set, all in memory.

    Images are ``uint8 [N, C, H, W]``; labels ``int64 [N]``. ``train_y_noisy``/``valid_y`` are
    what methods see; ``train_y_true``, ``noisy_mask`` and ``valid_y_clean`` exist for analysis and
    the ``paper`` selection protocol. Treat all tensors as read-only (splits are cached).
    """

    name: str
    n_classes: int
    in_channels: int
    image_size: int
    train_x: torch.Tensor
    train_y_noisy: torch.Tensor
    train_y_true: torch.Tensor
    noisy_mask: torch.Tensor
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    valid_y_clean: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    meta_x: torch.Tensor
    meta_y: torch.Tensor
    #: per-channel mean / std of the training pixels in [0, 1] (for :func:`normalise`)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = False
    noise_rate: float = 0.0
    noise_type: str = "symmetric"
    #: rows of the published training set that became train / valid / meta (traceability)
    train_index: torch.Tensor | None = None
    valid_index: torch.Tensor | None = None
    meta_index: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def realised_noise_rate(self) -> float:
        return float(self.noisy_mask.float().mean()) if len(self.noisy_mask) else 0.0

    def stats(self) -> dict[str, Any]:
        """Sizes and noise of the split as a JSON-ready dict."""
        return {"name": self.name, "n_classes": self.n_classes, "in_channels": self.in_channels,
                "image_size": self.image_size, "n_train": len(self.train_y_noisy),
                "n_valid": len(self.valid_y), "n_meta": len(self.meta_y), "n_test": len(self.test_y),
                "noise_type": self.noise_type, "noise_rate": self.noise_rate,
                "realised_noise_rate": self.realised_noise_rate,
                "valid_noise_rate": float((self.valid_y != self.valid_y_clean).float().mean())
                if len(self.valid_y) else 0.0,
                "augment": self.augment}


# --------------------------------------------------------------------- batch transforms
def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``uint8 [B, C, H, W]`` -> standardised ``float32``."""
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - m) / s


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with ``pad``-pixel zero padding + random horizontal flip, batched.

    ``x``: ``[B, C, H, W]`` (any dtype). Random draws come from ``generator`` (a CPU generator).
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = oy[:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = ox[:, None] + torch.arange(w, device=x.device)  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


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
    try:
        train = cls(str(tv_root), train=True, download=get)
        test = cls(str(tv_root), train=False, download=get)
    except (RuntimeError, OSError) as exc:
        raise DataUnavailableError(
            f"{slug}: could not load or download into {tv_root / cls_name / 'raw'} ({exc}); "
            f"put the files {', '.join(raw_names)} in {root / slug} or pass --data-root") from exc
    return RawImages(
        name=slug,
        train_x=train.data.unsqueeze(1).contiguous(),
        train_y=train.targets.long(),
        test_x=test.data.unsqueeze(1).contiguous(),
        test_y=test.targets.long(),
        classes=list(train.classes),
        source=source,
    )


@IMAGE_DATASETS.register("fashion-mnist")
def load_fashion_mnist(root: Path, cache: Path, download: bool = True, verify: bool = True) -> RawImages:
    """Fashion-MNIST (Xiao et al. 2017): 60k/10k grey 28x28, 10 classes."""
    return _load_idx_dataset("FashionMNIST", "fashion-mnist", root, cache, download)


@IMAGE_DATASETS.register("mnist")
def load_mnist(root: Path, cache: Path, download: bool = True, verify: bool = True) -> RawImages:
    """MNIST: 60k/10k grey 28x28, 10 classes."""
    return _load_idx_dataset("MNIST", "mnist", root, cache, download)


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
def load_cifar10(root: Path, cache: Path, download: bool = True, verify: bool = True) -> RawImages:
    """CIFAR-10: 50k/10k colour 32x32, 10 classes, torchvision's pickled python batches.

    Looks for ``cifar-10-batches-py`` in ``root`` and ``root/cifar10``; else downloads into
    ``root``. ``verify=False`` skips the md5 check of the batch files.
    """
    from torchvision.datasets import CIFAR10

    cls = _cifar10_class(verify)
    tv_root = next((r for r in (root, root / "cifar10") if (r / CIFAR10.base_folder).is_dir()), root)
    get = download and not (tv_root / CIFAR10.base_folder).is_dir()
    try:
        train = cls(str(tv_root), train=True, download=get)
        test = cls(str(tv_root), train=False, download=get)
    except (RuntimeError, OSError) as exc:
        raise DataUnavailableError(
            f"cifar10: could not load or download {tv_root / CIFAR10.base_folder} ({exc}); "
            f"put torchvision's cifar-10-batches-py folder in {root} or pass --data-root") from exc
    return RawImages(
        name="cifar10",
        train_x=torch.from_numpy(train.data).permute(0, 3, 1, 2).contiguous(),
        train_y=torch.as_tensor(train.targets, dtype=torch.int64),
        test_x=torch.from_numpy(test.data).permute(0, 3, 1, 2).contiguous(),
        test_y=torch.as_tensor(test.targets, dtype=torch.int64),
        classes=list(train.classes),
        augment=True,
        source={"layout": "torchvision", "root": str(tv_root), "verified": verify},
    )


@IMAGE_DATASETS.register("synthetic-images")
def load_synthetic_images(root: Path | None = None, cache: Path | None = None, download: bool = True,
                          verify: bool = True, n_train: int = 3000, n_test: int = 500,
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


# ------------------------------------------------------------------------- the split
@functools.lru_cache(maxsize=4)
def load_raw_images(name: str, data_root: str | None = None, cache_dir: str | None = None,
                    download: bool = True, verify: bool = True,
                    options: tuple[tuple[str, Any], ...] = ()) -> RawImages:
    """The published train/test data of ``name`` (cached per process)."""
    loader: Callable[..., RawImages] = IMAGE_DATASETS.get(name)
    return loader(resolve_data_root(data_root), image_cache_dir(cache_dir), download=download,
                  verify=verify, **dict(options))


def _first_per_class(labels: torch.Tensor, n_classes: int, per_class: int) -> torch.Tensor:
    """Boolean mask of the first ``per_class`` positions of each class in ``labels``' order."""
    order = torch.sort(labels, stable=True).indices
    counts = torch.bincount(labels, minlength=n_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank_sorted = torch.arange(len(labels)) - starts[labels[order]]
    rank = torch.empty_like(rank_sorted)
    rank[order] = rank_sorted
    short = (counts < per_class).nonzero().flatten().tolist()
    if short:
        raise ValueError(f"meta set needs {per_class} images per class; classes {short} have fewer")
    return rank < per_class


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean / std of ``uint8`` images in [0, 1], exactly, from 256-bin histograms
    (no float copy of the whole set)."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / n
        means.append(float(mean))
        stds.append(max(float(var.sqrt()), 1e-3))
    return tuple(means), tuple(stds)


@functools.lru_cache(maxsize=4)
def _cached_split(name: str, data_root: str | None, cache_dir: str | None, download: bool,
                  verify: bool, options: tuple[tuple[str, Any], ...], seed: int, noise_rate: float,
                  noise_type: str, valid_size: int | None, meta_per_class: int,
                  train_size: int | None) -> ImageSplit:
    raw = load_raw_images(name, data_root, cache_dir, download, verify, options)
    n_classes = len(raw.classes)
    n = len(raw.train_y)
    valid_size = raw.default_valid_size if valid_size is None else int(valid_size)
    n_meta = meta_per_class * n_classes
    if valid_size < 1 or n_meta + valid_size >= n:
        raise ValueError(f"{name}: valid_size={valid_size} + meta set {n_meta} must leave training "
                         f"images out of {n}")
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    if meta_per_class > 0:
        is_meta = _first_per_class(raw.train_y[perm], n_classes, meta_per_class)
    else:
        is_meta = torch.zeros(n, dtype=torch.bool)
    meta_idx, rest = perm[is_meta], perm[~is_meta]
    valid_idx, train_idx = rest[:valid_size], rest[valid_size:]
    if train_size:
        if int(train_size) > len(train_idx):
            raise ValueError(f"{name}: train_size={train_size} exceeds the {len(train_idx)} training images left")
        train_idx = train_idx[: int(train_size)]
    y_true = raw.train_y[torch.cat([train_idx, valid_idx])]
    y_noisy, changed = inject_noise(y_true, n_classes, noise_rate, noise_type, generator=g)
    nt = len(train_idx)
    mean, std = _channel_stats(raw.train_x)
    return ImageSplit(
        name=name, n_classes=n_classes, in_channels=raw.train_x.shape[1],
        image_size=raw.train_x.shape[-1],
        train_x=raw.train_x[train_idx], train_y_noisy=y_noisy[:nt], train_y_true=y_true[:nt],
        noisy_mask=changed[:nt],
        valid_x=raw.train_x[valid_idx], valid_y=y_noisy[nt:], valid_y_clean=y_true[nt:],
        test_x=raw.test_x, test_y=raw.test_y,
        meta_x=raw.train_x[meta_idx], meta_y=raw.train_y[meta_idx],
        mean=mean, std=std, augment=raw.augment, noise_rate=float(noise_rate), noise_type=noise_type,
        train_index=train_idx, valid_index=valid_idx, meta_index=meta_idx,
        meta={"source": raw.source, "classes": raw.classes, "seed": int(seed)},
    )


def clear_image_cache() -> None:
    """Forget every cached raw data set and split (tests; after files on disk changed)."""
    _cached_split.cache_clear()
    load_raw_images.cache_clear()


def build_image_split(name: str, *, data_root: str | os.PathLike | None = None,
                      cache_dir: str | os.PathLike | None = None, seed: int = 0,
                      noise_rate: float = 0.4, noise_type: str = "symmetric",
                      valid_size: int | None = None, meta_per_class: int = 100,
                      train_size: int | None = None, download: bool = True, verify: bool = True,
                      options: dict[str, Any] | None = None) -> ImageSplit:
    """Load ``name`` and build its noisy split (cached per process; same arguments -> same split).

    ``seed`` drives the meta/validation/train partition and the noise. ``valid_size`` defaults to
    the data set's (10,000 for the real ones, as in the paper); ``train_size`` optionally keeps
    only the first that many training images (benchmarks on a subset).
    """
    return _cached_split(
        name, str(data_root) if data_root else None, str(cache_dir) if cache_dir else None,
        bool(download), bool(verify), tuple(sorted((options or {}).items())), int(seed),
        float(noise_rate), str(noise_type), valid_size, int(meta_per_class),
        int(train_size) if train_size else None)
