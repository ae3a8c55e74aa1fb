"""Where candidate networks come from: a built-in zoo model (reshapable, serializable) or any module factory."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch.nn as nn

from pisim.errors import UserError
from pisim.zoo import ZOO, zoo_names


class ModelSource(Protocol):
    name: str
    input_size: tuple[int, int, int]
    reshapable: bool  # takes alpha, rho and num_blocks

    def build(self, alpha: float = 1.0, rho: float = 1.0, num_blocks: tuple[int, ...] | None = None) -> nn.Module: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ZooModel:
    """A built-in zoo model: the one kind that takes DeepReDuce's reshaping knobs and crosses process boundaries."""

    name: str
    num_classes: int
    input_size: tuple[int, int, int]

    def __post_init__(self):
        if self.name not in ZOO:
            raise UserError(f"unknown model {self.name!r}; built-in models: {', '.join(zoo_names())}")

    @property
    def reshapable(self) -> bool:
        return ZOO[self.name].reshapable

    def build(self, alpha: float = 1.0, rho: float = 1.0, num_blocks: tuple[int, ...] | None = None) -> nn.Module:
        entry = ZOO[self.name]
        reshape: dict[str, Any] = {"in_channels": self.input_size[0]}
        if (alpha, rho, num_blocks) != (1.0, 1.0, None):
            if not entry.reshapable:
                raise UserError(f"{self.name} cannot be reshaped (alpha, rho, num_blocks)")
            reshape.update(alpha=alpha, rho=rho)
            if num_blocks is not None:
                reshape["num_blocks"] = tuple(num_blocks)
        try:
            return entry.build(num_classes=self.num_classes, **reshape)
        except (ValueError, TypeError, IndexError) as error:
            raise UserError(f"{self.name} rejects alpha={alpha}, rho={rho}, num_blocks={num_blocks}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"zoo": self.name, "num_classes": self.num_classes, "input_size": list(self.input_size)}


@dataclass(frozen=True)
class ModuleFactory:
    """Any model from a zero-argument factory: stages, culling and thinning work; reshaping does not."""

    name: str
    factory: Callable[[], nn.Module]
    input_size: tuple[int, int, int]
    reshapable = False

    def build(self, alpha: float = 1.0, rho: float = 1.0, num_blocks: tuple[int, ...] | None = None) -> nn.Module:
        if (alpha, rho, num_blocks) != (1.0, 1.0, None):
            raise UserError(f"reshaping (alpha, rho, num_blocks) is unsupported for {self.name}: it needs a model "
                            "built with those knobs (the built-in zoo)")
        return self.factory()

    def to_dict(self) -> dict[str, Any]:
        return {"factory": self.name, "input_size": list(self.input_size)}

