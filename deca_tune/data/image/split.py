"""The noisy image split of a spec (paper section 5.1, Table 4): meta, validation and training
images carved from the published training set, label noise injected, the test set kept clean.

:func:`build_image_split` carves (seeded) a clean meta set of ``meta_per_class`` images per
class (MW-Net's clean data, taken before noise and removed from training for *every* method so
all methods train on the same images), a validation split of ``valid_size`` images, and injects
label noise into train and validation (:mod:`deca_tune.data.image.noise`). The test split stays
clean. A data set whose labels are given (``RawImages.labels_given``: your own files, or
``noisy_labels``) keeps them as the noisy labels (noise is injected on top only if the spec asks),
carries its clean labels where known (``-1`` elsewhere) and draws the meta set from images with
a known clean label. :func:`split_from_spec` is the image family's split builder (``Task.split_builder``);
``deca_tune.data.load_split`` caches its result per process.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from deca_tune.data.image.noise import inject_noise
from deca_tune.data.image.raw import RawImages


@dataclass
class ImageSplit:
    """Noisy training/validation data and a clean test set, all in memory.

    Images are ``uint8 [N, C, H, W]``; labels ``int64 [N]``. ``train_y_noisy``/``valid_y`` are
    what methods see; ``train_y_true``, ``noisy_mask`` and ``valid_y_clean`` exist for analysis and
    the ``paper`` selection protocol. ``test_y`` holds the clean test labels. With
    ``labels == "given"`` a clean label may be unknown: ``-1`` in ``train_y_true``,
    ``valid_y_clean`` and ``test_y`` (``noisy_mask`` is False there), and ``test_y_noisy`` holds
    the test labels as given when they are not all known to be clean. Treat all tensors as
    read-only (splits are cached).
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
    #: "injected": clean published labels, noise injected here; "given": labels as given
    labels: str = "injected"
    test_y_noisy: torch.Tensor | None = None

    @property
    def realised_noise_rate(self) -> float:
        """Share of training labels that differ from the clean ones (among known clean labels)."""
        if not len(self.noisy_mask):
            return 0.0
        known = self.train_y_true >= 0
        return float(self.noisy_mask[known].float().mean()) if bool(known.any()) else float("nan")

    def clean_known(self) -> dict[str, int]:
        """How many clean labels are known, per part (all of them unless labels are given)."""
        return {"train": int((self.train_y_true >= 0).sum()), "valid": int((self.valid_y_clean >= 0).sum()),
                "test": int((self.test_y >= 0).sum())}

    def stats(self) -> dict[str, Any]:
        """Sizes and noise of the split as a JSON-ready dict."""
        if self.labels == "given":
            known = self.clean_known()
            vk = self.valid_y_clean >= 0
            return {"name": self.name, "labels": "given", "n_classes": self.n_classes,
                    "in_channels": self.in_channels, "image_size": self.image_size,
                    "n_train": len(self.train_y_noisy), "n_valid": len(self.valid_y),
                    "n_meta": len(self.meta_y), "n_test": len(self.test_y),
                    "clean_train": known["train"], "clean_valid": known["valid"], "clean_test": known["test"],
                    "test_labels": "clean" if self.test_y_noisy is None else "given",
                    "noise_type": self.noise_type, "injected_noise_rate": self.noise_rate,
                    "realised_noise_rate": self.realised_noise_rate if known["train"] else None,
                    "valid_noise_rate": float((self.valid_y[vk] != self.valid_y_clean[vk]).float().mean())
                    if known["valid"] else None,
                    "augment": self.augment, **self.meta.get("label_stats", {})}
        return {"name": self.name, "n_classes": self.n_classes, "in_channels": self.in_channels,
                "image_size": self.image_size, "n_train": len(self.train_y_noisy),
                "n_valid": len(self.valid_y), "n_meta": len(self.meta_y), "n_test": len(self.test_y),
                "noise_type": self.noise_type, "noise_rate": self.noise_rate,
                "realised_noise_rate": self.realised_noise_rate,
                "valid_noise_rate": float((self.valid_y != self.valid_y_clean).float().mean())
                if len(self.valid_y) else 0.0,
                "augment": self.augment}

    def fingerprint(self) -> str:
        """SHA-256 over what a ``normal`` run reads (the training and validation images' rows and
        noisy labels): part of the key of cached pre-trained models."""
        h = hashlib.sha256(f"{self.name}|{self.n_classes}|{self.image_size}".encode())
        for t in (self.train_index, self.train_y_noisy, self.valid_index, self.valid_y):
            h.update(b"|" if t is None else t.to(torch.int64).contiguous().numpy().tobytes())
        source = self.meta.get("source") or {}
        for key in ("content_sha256", "noisy_labels_sha256"):  # your own files: their content
            if source.get(key):
                h.update(f"|{key}={source[key]}".encode())
        return h.hexdigest()


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


