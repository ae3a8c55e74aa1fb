"""Capture that sees everything: attention taken apart into exact counts, ops without arithmetic free,
and work on parameters and buffers alone reported as the server's precomputation."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.vision_transformer import VisionTransformer
from torchvision.ops import stochastic_depth

import cost_models
from pisim.graph import OpKind, capture


def elements(graph, kind: OpKind) -> int:
    return sum(op.nonlinear_elements for op in graph.of_kind(kind))


def macs(graph, kind: OpKind) -> int:
    return sum(op.macs for op in graph.of_kind(kind))


def attention_macs(graph) -> tuple[int, int]:
    """(MACs of attention's two matrix products, MACs of all attention parts) for the decomposed MHA calls."""
    parts = [op for op in graph.ops if "self_attention" in op.label]
    return sum(op.macs for op in parts if op.kind == OpKind.MATMUL), sum(op.macs for op in parts)


def flop_counter_macs(model: nn.Module, size: tuple[int, ...], train: bool) -> int:
    model.train(train)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *size))
    model.eval()
    return counter.get_total_flops() // 2


def tiny_vit() -> VisionTransformer:
    # 32x32 images in 8x8 patches: 16 patches + the class token = 17 tokens of width 16, 2 heads of depth 8
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                             num_classes=10)


TOKENS, WIDTH, HEADS, DEPTH, MLP, LAYERS = 17, 16, 2, 8, 32, 2
PROJECTIONS = 4 * TOKENS * WIDTH * WIDTH  # q, k, v and out projections
PRODUCTS = 2 * HEADS * TOKENS * TOKENS * DEPTH  # q @ k^T and softmax @ v
TINY_VIT_MACS = (16 * WIDTH * 3 * 8 * 8  # patch embedding: 16 patches, a 3x8x8 kernel per output channel
                 + LAYERS * (PROJECTIONS + PRODUCTS + 2 * TOKENS * WIDTH * MLP)  # + the MLP's two linears
                 + WIDTH * 10)  # classification head on the class token


def test_tiny_vit_counts_are_the_hand_counts():
    graph = capture(tiny_vit(), (3, 32, 32)).graph
    assert not graph.unsupported
    assert graph.total_macs == TINY_VIT_MACS == 137_440
    assert attention_macs(graph) == (LAYERS * PRODUCTS, LAYERS * (PROJECTIONS + PRODUCTS))
    assert elements(graph, OpKind.SOFTMAX) == LAYERS * HEADS * TOKENS * TOKENS
    assert elements(graph, OpKind.GELU) == LAYERS * TOKENS * MLP
    assert elements(graph, OpKind.LAYERNORM) == (2 * LAYERS + 1) * TOKENS * WIDTH  # two per block and a final one
    assert graph.total_params == sum(p.numel() for p in tiny_vit().parameters())


def test_tiny_vit_flop_counter_misses_exactly_the_attention_it_does_not_see():
    model = tiny_vit()
    graph = capture(model, (3, 32, 32)).graph
    products, attention = attention_macs(graph)
    # train mode: attention runs as projections (counted) and a fused SDPA kernel (not counted)
    assert graph.total_macs - flop_counter_macs(model, (3, 32, 32), train=True) == products
    # eval mode without grad: nn.MultiheadAttention's fused fast path hides all of it
    assert graph.total_macs - flop_counter_macs(model, (3, 32, 32), train=False) == attention


def test_vit_b_16_counts_the_published_macs():
    graph = capture(torchvision.models.vit_b_16(), (3, 224, 224)).graph
    assert not graph.unsupported
    assert graph.total_macs == 17_563_828_224
    assert attention_macs(graph)[0] == 12 * 2 * 12 * 197 * 197 * 64 == 715_327_488
    assert elements(graph, OpKind.SOFTMAX) == 12 * 12 * 197 * 197
    assert elements(graph, OpKind.GELU) == 12 * 197 * 3072
    assert elements(graph, OpKind.LAYERNORM) == 25 * 197 * 768


