"""A small InceptionNet (paper section 3, motivation study; Szegedy et al.): a conv stem and
three Inception modules (parallel 1x1, 1x1->3x3, 1x1->double 3x3 and pool->1x1 branches,
concatenated), with a max-pool after the first two, global average pooling, a classifier."""
from __future__ import annotations

import torch
from torch import nn

from deca_tune.models.registry import IMAGE_BACKBONES
from deca_tune.models.image.base import ImageBackbone, check_image_size


def conv_bn(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class InceptionModule(nn.Module):
    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> None:
        super().__init__()
        self.b1 = conv_bn(c_in, c1, 1)
        self.b3 = nn.Sequential(conv_bn(c_in, c3r, 1), conv_bn(c3r, c3, 3))
        self.b5 = nn.Sequential(conv_bn(c_in, c5r, 1), conv_bn(c5r, c5, 3), conv_bn(c5, c5, 3))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn(c_in, cp, 1))
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class SmallInception(ImageBackbone):
    def __init__(self, n_classes: int, in_channels: int, image_size: int) -> None:
        check_image_size("inception", image_size)
        m1 = InceptionModule(32, 16, 16, 24, 8, 8, 8)           # -> 56
        m2 = InceptionModule(m1.out_channels, 24, 24, 32, 8, 16, 16)  # -> 88
        m3 = InceptionModule(m2.out_channels, 32, 32, 48, 12, 24, 24)  # -> 128
        super().__init__(m3.out_channels, n_classes)
        self.body = nn.Sequential(conv_bn(in_channels, 32, 3), m1, nn.MaxPool2d(2), m2, nn.MaxPool2d(2), m3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


@IMAGE_BACKBONES.register("inception")
def inception(n_classes: int, in_channels: int, image_size: int) -> SmallInception:
    return SmallInception(n_classes, in_channels, image_size)
