"""What a masked-out ReLU element computes instead.

identity: the element passes through (SNL, DeepReDuce). poly2: a trainable a x^2 + b x + c per call site
(AutoReP, Delphi's quadratic activations); it is not free: the cost models price it as the protocol prices a
degree-2 polynomial (Beaver-triple multiplication in Delphi) through `poly_elements`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from pisim.errors import UserError

# x^2, x and constant coefficients at the start: the identity, so that dropping a ReLU into poly2 starts where
# the identity replacement does and the curvature is learned. Delphi's ReLU fit 0.1992 + 0.5002 x + 0.1997 x^2
# (mc2-project/delphi python/resnet/resnet32_cifar100.py; papers.md 2.4) was tried first: at ReLUs after a
# residual add it squares un-normalised sums block after block, and cifar-resnet20's activations reach 4e30 by
# layer2 and overflow in layer3 (measured with every gate at 0 on the digits teacher).
INITIAL_COEFFICIENTS = (0.0, 1.0, 0.0)


class Quadratic(nn.Module):
    """a x^2 + b x + c, evaluated as (a x + b) x + c: one secret-by-secret multiplication per element."""

    def __init__(self):
        super().__init__()
        self.coefficients = nn.Parameter(torch.tensor(INITIAL_COEFFICIENTS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.coefficients[0] * x + self.coefficients[1]) * x + self.coefficients[2]


@dataclass(frozen=True)
class Replacement:
    name: str
    build: Callable[[], nn.Module]
    priced_as_poly: bool  # True: the cost models price each replaced element as a degree-2 polynomial


REPLACEMENTS: dict[str, Replacement] = {
    "identity": Replacement("identity", nn.Identity, priced_as_poly=False),
    "poly2": Replacement("poly2", Quadratic, priced_as_poly=True),
}


def replacement(name: str) -> Replacement:
    if name not in REPLACEMENTS:
        raise UserError(f"unknown replacement {name!r}; choose from {', '.join(REPLACEMENTS)}")
    return REPLACEMENTS[name]
