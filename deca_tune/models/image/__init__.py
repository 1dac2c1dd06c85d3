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


#: values of the ``memory_format`` spec key
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def has_convolutions(model: Any) -> bool:
    from torch import nn

    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def apply_memory_format(model: Any, memory_format: str = "auto") -> Any:
    """``model`` with its 4-d weights in channels-last order for ``"channels_last"``, or
    ``"auto"`` when it has convolutions (oneDNN's fast layout on CPU, one thread: ResNet-32
    trains 1.2-1.3x, the ConvNet 1.4x, the small InceptionNet 2x faster; numbers in
    docs/benchmarks-images.md); unchanged for ``"contiguous"`` or a network without convolutions."""
    import torch

    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"unknown memory_format {memory_format!r}; choose one of: {', '.join(MEMORY_FORMATS)}")
    if memory_format == "channels_last" or (memory_format == "auto" and has_convolutions(model)):
        return model.to(memory_format=torch.channels_last)
    return model


def is_channels_last(model: Any) -> bool:
    """Whether ``model``'s convolutions store their weights channels-last (decided on the first
    convolution whose weight differs between the layouts: more than one input channel, a kernel
    wider than 1x1)."""
    import torch
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.weight.shape[1] > 1 and m.weight.shape[2] * m.weight.shape[3] > 1:
            return m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
    return False


def count_flops(model: Any, input_shape: tuple[int, int, int], backward: bool = True) -> float:
    """Floating-point operations (2 per multiply-add) per image of a forward pass (with
    ``backward``: forward + backward of a cross-entropy loss), counted by torch's FlopCounterMode."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, *input_shape)
    was = model.training
    model.train()
    try:
        with FlopCounterMode(display=False) as counter:
            out = model(x)
            if backward:
                F.cross_entropy(out, torch.zeros(2, dtype=torch.long)).backward()
        model.zero_grad(set_to_none=True)
    finally:
        model.train(was)
    return counter.get_total_flops() / 2
