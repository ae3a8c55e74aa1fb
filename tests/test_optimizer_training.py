"""Data, distillation and the training job on real (small) data."""
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from optimizer.candidate import Candidate
from optimizer.data import DataSpec, load_splits
from optimizer.distill import Distillation
from optimizer.models import ZooModel
from optimizer.training import Schedule, TrainJob, train
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
