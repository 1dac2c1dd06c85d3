"""A 4-layer multi-layer perceptron (paper section 3, motivation study): flattened pixels ->
512 -> 256 -> 128 (ReLU; the 128-unit layer is the embedding) -> classifier."""
from __future__ import annotations

import torch
from torch import nn

from deca_tune.models.registry import IMAGE_BACKBONES
from deca_tune.models.image.base import ImageBackbone


class MLP(ImageBackbone):
    def __init__(self, n_classes: int, in_channels: int, image_size: int,
                 hidden: tuple[int, ...] = (512, 256, 128)) -> None:
        super().__init__(hidden[-1], n_classes)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.body = nn.Sequential(*layers)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@IMAGE_BACKBONES.register("mlp")
def mlp(n_classes: int, in_channels: int, image_size: int) -> MLP:
    """Three hidden layers + the output layer = 4 linear layers."""
    return MLP(n_classes, in_channels, image_size)
