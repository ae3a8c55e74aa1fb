"""Export a trained candidate as a torch.export archive (.pt2): the removed ReLUs are gone from the program,
so `pisim estimate` prices the file, with no mask, at the latency the search priced the candidate at."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

import cost_models
from cost_models.cost import LATENCY_PHASES
from optimizer.candidate import Candidate
from optimizer.io import write_binary
from optimizer.models import ModelSource
from optimizer.pricing import Pricer
from optimizer.training import load_trained
from pisim.graph import capture
from pisim.loading import load_exported_file

MODELS_DIR = "models"


def export_candidate(source: ModelSource, candidate: Candidate, weights: str, out: Path, pricer: Pricer,
                     log: Callable[[str], None]) -> str:
    """Write OUT/models/<id>.pt2 and check that pricing it reproduces the candidate's latency; returns the path
    relative to OUT."""
    model = load_trained(source, candidate, weights, torch.device("cpu"))
    program = torch.export.export(model, (torch.zeros(1, *source.input_size),))
    relative = f"{MODELS_DIR}/{candidate.id}.pt2"
    write_binary(Path(out) / relative, lambda handle: torch.export.save(program, handle))
    searched = {p: pricer.price(candidate).latency[f"{p}_s"] for p in LATENCY_PHASES}
    reread = capture(load_exported_file(Path(out) / relative), source.input_size, source=relative)
    estimate = cost_models.price(reread.graph, pricer.setting)
    mismatched = [p for p in LATENCY_PHASES if not math.isclose(estimate.latency(p), searched[p], rel_tol=1e-9)]
    if mismatched:
        log(f"warning: {relative} prices at " + ", ".join(f"{p} {estimate.latency(p):.6f} s" for p in mismatched)
            + " instead of the searched " + ", ".join(f"{searched[p]:.6f} s" for p in mismatched))
    return relative
