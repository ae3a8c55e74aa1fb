"""Capture of every torchvision classifier at its natural input size: MACs, unsupported call sites, elements per
nonlinear kind and capture seconds, as one Markdown table. A benchmark, not a test: all of them take minutes.

The natural input size is the crop size of the model's default weights' preprocessing, or the size a vision
transformer's architecture fixes (the weights are never
downloaded: models are built randomly initialised on the meta device, as `pisim estimate NAME` builds them, or
on the CPU for the few whose initialisation reads tensor data). Capture seconds exclude building the model.
Usage: python benchmarks/bench_torchvision_capture.py [--models resnet18 vit_b_16 ...]
"""
from __future__ import annotations

import argparse
import time

import torchvision

from pisim.graph import NONLINEAR_KINDS, OpKind, capture
from pisim.loading import META, build_named, torchvision_classifiers

KIND_ORDER = [kind for kind in OpKind if kind in NONLINEAR_KINDS]


def natural_size(name: str) -> int:
    crop = torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size
    return int(crop[0])


def elements_of(op) -> int:
    """ReLU elements, max-pool comparisons, or the elements of any other nonlinearity."""
    return op.relu_elements or op.comparisons or op.nonlinear_elements


def row(name: str) -> list[str]:
    try:
        model = build_named(name, device=META).model
    except NotImplementedError:  # regnet_x/y initialise from tensor data, which the meta device does not hold
        model = build_named(name).model
    # a ViT built without weights fixes its own size (vit_h_14's default weights want 518, its builder 224)
    size = getattr(model, "image_size", None) or natural_size(name)
    start = time.perf_counter()
    graph = capture(model, (3, size, size)).graph
    seconds = time.perf_counter() - start
    per_kind = {kind: sum(elements_of(op) for op in graph.of_kind(kind)) for kind in KIND_ORDER}
    return [name, str(size), f"{graph.total_macs / 1e9:.3f}", str(len(graph.unsupported)),
            str(len(graph.of_kind(OpKind.PRECOMPUTED))),
            *(f"{per_kind[kind] / 1e6:.3f}" if per_kind[kind] else "" for kind in KIND_ORDER), f"{seconds:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="torchvision classifier names (default: all of them)")
    names = parser.parse_args().models or torchvision_classifiers()
    header = ["model", "input", "GMACs", "unsupported", "precomputed",
              *(f"{kind.value} (M{' comparisons' if kind == OpKind.MAXPOOL else ''})" for kind in KIND_ORDER),
              "capture s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for name in names:
        print("| " + " | ".join(row(name)) + " |", flush=True)


if __name__ == "__main__":
    main()
