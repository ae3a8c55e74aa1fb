"""Stages, candidates and ReLU-removal rewrites on real zoo models."""
import json

import pytest
import torch
import torch.nn as nn

from optimizer import masks as relu_masks
from optimizer import transforms
from optimizer.candidate import Candidate
from optimizer.models import ModuleFactory, ZooModel
from optimizer.stages import find_stages
from optimizer.rewrite import replace_call_sites
from optimizer.transforms import Variants
from pisim.errors import UserError
from pisim.graph import capture

# DeepReDuce's released CIFAR-100 ResNet18 configurations (papers.md 1.2) and their ReLU counts.
DEEPREDUCE_RELEASED = [
    (Candidate(("S1",)), 229_376),
    (Candidate(("S1",), thinned=True), 114_688),
    (Candidate(("S1",), thinned=True, alpha=0.5), 57_344),
    (Candidate(("S1", "S4"), thinned=True, alpha=0.5), 49_152),
    (Candidate(("S1",), thinned=True, rho=0.5), 28_672),
    (Candidate(("S1", "S4"), thinned=True, alpha=0.5, rho=0.5), 12_288),
    (Candidate(("S1",), thinned=True, alpha=0.5, rho=0.5, num_blocks=(2, 1, 1, 1)), 7_168),
]


@pytest.fixture(scope="module")
def resnet18():
    return Variants(ZooModel("cifar-resnet18", 100, (3, 32, 32)))


def test_resnet18_stages_are_deepreduce_stages(resnet18):
    stages = resnet18.of(Candidate()).stages
    assert [(s.name, s.feature_map, s.relus) for s in stages] == [
        ("S1", (64, 32, 32), 65_536 + 262_144), ("S2", (128, 16, 16), 131_072),
        ("S3", (256, 8, 8), 65_536), ("S4", (512, 4, 4), 32_768)]
    assert "relu" in stages[0].relu_sites  # the stem ReLU belongs to S1
    assert all(len(s.post_add_sites) == 2 for s in stages)  # one per residual block


@pytest.mark.parametrize("candidate, relus", DEEPREDUCE_RELEASED, ids=lambda x: getattr(x, "id", str(x)))
def test_released_deepreduce_configs_have_their_relu_counts(resnet18, candidate, relus):
    assert resnet18.of(candidate).relus(candidate) == relus


def test_rewritten_model_keeps_exactly_the_priced_relus():
    source = ZooModel("cifar-resnet20", 10, (3, 16, 16))
    candidate = Candidate(("S1",), thinned=True, alpha=0.5)
    variants = Variants(source)
    model, variant = variants.build(candidate), variants.of(candidate)
    recaptured = capture(model, source.input_size)
    assert recaptured.graph.total_relus == variant.relus(candidate) == 3 * 16 * 8 * 8 + 3 * 32 * 4 * 4  # S2, S3 thinned to 3 ReLUs each
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_thinning_without_residual_adds_drops_every_second_relu():
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 2))
    variants = Variants(ModuleFactory("plain", lambda: plain, (3, 8, 8)))
    assert variants.of(Candidate(thinned=True)).relus(Candidate(thinned=True)) == 8 * 64 + 8 * 16


def test_per_layer_culling_removes_single_call_sites(resnet18):
    candidate = Candidate(culled_layers=("relu", "layer4_1_relu2"))
    assert resnet18.of(candidate).relus(candidate) == 557_056 - 65_536 - 8_192
    with pytest.raises(UserError, match="no ReLU call site"):
        resnet18.of(Candidate(culled_layers=("conv1",))).relus(Candidate(culled_layers=("conv1",)))


def test_candidate_config_round_trips_through_json():
    candidate = DEEPREDUCE_RELEASED[-1][0]
    assert Candidate.from_dict(json.loads(json.dumps(candidate.to_dict()))) == candidate
    assert candidate.id == "cull-S1_thin_a0.5_r0.5_b2111"


def test_model_without_stages_is_a_clear_error():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(UserError, match="no stage structure"):
        find_stages(capture(mlp, (3, 2, 2)).graph)
    one_shape = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    with pytest.raises(UserError, match="no down-sampling points"):
        find_stages(capture(one_shape, (3, 8, 8)).graph)


def test_reshaping_a_model_without_the_knobs_is_unsupported():
    source = ModuleFactory("custom", lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 8, 8))
    with pytest.raises(UserError, match="unsupported"):
        source.build(alpha=0.5)


def test_call_site_rewrite_leaves_the_input_module_untouched():
    captured = capture(ZooModel("cifar-resnet20", 10, (3, 16, 16)).build(), (3, 16, 16))
    rewritten, inserted = replace_call_sites(captured.module, [captured.graph.op("relu")], lambda op: None, "")
    assert "relu" in {n.name for n in captured.module.graph.nodes}
    assert "relu" not in {n.name for n in rewritten.graph.nodes} and inserted == {}


def test_stages_of_a_torchvision_resnet_with_a_shared_relu_module():
    """torchvision's BasicBlock calls one nn.ReLU twice: each call site is its own ReLU, thinned separately."""
    import torchvision

    source = ModuleFactory("resnet18", lambda: torchvision.models.resnet18(num_classes=10), (3, 64, 64))
    variant = Variants(source).of(Candidate())
    assert [(s.feature_map, len(s.relu_sites), len(s.post_add_sites)) for s in variant.stages] == [
        ((64, 32, 32), 1, 0), ((64, 16, 16), 4, 2), ((128, 8, 8), 4, 2), ((256, 4, 4), 4, 2), ((512, 2, 2), 4, 2)]
    candidate = Candidate(("S1", "S2"), thinned=True)
    assert variant.relus(candidate) == (32_768 + 16_384 + 8_192) // 2
    model = Variants(source).build(candidate)
    assert capture(model, (3, 64, 64)).graph.total_relus == variant.relus(candidate)


def test_candidates_are_built_from_the_cached_capture_with_the_seeded_initialisation(monkeypatch):
    captures = []
    real = transforms.capture
    monkeypatch.setattr(transforms, "capture", lambda *args, **kwargs: captures.append(args) or real(*args, **kwargs))
    source = ZooModel("cifar-resnet20", 10, (3, 8, 8))
    torch.manual_seed(0)
    expected = source.build().state_dict()
    variants = Variants(source)
    torch.manual_seed(0)
    built = variants.build(Candidate(("S1",)))  # the shape's first capture happens here, after the seeded draws
    assert built.state_dict().keys() == expected.keys()
    assert all(torch.equal(built.state_dict()[k], v) for k, v in expected.items())
    graph = variants.of(Candidate()).captured.graph
    masked = Candidate(relu_masks=((graph.relu_ops[2].name, relu_masks.encode(
        torch.rand(relu_masks.site_shape(graph.relu_ops[2])) > 0.5)),), replacement="poly2")
    for candidate in (Candidate(), Candidate(thinned=True), Candidate(culled_layers=("relu",)), masked):
        variants.build(candidate)
        variants.build(candidate, initialise=False)
    assert len(captures) == 1
    variants.build(Candidate(alpha=0.5))
    variants.build(Candidate(("S2",), alpha=0.5))
    assert len(captures) == 2  # one per distinct shape
