"""A 2-layer convolutional network (paper section 3, motivation study): two conv 3x3 + ReLU +
max-pool stages (32 and 64 channels), a 128-unit hidden layer (the embedding), a classifier."""
from __future__ import annotations

import torch
from torch import nn

from deca_tune.models.registry import IMAGE_BACKBONES
from deca_tune.models.image.base import ImageBackbone, check_image_size


class ConvNet(ImageBackbone):
    def __init__(self, n_classes: int, in_channels: int, image_size: int, widths: tuple[int, int] = (32, 64),
                 hidden: int = 128) -> None:
        check_image_size("convnet", image_size)
        super().__init__(hidden, n_classes)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(widths[0], widths[1], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(widths[1] * side * side, hidden), nn.ReLU(inplace=True))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.features(x))


@IMAGE_BACKBONES.register("convnet")
def convnet(n_classes: int, in_channels: int, image_size: int) -> ConvNet:
    return ConvNet(n_classes, in_channels, image_size)