def make_image_split(raw: RawImages, seed: int, noise_rate: float, noise_type: str = "symmetric",
                     valid_size: int | None = None, meta_per_class: int = 100,
                     train_size: int | None = None) -> ImageSplit:
    """Carve the meta / validation / training images of ``raw`` and inject label noise.

    ``seed`` drives the partition and the noise. ``valid_size`` defaults to the data set's
    (10,000 for the real ones, as in the paper); ``train_size`` optionally keeps only the first
    that many training images (benchmarks on a subset). Labels given as noisy
    (``raw.labels_given``) stay as given; ``noise_rate`` > 0 injects noise on top of them.
    """
    name = raw.name
    n_classes = len(raw.classes)
    n = len(raw.train_y)
    given = raw.labels_given
    valid_size = raw.default_valid_size if valid_size is None else int(valid_size)
    n_meta = meta_per_class * n_classes
    if valid_size < 1 or n_meta + valid_size >= n:
        raise ValueError(f"{name}: valid_size={valid_size} + meta set {n_meta} must leave training "
                         f"images out of {n}")
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    if not given:
        clean = raw.train_y
    elif raw.train_y_clean is not None:
        clean = raw.train_y_clean
    else:
        clean = torch.full_like(raw.train_y, -1)
    if meta_per_class > 0 and given:
        # MW-Net's meta set must be clean: only images whose clean label is known
        known = clean[perm] >= 0
        if not bool(known.any()):
            raise ValueError(f"{name}: meta_per_class={meta_per_class} needs clean labels (MW-Net's "
                             "clean meta set) and this data set has none; set meta_per_class=0 or "
                             "give clean labels (option clean)")
        try:
            pick = _first_per_class(clean[perm][known], n_classes, meta_per_class)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc} among the images with a known clean label") from None
        is_meta = torch.zeros(n, dtype=torch.bool)
        is_meta[known.nonzero().flatten()[pick]] = True
    elif meta_per_class > 0:
        is_meta = _first_per_class(raw.train_y[perm], n_classes, meta_per_class)
    else:
        is_meta = torch.zeros(n, dtype=torch.bool)
    meta_idx, rest = perm[is_meta], perm[~is_meta]
    valid_idx, train_idx = rest[:valid_size], rest[valid_size:]
    if train_size:
        if int(train_size) > len(train_idx):
            raise ValueError(f"{name}: train_size={train_size} exceeds the {len(train_idx)} training images left")
        train_idx = train_idx[: int(train_size)]
    rows = torch.cat([train_idx, valid_idx])
    y_true = clean[rows]
    y_noisy, changed = inject_noise(raw.train_y[rows], n_classes, noise_rate, noise_type, generator=g)
    if given:
        changed = (y_noisy != y_true) & (y_true >= 0)
    nt = len(train_idx)
    mean, std = _channel_stats(raw.train_x)
    if given:
        test_y = raw.test_y_clean if raw.test_y_clean is not None else torch.full_like(raw.test_y, -1)
        test_y_noisy = None if torch.equal(test_y, raw.test_y) else raw.test_y
    else:
        test_y, test_y_noisy = raw.test_y, None
    return ImageSplit(
        name=name, n_classes=n_classes, in_channels=raw.train_x.shape[1],
        image_size=raw.train_x.shape[-1],
        train_x=raw.train_x[train_idx], train_y_noisy=y_noisy[:nt], train_y_true=y_true[:nt],
        noisy_mask=changed[:nt],
        valid_x=raw.train_x[valid_idx], valid_y=y_noisy[nt:], valid_y_clean=y_true[nt:],
        test_x=raw.test_x, test_y=test_y,
        meta_x=raw.train_x[meta_idx], meta_y=clean[meta_idx],
        mean=mean, std=std, augment=raw.augment, noise_rate=float(noise_rate), noise_type=noise_type,
        train_index=train_idx, valid_index=valid_idx, meta_index=meta_idx,
        meta={"source": raw.source, "classes": raw.classes, "seed": int(seed),
              **({"label_stats": label_stats(raw)} if given else {})},
        labels="given" if given else "injected", test_y_noisy=test_y_noisy,
    )


