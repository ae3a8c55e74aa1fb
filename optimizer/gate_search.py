"""The fine-grained budget loop: train ReLU gates under a latency-weighted sparsity penalty until the
binarised network fits the budget.

Starting from the trained baseline (the KD teacher's weights), every ReLU call site gets a gate per element
or per channel (optimizer.gates). The loss is the distillation loss plus

    penalty * sum over gates of g * (seconds one element saves at that site) * (elements the gate covers)
            / (seconds all ReLUs together save)

so a gate whose ReLUs cost more time is pushed harder, and the penalty at the start is `penalty` whatever
the model's size. A few times per epoch the gates are binarised and the mask priced exactly by the cost
models (through the search's Pricer); the loop stops as soon as that price is within budget, and raises the
penalty by `penalty_growth` whenever `patience` checks pass without a new lowest price (SNL raises its lasso
coefficient when the ReLU count stalls). Gates are kept in [0, 1] (projected after each step), so the L1
penalty is their sum. The gates are then binarised at the budget: elements are kept in
order of gate per second saved, as many as fit (this fills the room a threshold left, or, when `gate_epochs`
ran out first, masks what the penalty did not; the result says which).

Seeded, a checkpoint after every epoch (a resumed search continues from it), and a cached result.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from optimizer import masks as relu_masks
from optimizer.candidate import Candidate
from optimizer.data import DataSpec, load_splits
from optimizer.distill import Distillation
from optimizer.gates import GatedReLU, binarise, insert_gates
from optimizer.gates import module_name as gate_module_name
from optimizer.io import read_json, write_json, write_torch
from optimizer.masks import module_name as mask_module_name
from optimizer.models import ModelSource
from optimizer.training import Schedule, evaluate, load_trained, pick_device
from optimizer.transforms import build_candidate
from pisim.graph import OpNode

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
WARM_START = "warm_start.pt"
DIRECTORY_PREFIX = "gates-"  # a gate search's job directory in the cache: gates-<job key>
GATE_EPOCHS_TAG = "gate epochs"  # candidate tag: epochs of gate training that produced the mask
MIN_PROGRESS = 0.01  # a check that lowers the price by less than this fraction counts as stalled


@dataclass(frozen=True)
class GateOptions:
    granularity: str = "element"  # element | channel
    replacement: str = "identity"  # identity | poly2
    gate_epochs: int = 8  # most epochs of gate training before the budget is forced by ranking
    gate_lr: float = 0.1  # Adam on the gates: about 10 steps take a gate from 1 to 0 on short schedules
    weight_lr: float = 1e-3  # Adam on the network weights while gates train (SNL's rate)
    penalty: float = 10.0  # starting coefficient of the latency-weighted L1 penalty
    penalty_growth: float = 1.5
    check_every: int = 2  # steps between pricings of the binarised gates (each costs milliseconds)
    patience: int = 3  # checks without a new lowest price before the penalty grows
    threshold: float = 0.01  # a gate above this counts as kept in the checks (SNL's alpha > 0.01)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateSearchJob:
    source: ModelSource
    data: DataSpec
    schedule: Schedule  # batch size
    seed: int
    distillation: Distillation | None
    teacher_weights: str
    options: GateOptions
    pricing: dict[str, Any]  # what the budget is measured in: setting, phase, objective (part of the cache key)
    budget: float

    def spec(self) -> dict[str, Any]:
        return {"model": self.source.to_dict(), "data": self.data.to_dict(), "batch_size": self.schedule.batch_size,
                "seed": self.seed, "distillation": self.distillation.__dict__ if self.distillation else None,
                "teacher": hashlib.sha1(Path(self.teacher_weights).read_bytes()).hexdigest()[:12],
                "options": self.options.to_dict(), "pricing": self.pricing, "budget": self.budget}

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class GateResult:
    candidate: Candidate
    warm_start: str  # state dict of the masked candidate network, from the gate-trained weights
    size: float  # price of the binarised mask, in budget units
    ended_by: str  # "penalty" (the loop met the budget) or "gate_epochs" (they ran out first)
    epochs: float  # epochs of gate training used
    history: list[dict[str, float]] = field(default_factory=list)


def search_gates(job: GateSearchJob, directory: Path, size_of: Callable[[Candidate], float],
                 savings: Mapping[str, float], *, device: str = "auto", progress: bool = True,
                 log: Callable[[str], None] = print) -> GateResult:
    """Run (or resume, or return the cached result of) the budget loop in `directory`. `size_of` prices a
    candidate in budget units; `savings[site]` is what one masked element there saves, in the same units."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / RESULT).is_file():
        stored = read_json(directory / RESULT)
        return GateResult(Candidate.from_dict(stored["candidate"]), str(directory / WARM_START), stored["size"],
                          stored["ended_by"], stored["epochs"], stored["history"])
    write_json(directory / "job.json", job.spec())
    options = job.options
    target = pick_device(device)
    torch.set_flush_denormal(True)
    splits = load_splits(job.data)
    torch.manual_seed(job.seed)
    teacher = load_trained(job.source, Candidate(), job.teacher_weights, target)
    student, variant = build_candidate(job.source, Candidate())
    student.load_state_dict(teacher.state_dict())
    sites = {op.name: op for op in variant.captured.graph.relu_ops}
    model, gates = insert_gates(student, list(sites.values()), options.granularity, options.replacement)
    model.to(target)
    penalty_weights = _penalty_weights(gates, sites, savings)
    gate_params = [gate.gate for gate in gates.values()]
    gate_ids = {id(p) for p in gate_params}
    optimizer = torch.optim.Adam([
        {"params": gate_params, "lr": options.gate_lr},
        {"params": [p for p in model.parameters() if id(p) not in gate_ids], "lr": options.weight_lr}])
    steps_per_epoch = math.ceil(len(splits.train) / job.schedule.batch_size)
    state = {"epoch": 0, "penalty": options.penalty, "history": [], "lowest": math.inf, "stalled": 0}
    if (directory / CHECKPOINT).is_file():
        saved = torch.load(directory / CHECKPOINT, map_location=target, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
    bar = tqdm(total=options.gate_epochs * steps_per_epoch, initial=state["epoch"] * steps_per_epoch,
               desc=f"gates {options.granularity}", unit="step", disable=not progress, leave=False, dynamic_ncols=True)
    met: Candidate | None = None
    steps = state["epoch"] * steps_per_epoch
    for epoch in range(state["epoch"], options.gate_epochs):
        torch.manual_seed(job.seed * 7_919 + epoch)
        model.train()
        generator = torch.Generator().manual_seed(job.seed * 1_000_003 + epoch)
        loader = torch.utils.data.DataLoader(splits.train, batch_size=job.schedule.batch_size, shuffle=True,
                                             generator=generator)
        for step, (images, labels) in enumerate(loader, start=1):
            images, labels = images.to(target), labels.to(target)
            logits = model(images)
            if job.distillation is not None:
                with torch.no_grad():
                    teacher_logits = teacher(images)
                task = job.distillation.loss(logits, teacher_logits, labels)
            else:
                task = F.cross_entropy(logits, labels)
            sparsity = sum(w * gate.gate.sum() for gate, w in zip(gates.values(), penalty_weights))
            loss = task + state["penalty"] * sparsity
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # a gate is a blend weight: projected back to [0, 1], so one at 0 stays there
                for gate in gate_params:
                    gate.clamp_(0.0, 1.0)
            steps += 1
            bar.update(1)
            if step % options.check_every and step != steps_per_epoch:
                continue
            candidate = mask_candidate(binarise(gates, sites, options.threshold), options)
            size = size_of(candidate)
            state["history"].append({"epoch": steps / steps_per_epoch, "penalty": state["penalty"], "size": size,
                                     "task_loss": float(task.detach())})
            bar.set_postfix(size=f"{size:.4g}", budget=f"{job.budget:.4g}", penalty=f"{state['penalty']:.3g}")
            if size <= job.budget:
                met = candidate
                break
            if size < state["lowest"] * (1 - MIN_PROGRESS):
                state["lowest"], state["stalled"] = size, 0
            else:
                state["stalled"] += 1
            if state["stalled"] >= options.patience:
                state["penalty"] *= options.penalty_growth
                state["stalled"] = 0
        if met is not None:
            break
        state["epoch"] = epoch + 1
        write_torch(directory / CHECKPOINT, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                             "state": state})
    bar.close()
    ended_by = "penalty" if met is not None else "gate_epochs"
    if met is None:
        log(f"gates: {options.gate_epochs} epochs did not bring the price under {job.budget:.4g}; masking the "
            "elements with the lowest gate per unit saved until it fits")
    epochs = steps / steps_per_epoch
    met = rank_to_budget(gates, sites, savings, options, size_of, job.budget)
    met = dataclasses.replace(met, tags=(*met.tags, f"{GATE_EPOCHS_TAG} {epochs:.3f}", f"budget met by {ended_by}"))
    size = size_of(met)
    write_torch(directory / WARM_START, warm_start(job.source, met, model))
    result = GateResult(met, str(directory / WARM_START), size, ended_by, epochs, state["history"])
    model.eval()
    accuracy = evaluate(model, splits.test, job.schedule.batch_size, target)
    write_json(directory / RESULT, {"candidate": met.to_dict(), "size": size, "ended_by": ended_by,
                                    "epochs": result.epochs, "history": result.history,
                                    "gated_accuracy": accuracy, "job": job.spec()})
    (directory / CHECKPOINT).unlink(missing_ok=True)
    return result


