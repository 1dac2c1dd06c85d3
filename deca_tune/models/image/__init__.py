"""Image classifiers (``IMAGE_BACKBONES`` in :mod:`deca_tune.models.registry`): each maps a
name to ``builder(n_classes, in_channels, image_size) -> ImageBackbone``."""
from __future__ import annotations

from typing import Any

from deca_tune.models.registry import IMAGE_BACKBONES


def build_image_backbone(name: str, n_classes: int, in_channels: int, image_size: int) -> Any:
    """A freshly initialised ``name`` network (uses the global torch RNG for initialisation)."""
    return IMAGE_BACKBONES.get(name)(n_classes=n_classes, in_channels=in_channels, image_size=image_size)


def build_backbone(name: str, split: Any, **kwargs: Any) -> Any:
    """``name`` sized for ``split`` (classes, channels, image size): the task's backbone builder."""
    return IMAGE_BACKBONES.get(name)(n_classes=split.n_classes, in_channels=split.in_channels,
                                     image_size=split.image_size, **kwargs)
