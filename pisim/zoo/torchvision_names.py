"""The torchvision classifier names `pisim estimate` accepts, without importing torchvision when it can be helped.

Importing torchvision takes seconds, and `pisim models` only needs its list of names. The list of the pinned
release ships as data; any other installed release is asked directly, so the names never go stale.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path

IMAGENET_INPUT = (3, 224, 224)
SHIPPED_LIST = Path(__file__).parent / "data" / "torchvision-classifiers.json"


def installed_version() -> str | None:
    try:
        return metadata.version("torchvision").split("+")[0]
    except metadata.PackageNotFoundError:
        return None


def shipped_names() -> tuple[str, list[str]]:
    """(torchvision release, its classifier names) as shipped with PISim."""
    document = json.loads(SHIPPED_LIST.read_text(encoding="utf-8"))
    return document["torchvision"], document["classifiers"]


def live_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


@lru_cache(maxsize=1)
def classifier_names() -> tuple[str, ...]:
    release, names = shipped_names()
    return tuple(names if installed_version() == release else live_names())
