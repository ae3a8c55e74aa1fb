"""A candidate network: a small serializable config that, applied to the baseline, says which ReLUs remain
and how the network is reshaped."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from pisim.errors import UserError


@dataclass(frozen=True)
class Candidate:
    culled_stages: tuple[str, ...] = ()  # every ReLU of these stages becomes identity
    thinned: bool = False  # thin every stage that is not culled (see stages.thinned_sites)
    culled_layers: tuple[str, ...] = ()  # single ReLU call sites (OpGraph keys) that become identity
    alpha: float = 1.0  # width multiplier (built-in zoo models only)
    rho: float = 1.0  # resolution multiplier through the stem stride (built-in zoo models only)
    num_blocks: tuple[int, ...] | None = None  # residual blocks per stage; None keeps the model's own
    relu_masks: tuple[tuple[str, str], ...] = ()  # (call site, kept elements as packed bits): optimizer.masks
    replacement: str = "identity"  # what a masked-out element computes: identity or poly2 (optimizer.replacements)
    tags: tuple[str, ...] = field(default=(), compare=False)  # why the search made it (not part of identity)

    @property
    def shape_key(self) -> tuple[float, float, tuple[int, ...] | None]:
        return (self.alpha, self.rho, self.num_blocks)

    @property
    def id(self) -> str:
        parts = [f"cull-{'+'.join(self.culled_stages) or 'none'}"]
        if self.thinned:
            parts.append("thin")
        if self.alpha != 1.0:
            parts.append(f"a{self.alpha:g}")
        if self.rho != 1.0:
            parts.append(f"r{self.rho:g}")
        if self.num_blocks is not None:
            parts.append("b" + "".join(map(str, self.num_blocks)))
        if self.culled_layers:
            digest = hashlib.sha1(",".join(sorted(self.culled_layers)).encode()).hexdigest()[:8]
            parts.append(f"L{len(self.culled_layers)}-{digest}")
        if self.relu_masks:
            digest = hashlib.sha1(repr(sorted(self.relu_masks)).encode()).hexdigest()[:8]
            parts.append(f"M{len(self.relu_masks)}-{digest}")
        if self.replacement != "identity":
            parts.append(self.replacement)
        return "_".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["num_blocks"] = list(self.num_blocks) if self.num_blocks is not None else None
        data["culled_stages"], data["culled_layers"], data["tags"] = (
            list(self.culled_stages), list(self.culled_layers), list(self.tags))
        data["relu_masks"] = {site: bits for site, bits in self.relu_masks}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Candidate":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"unknown candidate field(s) {', '.join(sorted(unknown))}")
        blocks = data.get("num_blocks")
        return cls(culled_stages=tuple(data.get("culled_stages", ())), thinned=bool(data.get("thinned", False)),
                   culled_layers=tuple(data.get("culled_layers", ())), alpha=float(data.get("alpha", 1.0)),
                   rho=float(data.get("rho", 1.0)), num_blocks=tuple(int(b) for b in blocks) if blocks else None,
                   relu_masks=tuple(sorted(dict(data.get("relu_masks", {})).items())),
                   replacement=str(data.get("replacement", "identity")), tags=tuple(data.get("tags", ())))
