"""ResNet-32 in its CIFAR form (He et al. 2016, section 4.2): a 3x3 stem with 16 channels, three
stages of 5 basic blocks with 16/32/64 channels (stride 2 entering stages 2 and 3), global
average pooling, a linear classifier. Shortcuts are option A (identity; on a downsampling block
the input is subsampled and zero-padded in channels), the parameter-free variant of the paper.
Any number of input channels; 28x28 and 32x32 (any size >= 8) inputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deca_tune.models.registry import IMAGE_BACKBONES
from deca_tune.models.image.base import ImageBackbone, check_image_size


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.pad = c_out - c_in

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place where autograd allows it (batch norm's backward does not read its output):
        # the same numbers, ~5% less time per step on a CPU (fewer allocations)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu_(out)


class CifarResNet(ImageBackbone):
    """CIFAR ResNet with ``6 n + 2`` layers (``n`` blocks per stage)."""

    def __init__(self, n_classes: int, in_channels: int, image_size: int, blocks_per_stage: int,
                 widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        check_image_size("resnet", image_size)
        super().__init__(widths[-1], n_classes)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c_in = widths[0]
        for stage, width in enumerate(widths):
            for b in range(blocks_per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(c_in, width, stride))
                c_in = width
        self.stages = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))


@IMAGE_BACKBONES.register("resnet32")
def resnet32(n_classes: int, in_channels: int, image_size: int) -> CifarResNet:
    """ResNet-32: 3 stages x 5 basic blocks, 16/32/64 channels (the paper's backbone)."""
    return CifarResNet(n_classes, in_channels, image_size, blocks_per_stage=5)