def _penalty_weights(gates: Mapping[str, GatedReLU], sites: Mapping[str, OpNode],
                     savings: Mapping[str, float]) -> list[float]:
    """Per gate module: what one of its gates saves, over what all ReLUs together save."""
    total = sum(savings[name] * op.relu_elements for name, op in sites.items())
    return [savings[name] * gate.elements_per_gate(relu_masks.site_shape(sites[name])) / total
            for name, gate in gates.items()]


def mask_candidate(masks: Mapping[str, torch.Tensor], options: GateOptions) -> Candidate:
    """The candidate of binarised masks (sites that keep every element are left out)."""
    encoded = tuple(sorted((site, relu_masks.encode(kept)) for site, kept in masks.items() if not bool(kept.all())))
    return Candidate(relu_masks=encoded, replacement=options.replacement,
                     tags=("fine-grained", f"granularity {options.granularity}", f"replacement {options.replacement}"))


def rank_to_budget(gates: Mapping[str, GatedReLU], sites: Mapping[str, OpNode], savings: Mapping[str, float],
                   options: GateOptions, size_of: Callable[[Candidate], float], budget: float) -> Candidate:
    """Mask the elements with the lowest gate per unit saved, the fewest that bring the price within budget
    (all of them when even that does not fit: the search then reports the candidate over budget)."""
    names = list(gates)
    scores = torch.cat([(gates[n].gate.detach().cpu().clamp(min=0) / max(savings[n], 1e-30))
                        .expand(relu_masks.site_shape(sites[n])).flatten() for n in names])
    bounds = torch.tensor([0] + [sites[n].relu_elements for n in names]).cumsum(0)
    order = scores.argsort()

    def masked(count: int) -> Candidate:
        kept = torch.ones(len(scores), dtype=torch.bool)
        kept[order[:count]] = False
        return mask_candidate({n: kept[bounds[i]:bounds[i + 1]].reshape(relu_masks.site_shape(sites[n]))
                               for i, n in enumerate(names)}, options)

    low, high = 0, len(scores)  # size_of(masked(high)) is the all-masked network, the cheapest there is
    while low < high:
        middle = (low + high) // 2
        if size_of(masked(middle)) <= budget:
            high = middle
        else:
            low = middle + 1
    return masked(low)


def warm_start(source: ModelSource, candidate: Candidate, gated: nn.Module) -> dict[str, torch.Tensor]:
    """The masked candidate network's state dict with the gate-trained weights and replacement coefficients."""
    masked, _ = build_candidate(source, candidate)
    trained = {k: v.detach().cpu() for k, v in gated.state_dict().items()}
    prefix, gated_prefix = mask_module_name(""), gate_module_name("")
    state = {}
    for key, value in masked.state_dict().items():
        source_key = gated_prefix + key[len(prefix):] if key.startswith(prefix) else key
        state[key] = trained.get(source_key, value)  # the mask's index buffers are the masked network's own
    return state
