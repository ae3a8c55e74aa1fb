"""The model loader as the CLI calls it, with one path: `pisim estimate FILE [--arch NAME]`. (The data-file
and results loaders already take one path, and the targets name them directly.)"""
from __future__ import annotations

from pathlib import Path

from pisim.loading import LoadedModel, load_model

# The state-dict seed is this zoo network's weights; the loader is told the architecture, as
# `pisim estimate model.pt --arch cifar-resnet20` is.
STATE_DICT_ARCH = "cifar-resnet20"


def load_archive(path: Path) -> LoadedModel:
    """TorchScript and torch.export archives carry their architecture."""
    return load_model(str(path))


def load_state_dict(path: Path) -> LoadedModel:
    return load_model(str(path), arch=STATE_DICT_ARCH)
