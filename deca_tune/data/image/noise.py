"""Label noise injection for multi-class data (symmetric and pair noise), seeded.

Convention: the noise rate ``r`` is the probability that a label is *actually changed*. Each
label is flipped independently with probability ``r`` (so the realised fraction of changed labels
is ``r`` up to sampling error, sd ``sqrt(r (1 - r) / n)``), and a flipped label becomes

- ``symmetric``: a class drawn uniformly from the ``C - 1`` *other* classes;
- ``pair``: the next class, ``(y + 1) mod C``.

The returned mask (True = label changed) is for analysis only (motivation study, noise-detection
scores); training code must never read it.
"""
from __future__ import annotations

import torch

NOISE_TYPES = ("symmetric", "pair")


def inject_noise(labels: torch.Tensor, n_classes: int, rate: float, kind: str = "symmetric",
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt ``labels`` (int64 ``[n]``); returns ``(noisy_labels, changed_mask)``.

    The same ``generator`` state gives the same labels. ``labels`` is not modified.
    """
    if kind not in NOISE_TYPES:
        raise ValueError(f"unknown noise type {kind!r}; choose one of: {', '.join(NOISE_TYPES)}")
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"noise rate must be in [0, 1), got {rate!r}")
    if n_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got {n_classes}")
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}); got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    n = labels.numel()
    # draw both random streams unconditionally so the mask does not depend on the noise type
    flip = torch.rand(n, generator=generator) < float(rate)
    offset = torch.randint(1, n_classes, (n,), generator=generator)
    if kind == "pair":
        offset = torch.ones_like(offset)
    noisy = torch.where(flip, (labels + offset) % n_classes, labels)
    return noisy, flip
