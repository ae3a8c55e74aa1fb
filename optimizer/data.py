"""Datasets for training candidates: a bundled offline default, torchvision CIFAR, and any ImageFolder tree.

Nothing here downloads: missing data is a UserError naming --data-dir.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from pisim.errors import UserError

# The bundled digits sit at a random offset inside a larger canvas (fixed once, seed below): without
# translation, a linear classifier on 8x8 digits is already at ~96%, and removing ReLUs would cost nothing.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25
DIGITS_GLYPH_FRACTION = 0.625  # glyph side / canvas side: 10 px of a 16 px canvas
DIGITS_CLASSES = 10  # scikit-learn's load_digits: the digits 0 to 9


DEFAULT_INPUT_SIZE: dict[str, tuple[int, int, int]] = {
    "digits": (3, 16, 16), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32),
    "imagefolder": (3, 64, 64), "tinyimagenet": (3, 64, 64),
}


@dataclass(frozen=True)
class DataSpec:
    name: str = "digits"  # digits | cifar10 | cifar100 | imagefolder | tinyimagenet
    data_dir: str | None = None
    input_size: tuple[int, int, int] = (3, 16, 16)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "data_dir": self.data_dir, "input_size": list(self.input_size)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSpec":
        return cls(data["name"], data.get("data_dir"), tuple(data["input_size"]))


@dataclass
class Splits:
    train: Dataset
    test: Dataset
    num_classes: int


@dataclass(frozen=True)
class Loader:
    splits: Callable[[DataSpec], Splits]
    classes: Callable[[DataSpec], int]  # the class count, read without loading the data


def _loader(spec: DataSpec) -> Loader:
    if spec.name not in LOADERS:
        raise UserError(f"unknown dataset {spec.name!r}; choose from {', '.join(LOADERS)}")
    return LOADERS[spec.name]


def load_splits(spec: DataSpec) -> Splits:
    return _loader(spec).splits(spec)


def num_classes(spec: DataSpec) -> int:
    """What the model's classifier needs, before any data is loaded (missing data is still a UserError)."""
    return _loader(spec).classes(spec)


def _digits(spec: DataSpec) -> Splits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    channels, height, width = spec.input_size
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    glyph = (max(8, round(height * DIGITS_GLYPH_FRACTION)), max(8, round(width * DIGITS_GLYPH_FRACTION)))
    glyphs = F.interpolate(images, size=glyph, mode="bilinear", align_corners=False)
    generator = torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    rows = torch.randint(0, height - glyph[0] + 1, (len(glyphs),), generator=generator)
    cols = torch.randint(0, width - glyph[1] + 1, (len(glyphs),), generator=generator)
    canvas = torch.zeros(len(glyphs), 1, height, width)
    for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
        canvas[i, :, r:r + glyph[0], c:c + glyph[1]] = glyphs[i]
    canvas = ((canvas - canvas.mean()) / canvas.std()).repeat(1, channels, 1, 1)
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=DIGITS_TEST_FRACTION,
                                           random_state=DIGITS_SPLIT_SEED, stratify=digits.target)
    return Splits(TensorDataset(canvas[train_idx], labels[train_idx]),
                  TensorDataset(canvas[test_idx], labels[test_idx]), DIGITS_CLASSES)


# Classes of each CIFAR (Krizhevsky 2009; CIFAR-100 as torchvision labels it: its 100 fine classes).
_CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}
_CIFAR_STATS = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))}


def _require_dir(spec: DataSpec) -> Path:
    if not spec.data_dir:
        raise UserError(f"dataset {spec.name} is not bundled: pass --data-dir with a local copy (nothing is downloaded)")
    path = Path(spec.data_dir)
    if not path.is_dir():
        raise UserError(f"--data-dir {spec.data_dir} is not a directory")
    return path


