"""Names of the built-in zoo, and how each is built."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch.nn as nn


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    build: Callable[..., "nn.Module"]
    default_input: tuple[int, int, int] = (3, 32, 32)
    reshapable: bool = True  # takes alpha (width) and rho (resolution) keyword arguments


# The builders import the torch modules when called, so listing the zoo (`pisim models`, the optimizer's
# --model choices) does not import torch.
def _cifar(block: str, blocks):
    def build(num_classes=10, **kw):
        from pisim.zoo import cifar_resnet

        return cifar_resnet.CifarResNet(getattr(cifar_resnet, block), kw.pop("num_blocks", blocks), num_classes, **kw)
    return build


def _he(depth):
    def build(num_classes=10, **kw):
        from pisim.zoo.cifar_resnet import HeResNet

        return HeResNet(depth, num_classes, **kw)
    return build


def _delphi(network: str, default_classes: int = 10, input_resolution: int = 32):
    def build(num_classes=default_classes, **kw):
        from pisim.zoo import delphi_resnet

        return getattr(delphi_resnet, network)(num_classes, input_resolution, **kw)
    return build


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("cifar-resnet18", "CIFAR ResNet18 (BasicBlock [2,2,2,2], 3x3 stride-1 stem, no max-pool)", _cifar("BasicBlock", (2, 2, 2, 2))),
        ZooEntry("cifar-resnet34", "CIFAR ResNet34 (BasicBlock [3,4,6,3], 3x3 stride-1 stem, no max-pool)", _cifar("BasicBlock", (3, 4, 6, 3))),
        ZooEntry("cifar-resnet50", "CIFAR ResNet50 (Bottleneck [3,4,6,3], 3x3 stride-1 stem, no max-pool)", _cifar("Bottleneck", (3, 4, 6, 3))),
        ZooEntry("cifar-resnet20", "He et al. CIFAR ResNet-20 (16/32/64 channels, option-A shortcuts)", _he(20)),
        ZooEntry("cifar-resnet32", "He et al. CIFAR ResNet-32 (16/32/64 channels, option-A shortcuts)", _he(32)),
        ZooEntry("cifar-resnet56", "He et al. CIFAR ResNet-56 (16/32/64 channels, option-A shortcuts)", _he(56)),
        ZooEntry("delphi-resnet18", "ResNet18 as Delphi ran it on CIFAR: 17 plain convs, no shortcuts, 2x2 avg-pool, FC 2048->10",
                 _delphi("delphi_resnet18"), reshapable=False),
        ZooEntry("delphi-resnet18-tiny", "ResNet18 as Delphi ran it on TinyImageNet 64x64: FC 8192->200",
                 _delphi("delphi_resnet18", 200, 64), (3, 64, 64), reshapable=False),
        ZooEntry("delphi-resnet32", "ResNet-32 as Delphi ran it on CIFAR: 31 plain convs on 16/32/64 channels, FC 1024->10",
                 _delphi("delphi_resnet32"), reshapable=False),
    ]
}


def zoo_names() -> list[str]:
    return sorted(ZOO)


def build_zoo_model(name: str, num_classes: int = 10, **reshape) -> "nn.Module":
    """Build a zoo model; `reshape` takes alpha, rho, num_blocks, in_channels."""
    return ZOO[name].build(num_classes=num_classes, **reshape)
