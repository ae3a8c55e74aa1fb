"""Data, distillation and the training job on real (small) data."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from optimizer.candidate import Candidate
from optimizer.data import DataSpec, load_splits, num_classes
from optimizer.distill import Distillation
from optimizer.models import ZooModel
from optimizer import transforms
from optimizer.training import Hooks, Loop, Schedule, Step, TrainJob, fit, train
from pisim.errors import UserError


def test_bundled_digits_are_offline_balanced_and_fixed():
    splits = load_splits(DataSpec("digits", None, (3, 16, 16)))
    images, labels = splits.train.tensors
    assert images.shape == (1347, 3, 16, 16) and len(splits.test) == 450 and splits.num_classes == 10
    assert torch.equal(images[:, 0], images[:, 2])  # one grey channel tiled to three
    assert labels.bincount().min() >= 125
    again = load_splits(DataSpec("digits", None, (3, 16, 16)))
    assert torch.equal(again.test.tensors[0], splits.test.tensors[0])


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "tinyimagenet"])
def test_missing_data_names_data_dir_and_never_downloads(name, tmp_path):
    with pytest.raises(UserError, match="--data-dir"):
        load_splits(DataSpec(name, None, (3, 32, 32)))
    with pytest.raises(UserError, match="--data-dir"):
        load_splits(DataSpec(name, str(tmp_path), (3, 32, 32)))
    assert list(tmp_path.iterdir()) == []


def _png(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), colour).save(path)


def test_image_folder_and_tinyimagenet_layouts(tmp_path):
    for split in ("train", "val"):
        _png(tmp_path / "folder" / split / "cat" / "1.png", (200, 10, 10))
        _png(tmp_path / "folder" / split / "dog" / "1.png", (10, 10, 200))
    splits = load_splits(DataSpec("imagefolder", str(tmp_path / "folder"), (3, 16, 16)))
    assert splits.num_classes == 2 and splits.test[1][0].shape == (3, 16, 16) and splits.test[1][1] == 1

    tiny = tmp_path / "tiny"
    _png(tiny / "train" / "n01" / "images" / "a.JPEG", (1, 2, 3))
    _png(tiny / "train" / "n02" / "images" / "b.JPEG", (3, 2, 1))
    _png(tiny / "val" / "images" / "val_0.JPEG", (3, 2, 1))
    (tiny / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t10\t10\n")
    splits = load_splits(DataSpec("tinyimagenet", str(tiny), (3, 8, 8)))
    assert len(splits.test) == 1 and splits.test[0][1] == 1 and splits.test[0][0].shape == (3, 8, 8)


def test_hinton_loss_mixes_label_and_teacher_terms():
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    labels = torch.randint(0, 10, (8,))
    assert torch.allclose(Distillation(4.0, 0.0).loss(student, teacher, labels), F.cross_entropy(student, labels))
    assert torch.allclose(Distillation(4.0, 0.5).loss(student, student, labels),
                          0.5 * F.cross_entropy(student, labels), atol=1e-6)
    # all teacher: T^2 times the batch-mean KL divergence of the softened distributions, summed by hand
    p, q = F.softmax(teacher / 4.0, dim=1), F.softmax(student / 4.0, dim=1)
    kl = (p * (p.log() - q.log())).sum(dim=1).mean()
    assert torch.allclose(Distillation(4.0, 1.0).loss(student, teacher, labels), 16 * kl, atol=1e-6)
    assert kl > 1e-3  # the logits differ, so the check above is not 0 == 0


def test_training_is_seeded_checkpointed_and_cached(tmp_path):
    torch.set_num_threads(1)
    source = ZooModel("cifar-resnet20", 10, (3, 8, 8))
    job = TrainJob("cull-S1", source, DataSpec("digits", None, (3, 8, 8)), Candidate(("S1",)),
                   Schedule(epochs=2, batch_size=128), seed=3)
    first = train(job, tmp_path / "a", progress=False)
    second = train(job, tmp_path / "b", progress=False)
    assert first.curve == second.curve and len(first.curve) == 2 and first.accuracy > 0.3
    assert not (tmp_path / "a" / "checkpoint.pt").exists()  # a finished job keeps its weights, not its checkpoint
    cached = train(job, tmp_path / "a", progress=False)
    assert cached.cached and cached.curve == first.curve
    distilled = TrainJob("kd", source, job.data, job.candidate, job.schedule, 3, Distillation(), first.weights)
    assert distilled.key() != job.key()


def test_a_distilled_job_traces_nothing_once_its_variant_is_captured(tmp_path, monkeypatch):
    source = ZooModel("cifar-resnet20", 10, (3, 8, 8))
    data = DataSpec("digits", None, (3, 8, 8))
    teacher = train(TrainJob("teacher", source, data, Candidate(), Schedule(epochs=1, batch_size=256), 0),
                    tmp_path / "teacher", progress=False)
    captures = []
    real = transforms.capture
    monkeypatch.setattr(transforms, "capture", lambda *args, **kwargs: captures.append(args) or real(*args, **kwargs))
    job = TrainJob("kd", source, data, Candidate(("S1",)), Schedule(epochs=1, batch_size=256), 0, Distillation(),
                   teacher.weights)
    assert train(job, tmp_path / "kd", progress=False).accuracy > 0
    assert captures == []  # student and teacher are rewritten from this process's capture of the shape


def _tiny_loop(splits, hooks: Hooks, epochs: int = 3) -> Loop:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    return Loop("tiny", model, torch.optim.SGD(model.parameters(), lr=0.1), splits, epochs, batch_size=256, seed=0,
                hooks=hooks)


class _StopAt(Hooks):
    """Records the steps it sees (in the checkpoint, as the gate search keeps its history) and stops at one."""

    def __init__(self, stop_at: int | None):
        self.stop_at, self.seen = stop_at, []

    def after_step(self, step: Step) -> bool:
        self.seen.append(step.total)
        return step.total == self.stop_at

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_a_stop_hook_ends_training_at_its_step_and_a_resume_continues_the_hooks_state(tmp_path):
    splits = load_splits(DataSpec("digits", None, (3, 8, 8)))
    per_epoch = -(-len(splits.train) // 256)  # 6 steps of 256 images
    checkpoint = tmp_path / "checkpoint.pt"
    stopping = _StopAt(per_epoch + 2)  # the second step of the second epoch
    fitted = fit(_tiny_loop(splits, stopping), checkpoint, torch.device("cpu"), progress=False)
    assert fitted.stopped and fitted.steps == per_epoch + 2 and fitted.epochs == 1 + 2 / per_epoch
    assert stopping.seen == list(range(1, per_epoch + 3))
    assert [p["epoch"] for p in fitted.curve] == [1]  # the stopped epoch is neither evaluated nor checkpointed
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] == 1 and saved["hooks"]["seen"] == list(range(1, per_epoch + 1))

    resumed = _StopAt(None)
    finished = fit(_tiny_loop(splits, resumed), checkpoint, torch.device("cpu"), progress=False)
    assert not finished.stopped and finished.steps == 3 * per_epoch
    assert resumed.seen == list(range(1, 3 * per_epoch + 1))  # the checkpoint's steps, then the resumed ones
    uninterrupted = fit(_tiny_loop(splits, Hooks()), tmp_path / "whole.pt", torch.device("cpu"), progress=False)
    assert finished.curve == uninterrupted.curve


class _ShrinkWeights(Hooks):
    def __init__(self, parameter: torch.Tensor, weight: float):
        self.parameter, self.weight = parameter, weight

    def extra_loss(self) -> torch.Tensor:
        return self.weight * self.parameter.abs().sum()


def test_an_extra_loss_hook_is_trained_on(tmp_path):
    splits = load_splits(DataSpec("digits", None, (3, 8, 8)))
    plain = _tiny_loop(splits, Hooks(), epochs=1)
    fit(plain, tmp_path / "plain.pt", torch.device("cpu"), progress=False)
    penalised = _tiny_loop(splits, Hooks(), epochs=1)
    penalised.hooks = _ShrinkWeights(penalised.model[1].weight, 0.05)
    fit(penalised, tmp_path / "penalised.pt", torch.device("cpu"), progress=False)
    assert penalised.model[1].weight.abs().sum() < 0.5 * plain.model[1].weight.abs().sum()


def test_class_counts_are_read_without_loading_the_data(tmp_path):
    (tmp_path / "folder" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "folder" / "train" / "dog").mkdir()
    (tmp_path / "cifar" / "cifar-10-batches-py").mkdir(parents=True)
    # Neither holds a single image: loading them would fail, counting their classes does not.
    assert num_classes(DataSpec("imagefolder", str(tmp_path / "folder"), (3, 16, 16))) == 2
    assert num_classes(DataSpec("cifar10", str(tmp_path / "cifar"), (3, 32, 32))) == 10
    digits = DataSpec("digits", None, (3, 8, 8))
    assert num_classes(digits) == load_splits(digits).num_classes
    with pytest.raises(UserError, match="--data-dir"):
        num_classes(DataSpec("cifar100", str(tmp_path / "cifar"), (3, 32, 32)))
