"""Train one candidate: a pure function of (job, paths) -> result, so any executor can run it.

Seeded (init, shuffling and augmentation per epoch), CUDA with AMP when present, a checkpoint after every
epoch (a resumed job continues from its last finished epoch), and a cached result that a finished job returns
without training again. The loop itself (`fit`) takes hooks (an extra loss term, a check after every step that
may end training, state saved in the checkpoint): the gate search (optimizer.gate_search) is the same loop.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from optimizer.candidate import Candidate
from optimizer.data import DataSpec, Splits, load_splits
from optimizer.distill import Distillation
from optimizer.io import read_json, write_json, write_torch
from optimizer.models import ModelSource
from optimizer.transforms import variants_of
from pisim.loading import load_weights

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
WEIGHTS = "model.pt"
JOB_SPEC = "job.json"  # TrainJob.spec(): what the job trains


@dataclass(frozen=True)
class Schedule:
    epochs: int = 6
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4


@dataclass(frozen=True)
class TrainJob:
    label: str  # what the search calls it: "baseline", "criticality S2", a candidate id
    source: ModelSource
    data: DataSpec
    candidate: Candidate
    schedule: Schedule
    seed: int
    distillation: Distillation | None = None
    teacher_weights: str | None = None  # state dict of the baseline (uncut) model
    init_weights: str | None = None  # state dict of this candidate to start from (None: fresh seeded init)

    def spec(self) -> dict[str, Any]:
        """Everything that decides the result: the cache key of the job."""
        return {"model": self.source.to_dict(), "data": self.data.to_dict(),
                "candidate": {k: v for k, v in self.candidate.to_dict().items() if k != "tags"},
                "schedule": self.schedule.__dict__, "seed": self.seed,
                "distillation": self.distillation.__dict__ if self.distillation else None,
                "teacher": _file_digest(self.teacher_weights) if self.teacher_weights else None,
                **({"init": _file_digest(self.init_weights)} if self.init_weights else {})}

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:12]

    def run(self, directory: Path, *, device: str = "auto", progress: bool = True,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> "TrainResult":
        """What an executor runs (optimizer.executors): `train` this job in `directory`."""
        return train(self, directory, device=device, progress=progress, on_epoch=on_epoch)


@dataclass
class TrainResult:
    label: str
    accuracy: float
    curve: list[dict[str, float]]
    weights: str
    device: str
    cached: bool = False  # read back from a finished job's directory
    stopped_early: bool = False  # an early-stopping scheduler ended it: `curve` is partial, `weights` empty


def _file_digest(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def _loader(dataset, batch_size: int, seed: int, epoch: int, shuffle: bool) -> DataLoader:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)


def evaluate(model: nn.Module, dataset, batch_size: int, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for images, labels in _loader(dataset, max(batch_size, 256), 0, 0, shuffle=False):
            predictions = model(images.to(device)).argmax(1)
            correct += int((predictions.cpu() == labels).sum())
            total += len(labels)
    return correct / max(total, 1)


def load_trained(source: ModelSource, candidate: Candidate, weights: str, device: torch.device) -> nn.Module:
    model = variants_of(source).build(candidate, initialise=False)
    model.load_state_dict(load_weights(weights, map_location=device))
    return model.to(device).eval()


@dataclass(frozen=True)
class Step:
    """One optimiser step, as a hook sees it."""

    epoch: int  # from 0
    index: int  # within the epoch, from 1
    per_epoch: int  # steps in an epoch
    task_loss: torch.Tensor  # the distillation (or cross-entropy) loss, before any extra term

    @property
    def total(self) -> int:
        """Steps taken since the first epoch, this one included."""
        return self.epoch * self.per_epoch + self.index


class Hooks:
    """What a caller adds to the training loop; these defaults add nothing (a plain training job)."""

    def extra_loss(self) -> torch.Tensor | None:
        """A term added to the task loss of every step (None: nothing)."""
        return None

    def after_step(self, step: Step) -> bool:
        """Runs after each optimiser step; True ends training there, before the epoch's evaluation and checkpoint."""
        return False

    def postfix(self) -> dict[str, str]:
        """What the progress bar shows after each step."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The hooks' own state, saved in every epoch checkpoint and handed back on resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class Loop:
    """One run of the training loop: what it trains, on what, for how long. The loop seeds each epoch's shuffling
    and augmentation, trains with AMP where the device has it, evaluates and checkpoints every epoch."""

    label: str
    model: nn.Module  # on the device
    optimizer: torch.optim.Optimizer
    splits: Splits
    epochs: int
    batch_size: int
    seed: int
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None  # stepped after every optimiser step
    teacher: nn.Module | None = None  # present: the task loss is `distillation`'s
    distillation: Distillation | None = None
    hooks: Hooks = field(default_factory=Hooks)


@dataclass
class Fitted:
    curve: list[dict[str, float]]  # one point per finished epoch, those before a resume included
    steps: int  # optimiser steps taken, those before a resume included
    steps_per_epoch: int
    stopped: bool  # a hook ended training before its last epoch

    @property
    def epochs(self) -> float:
        """Epochs trained, a fraction where a hook stopped one part way."""
        return self.steps / self.steps_per_epoch


def fit(loop: Loop, checkpoint_path: Path, device: torch.device, *, progress: bool = True,
        on_epoch: Callable[[dict[str, float]], None] | None = None) -> Fitted:
    """Train `loop`, resuming from `checkpoint_path` when it exists and rewriting it after every epoch.

    `on_epoch` sees each epoch's curve point once its checkpoint is written (an early-stopping scheduler's hook).
    """
    model, optimizer, scheduler, hooks = loop.model, loop.optimizer, loop.scheduler, loop.hooks
    steps_per_epoch = math.ceil(len(loop.splits.train) / loop.batch_size)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    curve: list[dict[str, float]] = []
    start = 0
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if "hooks" in state:
            hooks.load_state_dict(state["hooks"])
        curve, start = state["curve"], state["epoch"]
    bar = tqdm(total=loop.epochs * steps_per_epoch, initial=start * steps_per_epoch, desc=loop.label,
               unit="step", disable=not progress, leave=False, dynamic_ncols=True)
    steps = start * steps_per_epoch
    for epoch in range(start, loop.epochs):
        torch.manual_seed(loop.seed * 7_919 + epoch)  # augmentation draws: the same after a resume
        model.train()
        total_loss = seen = 0.0
        for index, (images, labels) in enumerate(_loader(loop.splits.train, loop.batch_size, loop.seed, epoch,
                                                         shuffle=True), start=1):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(images)
                if loop.teacher is not None:
                    with torch.no_grad():
                        teacher_logits = loop.teacher(images)
                    task = loop.distillation.loss(logits.float(), teacher_logits.float(), labels)
                else:
                    task = F.cross_entropy(logits.float(), labels)
                extra = hooks.extra_loss()
                loss = task if extra is None else task + extra
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            total_loss += float(loss.detach()) * len(labels)
            seen += len(labels)
            steps += 1
            bar.update(1)
            stop = hooks.after_step(Step(epoch, index, steps_per_epoch, task))
            postfix = hooks.postfix()
            if postfix:
                bar.set_postfix(postfix)
            if stop:
                bar.close()
                return Fitted(curve, steps, steps_per_epoch, stopped=True)
        accuracy = evaluate(model, loop.splits.test, loop.batch_size, device)
        mean_loss = total_loss / max(seen, 1)
        # a diverged epoch's loss is inf or NaN, which strict JSON cannot hold: null marks it in the curve
        curve.append({"epoch": epoch + 1, "train_loss": mean_loss if math.isfinite(mean_loss) else None,
                      "test_accuracy": accuracy})
        bar.set_postfix(acc=f"{accuracy:.3f}")
        hook_state = hooks.state_dict()
        write_torch(checkpoint_path, {"epoch": epoch + 1, "model": model.state_dict(),
                                      "optimizer": optimizer.state_dict(),
                                      "scheduler": scheduler.state_dict() if scheduler is not None else None,
                                      "scaler": scaler.state_dict(), "curve": curve,
                                      **({"hooks": hook_state} if hook_state else {})})
        if on_epoch is not None:
            on_epoch(curve[-1])
    bar.close()
    return Fitted(curve, steps, steps_per_epoch, stopped=False)


def train(job: TrainJob, directory: Path, *, device: str = "auto", progress: bool = True,
          on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Run `job` in `directory` (created): resumes from its checkpoint, returns its cached result when done.

    Nothing is written until the job has set up (data, model, teacher, checkpoint), so a job that cannot start
    leaves no trace. `on_epoch` sees each epoch's curve point once its checkpoint is written (an early-stopping
    scheduler's hook).
    """
    directory = Path(directory)
    result_path = directory / RESULT
    if result_path.is_file():
        stored = read_json(result_path)
        return TrainResult(job.label, stored["accuracy"], stored["curve"], str(directory / WEIGHTS),
                           stored["device"], cached=True)
    target = pick_device(device)
    torch.set_flush_denormal(True)  # culled (linear) networks drift into denormals, which run ~50x slower on CPU
    splits = load_splits(job.data)
    torch.manual_seed(job.seed)
    model = variants_of(job.source).build(job.candidate)
    if job.init_weights:
        model.load_state_dict(load_weights(job.init_weights))
    model.to(target)
    teacher = (load_trained(job.source, Candidate(), job.teacher_weights, target)
               if job.distillation and job.teacher_weights else None)
    schedule = job.schedule
    steps_per_epoch = math.ceil(len(splits.train) / schedule.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=schedule.lr, momentum=schedule.momentum,
                                weight_decay=schedule.weight_decay, nesterov=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=schedule.epochs * steps_per_epoch)
    loop = Loop(job.label, model, optimizer, splits, schedule.epochs, schedule.batch_size, job.seed, scheduler,
                teacher, job.distillation)
    write_json(directory / JOB_SPEC, job.spec())
    curve = fit(loop, directory / CHECKPOINT, target, progress=progress, on_epoch=on_epoch).curve
    write_torch(directory / WEIGHTS, {k: v.cpu() for k, v in model.state_dict().items()})
    final = curve[-1]["test_accuracy"] if curve else evaluate(model, splits.test, schedule.batch_size, target)
    write_json(result_path, {"accuracy": final, "curve": curve, "device": str(target), "job": job.spec()})
    (directory / CHECKPOINT).unlink(missing_ok=True)
    return TrainResult(job.label, final, curve, str(directory / WEIGHTS), str(target))
