"""Capture of a ReLU applied to a fixed subset of elements (gather, ReLU, scatter back): the call site counts
exactly the gathered elements, through torch.fx and through a torch.export archive, with no unsupported ops."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from pisim.graph import OpKind, capture


class GatheredReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.register_buffer("kept", torch.tensor([0, 5, 17, 63, 200, 255]))

    def forward(self, x):
        features = self.conv(x)
        flat = features.flatten(1)
        return flat.index_copy(1, self.kept, F.relu(flat.index_select(1, self.kept))).view_as(features)


def _exported(model: nn.Module) -> torch.export.ExportedProgram:
    buffer = io.BytesIO()
    torch.export.save(torch.export.export(model.eval(), (torch.zeros(1, 3, 8, 8),)), buffer)
    buffer.seek(0)
    return torch.export.load(buffer)


@pytest.mark.parametrize("form", ["module", "export"])
def test_relu_on_gathered_elements_counts_only_those(form):
    model = GatheredReLU()
    graph = capture(model if form == "module" else _exported(model), (3, 8, 8)).graph
    assert graph.total_relus == 6
    assert [op.kind for op in graph.relu_ops] == [OpKind.RELU]
    assert list(graph.unsupported) == []