@pytest.mark.slow
def test_vit_b_16_flop_counter_difference_is_what_it_misses():
    model = torchvision.models.vit_b_16()
    graph = capture(model, (3, 224, 224)).graph
    products, attention = attention_macs(graph)
    assert flop_counter_macs(model, (3, 224, 224), train=False) == 11_271_124_992 == graph.total_macs - attention
    assert flop_counter_macs(model, (3, 224, 224), train=True) == graph.total_macs - products


class SelfAttention(nn.Module):
    def __init__(self, masked: bool = False, **kwargs):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True, **kwargs)
        self.mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1) if masked else None

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False, attn_mask=self.mask)[0]


def test_multihead_attention_module_counts():
    graph = capture(SelfAttention(), (5, 8)).graph
    parts = {op.label: op for op in graph.ops if op.label.startswith("attn")}
    assert sorted(parts) == ["attn", "attn.context", "attn.k_proj", "attn.q_proj", "attn.scale", "attn.scores",
                             "attn.softmax", "attn.v_proj"]
    assert parts["attn"].kind == OpKind.LINEAR and parts["attn"].output_shape == (1, 5, 8)  # out_proj
    assert graph.total_macs == 4 * 5 * 8 * 8 + 2 * (2 * 5 * 5 * 4)
    assert parts["attn.softmax"].nonlinear_elements == 2 * 5 * 5
    assert graph.total_params == sum(p.numel() for p in SelfAttention().parameters())
    # data flows input -> projections -> products -> softmax -> out projection -> output
    assert {p.label for p in graph.predecessors("attn")} == {"attn.context"}
    assert {p.kind for p in graph.predecessors(parts["attn.q_proj"].name)} == {OpKind.INPUT}
    assert {p.label for p in graph.predecessors(parts["attn.context"].name)} == {"attn.softmax", "attn.v_proj"}


def test_a_masked_attention_adds_its_mask_to_the_scores():
    graph = capture(SelfAttention(masked=True), (5, 8)).graph
    mask = [op for op in graph.ops if op.label == "attn.mask"]
    assert len(mask) == 1 and mask[0].kind == OpKind.ADD and mask[0].output_shape == (1, 2, 5, 5)


def test_attention_with_key_and_value_widths_of_their_own():
    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, kdim=6, vdim=4, batch_first=True)

        def forward(self, x):
            return self.attn(x, x[..., :6], x[..., :4], need_weights=False)[0]

    graph = capture(Cross(), (5, 8)).graph
    assert graph.total_macs == 5 * 8 * (8 + 6 + 4 + 8) + 2 * (2 * 5 * 5 * 4)


class Sdpa(nn.Module):
    def forward(self, x):  # x: (batch, heads, tokens, depth) used as q, k and v
        return F.scaled_dot_product_attention(x, x, x, is_causal=True)


def test_scaled_dot_product_attention_counts():
    graph = capture(Sdpa(), (2, 6, 4)).graph
    assert graph.total_macs == 2 * (2 * 6 * 6 * 4)
    assert elements(graph, OpKind.SOFTMAX) == 2 * 6 * 6
    assert [op.kind for op in graph.of_kind(OpKind.ADD)] == [OpKind.ADD]  # the causal mask
    assert graph.ops[-2].output_shape == (1, 2, 6, 4)


