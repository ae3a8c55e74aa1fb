"""CIFAR-style ResNets (kuangliu layout): 3x3 stride-1 stem, no max-pool.

`alpha` scales every width and `rho` scales the input resolution through the
stem stride (DeepReDuce's reshaping knobs); `num_blocks` sets blocks per stage.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F


def scaled_width(base: int, alpha: float) -> int:
    return max(1, int(base * alpha))


def projection_shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """Identity (an empty Sequential) when shapes match, else a strided 1x1 conv and BN (option B)."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.shortcut = projection_shortcut(in_planes, planes, stride)

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu3 = nn.ReLU(inplace=True)
        self.shortcut = projection_shortcut(in_planes, out_planes, stride)

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(
        self,
        block: type[nn.Module],
        num_blocks: Sequence[int],
        num_classes: int = 10,
        alpha: float = 1.0,
        rho: float = 1.0,
        in_channels: int = 3,
    ):
        super().__init__()
        if not 0 < rho <= 1 or not alpha > 0:
            raise ValueError(f"alpha must be > 0 and rho in (0, 1], got alpha={alpha}, rho={rho}")
        widths = [scaled_width(w, alpha) for w in (64, 128, 256, 512)]
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, int(1 // rho), 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, widths[0], num_blocks[0], 1)
        self.layer2 = self._make_layer(block, widths[1], num_blocks[1], 2)
        self.layer3 = self._make_layer(block, widths[2], num_blocks[2], 2)
        self.layer4 = self._make_layer(block, widths[3], num_blocks[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[3] * block.expansion, num_classes)

    def _make_layer(self, block, planes: int, count: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (count - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.avgpool(out).flatten(1)
        return self.linear(out)


class HeResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): 16/32/64 channels, option-A (zero-padded identity) shortcuts."""

    def __init__(self, depth: int, num_classes: int = 10, alpha: float = 1.0, rho: float = 1.0, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"He ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        widths = [scaled_width(w, alpha) for w in (16, 32, 64)]
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, int(1 // rho), 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(widths[0], n, 1)
        self.layer2 = self._make_layer(widths[1], n, 2)
        self.layer3 = self._make_layer(widths[2], n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[2], num_classes)

    def _make_layer(self, planes: int, count: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (count - 1):
            layers.append(PaddedShortcutBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.avgpool(out).flatten(1))


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: subsample spatially and zero-pad the new channels; no parameters."""

    def __init__(self, stride: int, pad_channels: int):
        super().__init__()
        self.stride = stride
        self.pad_channels = pad_channels

    def forward(self, x):
        half = self.pad_channels // 2
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, half, self.pad_channels - half))


class PaddedShortcutBlock(BasicBlock):
    """BasicBlock whose down-sampling shortcut is option A (ZeroPadShortcut) instead of a 1x1 conv."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__(in_planes, planes, stride)
        if stride != 1 or in_planes != planes:
            self.shortcut = ZeroPadShortcut(stride, planes - in_planes)
