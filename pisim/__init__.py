"""PISim: private-inference latency simulator. `pisim.estimate(...)` prices a model; the CLI is `pisim`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # heavy imports (torch) wait until estimate() is called, so `import pisim` stays light
    import torch.nn as nn

    from cost_models import Estimate


def estimate(model: "nn.Module | str", input_size: Sequence[int], protocol: str = "delphi", network: str = "lan",
             client_profile: str | None = None, server_profile: str | None = None, threads: int = 1) -> "Estimate":
    """Capture `model` (a module, or a zoo/torchvision name) at `input_size` (C, H, W) and price it.

    Returns the same `cost_models.Estimate` that `pisim estimate --protocol` renders. To re-price under
    other settings or ReLU masks without re-tracing, capture once and call `cost_models.price` yourself.
    """
    import cost_models
    from pisim.graph import capture
    from pisim.loading import META, build_named

    setting = cost_models.load_setting(protocol, network, client_profile, server_profile, threads)
    source = model if isinstance(model, str) else type(model).__name__
    module = build_named(model, device=META).model if isinstance(model, str) else model
    return cost_models.price(capture(module, input_size, source=source).graph, setting)