def label_stats(raw: RawImages) -> dict[str, Any]:
    """Classes, images per class (labels as given) and, where clean labels are known, how often
    the given label agrees with the clean one (overall and per given class)."""
    classes = list(raw.classes)
    k = len(classes)
    out: dict[str, Any] = {
        "classes": classes,
        "train_per_class": dict(zip(classes, torch.bincount(raw.train_y, minlength=k).tolist())),
        "test_per_class": dict(zip(classes, torch.bincount(raw.test_y, minlength=k).tolist())),
    }
    for part, given, clean in (("train", raw.train_y, raw.train_y_clean), ("test", raw.test_y, raw.test_y_clean)):
        known = clean >= 0 if clean is not None else torch.zeros_like(given, dtype=torch.bool)
        if not bool(known.any()):
            out[f"{part}_agreement_with_clean"] = None
            continue
        agree = (given[known] == clean[known]).double()
        out[f"{part}_agreement_with_clean"] = float(agree.mean())
        if part == "train":
            per = torch.zeros(k, dtype=torch.float64).index_add_(0, given[known], agree)
            n = torch.bincount(given[known], minlength=k).double()
            out["train_agreement_per_class"] = {c: (float(a / m) if m else None)
                                                for c, a, m in zip(classes, per.tolist(), n.tolist())}
    return out


def split_from_spec(spec: Mapping[str, Any]) -> ImageSplit:
    """The image family's split builder: the raw data set of ``spec`` (cached) and its noisy split.

    Spec keys: ``dataset``, ``data_root``, ``dataset_options``, ``download``, ``verify_checksums``,
    ``cache_dir``, ``data_seed`` (None: ``seed``), ``noise_rate``, ``noise_type``, ``valid_size``,
    ``meta_per_class``, ``train_size``.
    """
    from deca_tune.data.loading import load_dataset

    options = dict(spec.get("dataset_options") or {})
    if spec.get("cache_dir") is not None:
        options.setdefault("cache_dir", str(spec["cache_dir"]))
    raw = load_dataset("image", spec["dataset"], data_root=spec.get("data_root"),
                       download=bool(spec.get("download", True)),
                       verify=bool(spec.get("verify_checksums", True)), **options)
    seed = spec["seed"] if spec.get("data_seed") is None else spec["data_seed"]
    train_size = spec.get("train_size")
    return make_image_split(raw, seed=int(seed), noise_rate=float(spec["noise_rate"]),
                            noise_type=str(spec["noise_type"]), valid_size=spec.get("valid_size"),
                            meta_per_class=int(spec["meta_per_class"]),
                            train_size=int(train_size) if train_size else None)


def build_image_split(name: str, **settings: Any) -> ImageSplit:
    """The (cached) split of image data set ``name`` under the image spec ``settings``
    (``seed``, ``noise_rate``, ``train_size``, ...; the family's defaults otherwise)."""
    from deca_tune.data.loading import load_split

    return load_split("image", {"dataset": name, **settings})
