"""The fine-grained budget loop: train ReLU gates under a latency-weighted sparsity penalty until the
binarised network fits the budget.

Starting from the trained baseline (the KD teacher's weights), every ReLU call site gets a gate per element
or per channel (optimizer.gates). The loss is the distillation loss plus

    penalty * sum over gates of g * (seconds one element saves at that site) * (elements the gate covers)
            / (seconds all ReLUs together save)

so a gate whose ReLUs cost more time is pushed harder, and the penalty at the start is `penalty` whatever
the model's size. A few times per epoch the gates are binarised and the mask priced exactly by the cost
models (a Pricer of the job's setting); the loop stops as soon as that price is within budget, and raises the
penalty by `penalty_growth` whenever `patience` checks pass without a new lowest price (SNL raises its lasso
coefficient when the ReLU count stalls). Gates are kept in [0, 1] (projected after each step), so the L1
penalty is their sum. The gates are then binarised at the budget: elements are kept in
order of gate per second saved, as many as fit (this fills the room a threshold left, or, when `gate_epochs`
ran out first, masks what the penalty did not; the result says which).

It is the training loop of optimizer.training (seeding, AMP where the device has it, a checkpoint after every
epoch that a resumed search continues from) with hooks for the penalty, the projection and the checks, and an
executor job like a training job (`GateSearchJob.run`), so `--executor ray` runs it on the cluster; a finished
search returns its cached result.
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

from optimizer import masks as relu_masks
from optimizer.candidate import Candidate
from optimizer.data import DataSpec, load_splits
from optimizer.distill import Distillation
from optimizer.gates import PREFIX as GATE_PREFIX
from optimizer.gates import GatedReLU, binarise, insert_gates
from optimizer.io import read_json, write_json, write_torch
from optimizer.marginal import latency_saving_per_element, relu_saving_per_element
from optimizer.masks import PREFIX as MASK_PREFIX
from optimizer.models import ModelSource
from optimizer.pricing import BUDGET_UNITS, Pricer, SettingChoice
from optimizer.training import CHECKPOINT, RESULT, Hooks, Loop, Schedule, Step, evaluate, fit, load_trained, pick_device
from optimizer.transforms import Variants, variants_of
from pisim.graph import OpNode

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
    """The budget loop as an executor job (optimizer.executors): picklable, priced and run where it lands."""

    source: ModelSource
    data: DataSpec
    schedule: Schedule  # batch size
    seed: int
    distillation: Distillation | None
    teacher_weights: str
    options: GateOptions
    setting: SettingChoice  # what the budget is priced under
    objective: str  # what it is measured in: a key of pricing.BUDGET_UNITS
    budget: float
    label: str = "gates"  # its directory is cache_dir/gates-<key>

    def spec(self) -> dict[str, Any]:
        return {"model": self.source.to_dict(), "data": self.data.to_dict(), "batch_size": self.schedule.batch_size,
                "seed": self.seed, "distillation": self.distillation.__dict__ if self.distillation else None,
                "teacher": hashlib.sha1(Path(self.teacher_weights).read_bytes()).hexdigest()[:12],
                "options": self.options.to_dict(), "pricing": {**self.setting.to_dict(), "objective": self.objective},
                "budget": self.budget}

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:12]

    def run(self, directory: Path, *, device: str = "auto", progress: bool = True,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> "GateResult":
        """What an executor runs: `search_gates` for this job in `directory`."""
        return search_gates(self, directory, device=device, progress=progress, on_epoch=on_epoch)


@dataclass
class GateResult:
    candidate: Candidate
    warm_start: str  # state dict of the masked candidate network, from the gate-trained weights
    size: float  # price of the binarised mask, in budget units
    ended_by: str  # "penalty" (the loop met the budget) or "gate_epochs" (they ran out first)
    epochs: float  # epochs of gate training used
    history: list[dict[str, float]] = field(default_factory=list)


class _BudgetLoop(Hooks):
    """The gate search's hooks on the training loop: the latency-weighted penalty, gates projected back to
    [0, 1] after each step, and the pricing checks that end training within budget or raise a stalled penalty."""

    def __init__(self, gates: Mapping[str, GatedReLU], sites: Mapping[str, OpNode], savings: Mapping[str, float],
                 options: GateOptions, size_of: Callable[[Candidate], float], budget: float):
        self.gates, self.sites, self.options, self.size_of, self.budget = gates, sites, options, size_of, budget
        self.weights = _penalty_weights(gates, sites, savings)
        self.state: dict[str, Any] = {"penalty": options.penalty, "history": [], "lowest": math.inf, "stalled": 0}
        self._shown: dict[str, str] = {}

    def extra_loss(self) -> torch.Tensor:
        sparsity = sum(w * gate.gate.sum() for gate, w in zip(self.gates.values(), self.weights))
        return self.state["penalty"] * sparsity

    def after_step(self, step: Step) -> bool:
        with torch.no_grad():  # a gate is a blend weight: projected back to [0, 1], so one at 0 stays there
            for gate in self.gates.values():
                gate.gate.clamp_(0.0, 1.0)
        if step.index % self.options.check_every and step.index != step.per_epoch:
            return False
        state = self.state
        size = self.size_of(mask_candidate(binarise(self.gates, self.sites, self.options.threshold), self.options))
        state["history"].append({"epoch": step.total / step.per_epoch, "penalty": state["penalty"], "size": size,
                                 "task_loss": float(step.task_loss.detach())})
        self._shown = {"size": f"{size:.4g}", "budget": f"{self.budget:.4g}", "penalty": f"{state['penalty']:.3g}"}
        if size <= self.budget:
            return True
        if size < state["lowest"] * (1 - MIN_PROGRESS):
            state["lowest"], state["stalled"] = size, 0
        else:
            state["stalled"] += 1
        if state["stalled"] >= self.options.patience:
            state["penalty"] *= self.options.penalty_growth
            state["stalled"] = 0
        return False

    def postfix(self) -> dict[str, str]:
        return self._shown

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state


def search_gates(job: GateSearchJob, directory: Path, *, device: str = "auto", progress: bool = True,
                 on_epoch: Callable[[dict[str, float]], None] | None = None) -> GateResult:
    """Run (or resume, or return the cached result of) the budget loop in `directory`, pricing candidates
    under the job's setting and objective. `on_epoch` sees each epoch's curve point once its checkpoint is
    written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / RESULT).is_file():
        stored = read_json(directory / RESULT)
        return GateResult(Candidate.from_dict(stored["candidate"]), str(directory / WARM_START), stored["size"],
                          stored["ended_by"], stored["epochs"], stored["history"])
    write_json(directory / "job.json", job.spec())
    options, phase = job.options, job.setting.phase
    target = pick_device(device)
    torch.set_flush_denormal(True)
    splits = load_splits(job.data)
    variants = variants_of(job.source)
    pricer = Pricer(variants, job.setting)
    units = BUDGET_UNITS[job.objective]

    def size_of(candidate: Candidate) -> float:
        return units(pricer.price(candidate), phase)

    graph = variants.of(Candidate()).captured.graph
    savings = (latency_saving_per_element(graph, pricer.setting, phase, options.replacement)
               if job.objective == "latency" else relu_saving_per_element(graph))
    torch.manual_seed(job.seed)
    teacher = load_trained(job.source, Candidate(), job.teacher_weights, target)
    student = variants.build(Candidate(), initialise=False)
    student.load_state_dict(teacher.state_dict())
    sites = {op.name: op for op in graph.relu_ops}
    model, gates = insert_gates(student, list(sites.values()), options.granularity, options.replacement)
    model.to(target)
    gate_params = [gate.gate for gate in gates.values()]
    gate_ids = {id(p) for p in gate_params}
    optimizer = torch.optim.Adam([
        {"params": gate_params, "lr": options.gate_lr},
        {"params": [p for p in model.parameters() if id(p) not in gate_ids], "lr": options.weight_lr}])
    budget_loop = _BudgetLoop(gates, sites, savings, options, size_of, job.budget)
    loop = Loop(f"gates {options.granularity}", model, optimizer, splits, options.gate_epochs,
                job.schedule.batch_size, job.seed, teacher=teacher if job.distillation is not None else None,
                distillation=job.distillation, hooks=budget_loop)
    fitted = fit(loop, directory / CHECKPOINT, target, progress=progress, on_epoch=on_epoch)
    ended_by = "penalty" if fitted.stopped else "gate_epochs"
    met = rank_to_budget(gates, sites, savings, options, size_of, job.budget)
    met = dataclasses.replace(met, tags=(*met.tags, f"{GATE_EPOCHS_TAG} {fitted.epochs:.3f}",
                                         f"budget met by {ended_by}"))
    size = size_of(met)
    write_torch(directory / WARM_START, warm_start(variants, met, model))
    history = budget_loop.state["history"]
    accuracy = evaluate(model, splits.test, job.schedule.batch_size, target)
    write_json(directory / RESULT, {"candidate": met.to_dict(), "size": size, "ended_by": ended_by,
                                    "epochs": fitted.epochs, "history": history, "curve": fitted.curve,
                                    "gated_accuracy": accuracy, "job": job.spec()})
    (directory / CHECKPOINT).unlink(missing_ok=True)
    return GateResult(met, str(directory / WARM_START), size, ended_by, fitted.epochs, history)


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


def warm_start(variants: Variants, candidate: Candidate, gated: nn.Module) -> dict[str, torch.Tensor]:
    """The masked candidate network's state dict with the gate-trained weights and replacement coefficients."""
    masked = variants.build(candidate, initialise=False)
    trained = {k: v.detach().cpu() for k, v in gated.state_dict().items()}
    state = {}
    for key, value in masked.state_dict().items():
        source_key = GATE_PREFIX + key[len(MASK_PREFIX):] if key.startswith(MASK_PREFIX) else key
        state[key] = trained.get(source_key, value)  # the mask's index buffers are the masked network's own
    return state
