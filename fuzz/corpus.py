"""The seed corpus, made from the project's own files so nothing binary is committed: a tiny zoo network
saved as TorchScript and as a torch.export archive, a zoo network's state dict, every shipped TOML data
file, and results files (a search's frontier.json, complete and interrupted, and a saved estimate).

    python -m fuzz.corpus DIR [KIND ...]
"""
from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
# Results files the report tests already keep, in the three shapes `pisim report` reads.
RESULTS_SEEDS = {
    "frontier.json": REPO / "tests" / "data" / "report" / "search_seed0.json",
    "frontier-interrupted.json": REPO / "tests" / "data" / "report" / "search_seed2_interrupted.json",
    "estimate.json": REPO / "tests" / "golden" / "cost_estimate_cifar_resnet20.json",
}
# A quarter-width ResNet-20 keeps the archives to a few hundred KB, so a mutated case loads in milliseconds.
TINY_WIDTH = 0.25


def _shipped(kind: str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        from cost_models.datafiles import shipped

        for name, path in shipped(kind).items():
            shutil.copyfile(path, folder / f"{name}.toml")
    return build


def _results(folder: Path) -> None:
    for name, path in RESULTS_SEEDS.items():
        shutil.copyfile(path, folder / name)


def _tiny_model():
    import torch

    from pisim.zoo import ZOO, build_zoo_model

    torch.manual_seed(0)
    return build_zoo_model("cifar-resnet20", alpha=TINY_WIDTH).eval(), torch.zeros(1, *ZOO["cifar-resnet20"].default_input)


def _torchscript(folder: Path) -> None:
    import torch

    model, example = _tiny_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still a format users bring
        torch.jit.save(torch.jit.trace(model, example), str(folder / "tiny-resnet20.pt"))


def _export(folder: Path) -> None:
    import torch

    model, example = _tiny_model()
    torch.export.save(torch.export.export(model, (example,)), str(folder / "tiny-resnet20.pt2"))


def _state_dict(folder: Path) -> None:
    import torch

    from fuzz.loaders import STATE_DICT_ARCH
    from pisim.zoo import build_zoo_model

    torch.manual_seed(0)
    torch.save(build_zoo_model(STATE_DICT_ARCH).state_dict(), folder / f"{STATE_DICT_ARCH}.pt")


# Seed kinds (the corpus's subdirectories, named by fuzz.targets) and how each is made.
BUILDERS: dict[str, Callable[[Path], None]] = {
    "protocols": _shipped("protocols"),
    "profiles": _shipped("profiles"),
    "networks": _shipped("networks"),
    "results": _results,
    "torchscript": _torchscript,
    "export": _export,
    "state-dict": _state_dict,
}


def build_corpus(root: Path, kinds: list[str]) -> None:
    """Make the seeds of each kind not already under `root`."""
    for kind in kinds:
        folder = root / kind
        if not folder.is_dir():
            folder.mkdir(parents=True)
            BUILDERS[kind](folder)


if __name__ == "__main__":
    if len(sys.argv) < 2 or not set(sys.argv[2:]) <= set(BUILDERS):
        sys.exit(f"usage: python -m fuzz.corpus DIR [KIND ...]  (kinds: {', '.join(BUILDERS)}; default all)")
    build_corpus(Path(sys.argv[1]), sys.argv[2:] or list(BUILDERS))
