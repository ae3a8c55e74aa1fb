"""The ResNets that Delphi actually ran (and Garimella et al. measured): plain conv chains.

Delphi's neural-network library has no residual connections (mc2-project/delphi issue #14), so
its "ResNet18" is the stem conv and sixteen 3x3 convs, each followed by batch norm (folded) and a
ReLU, with no shortcut convs, then a 2x2 average pool and the classifier (2048 -> 10 on CIFAR,
8192 -> 200 at 64x64); ResNet-32 is 31 such convs on 16/32/64 channels (1024 -> 10). See the
reference notes, section 2.2b. These exist to compare predictions with those measurements.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn


class DelphiPlainResNet(nn.Module):
    def __init__(self, widths: Sequence[int], blocks: Sequence[int], num_classes: int = 10,
                 input_resolution: int = 32, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn_relu(in_channels, widths[0], 1)]
        channels = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            for index in range(2 * count):  # two convs per basic block, no shortcut
                stride = 2 if stage > 0 and index == 0 else 1
                layers += _conv_bn_relu(channels, width, stride)
                channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2)
        final = input_resolution // 2 ** (len(widths) - 1) // 2
        self.classifier = nn.Linear(channels * final * final, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _conv_bn_relu(inp: int, out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(inp, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]


def delphi_resnet18(num_classes: int = 10, input_resolution: int = 32, **kw) -> DelphiPlainResNet:
    return DelphiPlainResNet((64, 128, 256, 512), (2, 2, 2, 2), num_classes, input_resolution, **kw)


def delphi_resnet32(num_classes: int = 10, input_resolution: int = 32, **kw) -> DelphiPlainResNet:
    return DelphiPlainResNet((16, 32, 64), (5, 5, 5), num_classes, input_resolution, **kw)