class NoArithmetic(nn.Module):
    def forward(self, x):
        n, c, h, w = x.size()
        torch._assert(x.dim() == 4, "expects NCHW")
        x = x.view(n, 2, c // 2, h, w)
        x = torch.transpose(x, 1, 2).contiguous().view(n, c, h, w)
        a, b = x.chunk(2, dim=1)
        x = torch.cat([torch.swapaxes(a, 2, 3), b.swapaxes(2, 3)], dim=1)
        x = torch.permute(x, (0, 1, 3, 2))
        return stochastic_depth(F.dropout(x, 0.5, training=False), 0.2, "row", training=False)


def test_ops_without_arithmetic_are_free_not_unsupported():
    graph = capture(NoArithmetic(), (4, 6, 6)).graph
    assert not graph.unsupported
    assert {op.kind for op in graph.ops} == {OpKind.INPUT, OpKind.SHAPE, OpKind.CAT, OpKind.OUTPUT}


def test_a_comparison_of_tensors_is_not_mistaken_for_size_arithmetic():
    class Compare(nn.Module):
        def forward(self, x):
            return x == x + 1

    assert [op.target for op in capture(Compare(), (4,)).graph.unsupported] == ["_operator.eq"]


def test_shufflenet_has_nothing_unsupported():
    graph = capture(torchvision.models.shufflenet_v2_x1_0(), (3, 224, 224)).graph
    assert not graph.unsupported
    assert graph.total_relus == 1_488_032


class BufferMlp(nn.Module):
    """A relative-position style MLP on a constant table, added to the private activations."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.randn(7, 2))
        self.mlp = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return torch.relu(self.fc(x) + torch.sigmoid(self.mlp(self.table)))


def test_work_on_buffers_alone_is_server_precomputation():
    graph = capture(BufferMlp(), (7, 3)).graph
    precomputed = graph.of_kind(OpKind.PRECOMPUTED)
    assert sorted(op.attrs["computes"] for op in precomputed) == ["linear", "linear", "relu", "sigmoid"]
    assert graph.total_relus == 7 * 3  # only the ReLU on the input's path is private
    assert graph.total_macs == 7 * 3 * 3
    assert any("precomputation" in note for note in graph.notes)
    estimate = cost_models.price(graph, cost_models.load_setting("delphi"))
    assert not estimate.unpriced and estimate.relus == 7 * 3


def test_swin_v2_constant_buffer_mlp_is_precomputation_not_private_relus():
    graph = capture(torchvision.models.swin_v2_t(), (3, 256, 256)).graph
    assert not graph.unsupported
    assert graph.total_relus == 0
    relus = [op for op in graph.of_kind(OpKind.PRECOMPUTED) if op.attrs["computes"] == "relu"]
    assert len(relus) == 12 and sum(op.attrs["plaintext"]["relu_elements"] for op in relus) > 1_000_000


@pytest.mark.slow
def test_swin_v2_t_estimates_under_delphi_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "pisim", "estimate", "swin_v2_t", "--protocol", "delphi"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "precomputation" in result.stdout and "Traceback" not in result.stderr


class MoreSpellings(nn.Module):
    """MaxViT's einsum products, ConvNeXt's functional layer norm, MobileNetV3's hardsigmoid gate."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Hardsigmoid()

    def forward(self, x):  # x: (batch, heads, tokens, depth)
        scores = torch.einsum("b h i d, b h j d -> b h i j", x, x)
        return self.gate(F.layer_norm(scores, (4,)))


def test_einsum_layer_norm_and_hardsigmoid_are_counted():
    graph = capture(MoreSpellings(), (2, 4, 3)).graph
    assert not graph.unsupported
    assert graph.total_macs == 2 * 4 * 4 * 3
    assert elements(graph, OpKind.LAYERNORM) == elements(graph, OpKind.HARDSIGMOID) == 2 * 4 * 4


def test_every_torchvision_classifier_family_with_attention_or_gates_captures_fully():
    for name in ("maxvit_t", "convnext_tiny", "mobilenet_v3_small", "swin_t"):
        graph = capture(torchvision.models.get_model(name), (3, 224, 224)).graph
        assert not graph.unsupported, name


def test_transformer_encoder_through_torch_export_counts_its_attention():
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    graph = capture(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), (5, 16)).graph
    assert graph.capture_method == "torch.export"  # fx cannot trace the encoder layer's fast-path checks
    assert not graph.unsupported
    # per layer: q, k, v, out projections; two products of 2 heads of depth 8 over 5 tokens; the MLP's two linears
    assert graph.total_macs == 2 * (4 * 5 * 16 * 16 + 2 * 2 * 5 * 5 * 8 + 2 * 5 * 16 * 32)
    assert elements(graph, OpKind.SOFTMAX) == 2 * 2 * 5 * 5
