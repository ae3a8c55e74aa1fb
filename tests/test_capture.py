"""Capture: exact counts on real models, every ReLU spelling, per-call-site counting, graph edges."""
from __future__ import annotations

import networkx as nx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from pisim.graph import CaptureError, OpKind, capture
from pisim.zoo import build_zoo_model


def relus_under(graph, prefix: str) -> int:
    return sum(op.relu_elements for op in graph.relu_ops if op.label.startswith(prefix))


def test_cifar_resnet18_relus_exact_per_stage():
    graph = capture(build_zoo_model("cifar-resnet18"), (3, 32, 32)).graph
    assert graph.total_relus == 557_056
    assert graph.op("relu").relu_elements == 65_536  # stem
    assert [relus_under(graph, f"layer{s}.") for s in (1, 2, 3, 4)] == [262_144, 131_072, 65_536, 32_768]
    assert graph.capture_method == "torch.fx"


def test_cifar_resnet34_relus_exact():
    assert capture(build_zoo_model("cifar-resnet34"), (3, 32, 32)).graph.total_relus == 966_656


def test_he_resnet32_relus_exact_over_31_layers():
    graph = capture(build_zoo_model("cifar-resnet32"), (3, 32, 32)).graph
    assert graph.total_relus == 303_104
    assert len(graph.relu_ops) == 31


class EveryReluSpelling(nn.Module):
    """One shared nn.ReLU called twice plus every functional and method spelling, and ReLU6."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.shared = nn.ReLU()
        self.relu6 = nn.ReLU6(inplace=True)

    def forward(self, x):
        x = self.shared(self.conv(x))      # 4*8*8 = 256
        x = self.shared(x + 1)             # shared module, second call: 256 more
        x = F.relu(x)
        x = torch.relu(x)
        x = x.relu()
        x = F.relu(x, inplace=True)
        x = x.relu_()
        x = F.relu6(x)
        return self.relu6(x)


def test_every_relu_spelling_counts_per_call_site():
    graph = capture(EveryReluSpelling(), (3, 8, 8)).graph
    relus = graph.relu_ops
    assert len(relus) == 9
    assert graph.total_relus == 9 * 256
    assert [op.label for op in relus][:2] == ["shared", "shared#2"]
    assert sum(op.attrs["clamp"] == 6.0 for op in relus) == 2


class Hardtanhs(nn.Module):
    """hardtanh(0, m) is a ReLU clamped at m; any other range is not a ReLU and must not be priced as one."""

    def __init__(self):
        super().__init__()
        self.clamp2 = nn.Hardtanh(0.0, 2.0)
        self.symmetric = nn.Hardtanh()

    def forward(self, x):
        return F.hardtanh(self.symmetric(self.clamp2(x)), 0.0, 3.0)


@pytest.mark.parametrize("exported", [False, True], ids=["fx", "export"])
def test_hardtanh_is_a_relu_only_from_zero_whichever_way_it_is_captured(exported):
    model = Hardtanhs().eval()
    if exported:
        model = torch.export.export(model, (torch.zeros(1, 2, 4, 4),))
    ops = capture(model, (2, 4, 4)).graph.ops[1:-1]
    assert [(op.kind, op.attrs) for op in ops] == [
        (OpKind.RELU, {"clamp": 2.0}),
        (OpKind.UNSUPPORTED, {"reason": "hardtanh(-1.0, 1.0)"}),
        (OpKind.RELU, {"clamp": 3.0})]


class OtherNonlinearities(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return torch.sigmoid(F.silu(F.gelu(self.pool(x))))


def test_other_nonlinearities_are_their_own_kinds():
    graph = capture(OtherNonlinearities(), (2, 4, 4)).graph
    kinds = [op.kind for op in graph.ops[1:-1]]
    assert kinds == [OpKind.MAXPOOL, OpKind.GELU, OpKind.SILU, OpKind.SIGMOID]
    assert graph.total_relus == 0
    pool = graph.of_kind(OpKind.MAXPOOL)[0]
    assert pool.comparisons == 2 * 2 * 2 * (4 - 1)  # 8 outputs, 3 comparisons each
    assert graph.of_kind(OpKind.GELU)[0].nonlinear_elements == 8


def test_conv_and_linear_macs_and_params_hand_computed():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    graph = capture(model, (3, 8, 8)).graph
    conv, linear = graph.of_kind(OpKind.CONV2D)[0], graph.of_kind(OpKind.LINEAR)[0]
    assert conv.output_shape == (1, 8, 4, 4)
    assert conv.macs == 8 * 4 * 4 * 3 * 3 * 3
    assert conv.params == 8 * 3 * 9 + 8
    assert conv.attrs["stride"] == (2, 2) and conv.attrs["kernel_size"] == (3, 3)
    assert linear.macs == 128 * 5 and linear.params == 128 * 5 + 5


def test_residual_adds_and_concatenations_are_edges():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 2, 1)
            self.b = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            y = self.a(x)
            return torch.cat([y + x, self.b(y)], dim=1)

    graph = capture(Branchy(), (2, 4, 4)).graph
    add = graph.of_kind(OpKind.ADD)[0]
    cat = graph.of_kind(OpKind.CAT)[0]
    assert {p.name for p in graph.predecessors(add.name)} == {"x", "a"}
    assert {p.name for p in graph.predecessors(cat.name)} == {add.name, "b"}
    assert cat.output_shape == (1, 4, 4, 4)
    assert nx.is_directed_acyclic_graph(graph.digraph)


class ShapeDependentFlow(nn.Module):
    """fx cannot trace Python control flow on a shape; torch.export specialises it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        if x.shape[-1] > 4:
            x = F.max_pool2d(x, 2)
        return F.relu(x)


def test_untraceable_model_falls_back_to_export_and_says_so():
    graph = capture(ShapeDependentFlow(), (3, 8, 8)).graph
    assert graph.capture_method == "torch.export"
    assert any("torch.export" in note for note in graph.notes)
    assert graph.total_relus == 4 * 4 * 4
    assert graph.of_kind(OpKind.MAXPOOL)[0].comparisons == 64 * 3
    assert graph.of_kind(OpKind.CONV2D)[0].label == "conv"


def test_unknown_ops_are_listed_not_dropped():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cumsum(F.relu(x), dim=1)

    graph = capture(Odd(), (4,)).graph
    assert [op.kind for op in graph.unsupported] == [OpKind.UNSUPPORTED]
    assert "cumsum" in graph.unsupported[0].target


def test_rejected_input_size_is_a_capture_error():
    with pytest.raises(CaptureError, match="rejects input size 1x32x32"):
        capture(build_zoo_model("cifar-resnet18"), (1, 32, 32))


def test_torchvision_resnet50_captures_on_fake_tensors():
    graph = capture(torchvision.models.resnet50(), (3, 224, 224)).graph
    assert graph.total_macs == 4_089_184_256
    assert graph.of_kind(OpKind.MAXPOOL)[0].comparisons == 64 * 56 * 56 * 8
