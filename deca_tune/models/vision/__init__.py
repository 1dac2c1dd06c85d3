"""Image classifiers by name: ``VISION_BACKBONES`` maps a name to a builder
``builder(n_classes, in_channels, image_size) -> VisionNet``.

A new network is one module with ``@VISION_BACKBONES.register("name")`` plus one import line below.
"""
from __future__ import annotations

from deca_tune.registry import Registry

VISION_BACKBONES: Registry = Registry("vision backbone")

from deca_tune.models.vision.base import VisionNet  # noqa: E402
from deca_tune.models.vision import convnet, inception, mlp, resnet  # noqa: E402,F401  (register)


def build_vision_backbone(name: str, n_classes: int, in_channels: int, image_size: int) -> VisionNet:
    """A freshly initialised ``name`` network (uses the global torch RNG for initialisation)."""
    return VISION_BACKBONES.get(name)(n_classes=n_classes, in_channels=in_channels, image_size=image_size)


__all__ = ["VISION_BACKBONES", "VisionNet", "build_vision_backbone"]