def _image_transform(spec: DataSpec, mean, std, train: bool) -> Callable:
    from torchvision import transforms as T

    channels, height, width = spec.input_size
    steps = [T.Resize((height, width))]
    if train:
        steps += [T.RandomCrop((height, width), padding=max(1, height // 8)), T.RandomHorizontalFlip()]
    if channels == 1:
        steps.append(T.Grayscale())
        mean, std = mean[:1], std[:1]
    return T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])


def _cifar_dataset(spec: DataSpec):
    from torchvision import datasets

    return datasets.CIFAR10 if spec.name == "cifar10" else datasets.CIFAR100


def _cifar_missing(spec: DataSpec, root: Path, reason: str) -> UserError:
    return UserError(f"no {spec.name} under --data-dir {root} ({reason}); nothing is downloaded: place the "
                     f"torchvision copy (e.g. {_cifar_dataset(spec).base_folder}) there")


def _cifar(spec: DataSpec) -> Splits:
    root = _require_dir(spec)
    cls = _cifar_dataset(spec)
    mean, std = _CIFAR_STATS[spec.name]
    try:
        train = cls(str(root), train=True, download=False, transform=_image_transform(spec, mean, std, True))
        test = cls(str(root), train=False, download=False, transform=_image_transform(spec, mean, std, False))
    except RuntimeError as error:
        raise _cifar_missing(spec, root, str(error)) from None
    return Splits(train, test, len(train.classes))


def _cifar_classes(spec: DataSpec) -> int:
    root = _require_dir(spec)
    folder = _cifar_dataset(spec).base_folder
    if not (root / folder).is_dir():
        raise _cifar_missing(spec, root, f"no {folder} folder")
    return _CIFAR_CLASSES[spec.name]


_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _image_folder(spec: DataSpec) -> Splits:
    """`data_dir/train/<class>/*` and `data_dir/val/<class>/*` (or test/); TinyImageNet's flat val/images with
    val_annotations.txt is read as it ships."""
    from torchvision import datasets

    root = _train_folder(spec).parent
    mean, std = _IMAGENET_STATS
    train = datasets.ImageFolder(str(root / "train"), transform=_image_transform(spec, mean, std, True))
    test_transform = _image_transform(spec, mean, std, False)
    annotations = root / "val" / "val_annotations.txt"
    if annotations.is_file():
        test = _annotated_folder(root / "val" / "images", annotations, train.class_to_idx, test_transform)
    else:
        held_out = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
        if held_out is None:
            raise UserError(f"--data-dir {root} has no val/ or test/ folder")
        test = datasets.ImageFolder(str(held_out), transform=test_transform)
        if test.class_to_idx != train.class_to_idx:
            raise UserError(f"--data-dir {root}: train/ and {held_out.name}/ have different class folders")
    return Splits(train, test, len(train.classes))


def _train_folder(spec: DataSpec) -> Path:
    train = _require_dir(spec) / "train"
    if not train.is_dir():
        raise UserError(f"--data-dir {spec.data_dir} has no train/ folder of class sub-folders")
    return train


def _image_folder_classes(spec: DataSpec) -> int:
    """The class sub-folders of train/, as ImageFolder finds them, without listing their images."""
    from torchvision.datasets.folder import find_classes

    train = _train_folder(spec)
    try:
        return len(find_classes(str(train))[0])
    except FileNotFoundError:
        raise UserError(f"--data-dir {spec.data_dir}: train/ holds no class sub-folders") from None


def _annotated_folder(images: Path, annotations: Path, class_to_idx: dict[str, int], transform) -> Dataset:
    from torchvision.datasets.folder import default_loader

    samples = []
    for line in annotations.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1] in class_to_idx:
            samples.append((images / fields[0], class_to_idx[fields[1]]))

    class Annotated(Dataset):
        def __len__(self):
            return len(samples)

        def __getitem__(self, index):
            path, label = samples[index]
            return transform(default_loader(str(path))), label

    return Annotated()


LOADERS: dict[str, Loader] = {
    "digits": Loader(_digits, lambda spec: DIGITS_CLASSES),
    "cifar10": Loader(_cifar, _cifar_classes),
    "cifar100": Loader(_cifar, _cifar_classes),
    "imagefolder": Loader(_image_folder, _image_folder_classes),
    "tinyimagenet": Loader(_image_folder, _image_folder_classes),
}
