"""Train one candidate: a pure function of (job, paths) -> result, so any executor can run it.

Seeded (init, shuffling and augmentation per epoch), CUDA with AMP when present, a checkpoint after every
epoch (a resumed job continues from its last finished epoch), and a cached result that a finished job returns
without training again.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from optimizer.candidate import Candidate
from optimizer.data import DataSpec, load_splits
from optimizer.distill import Distillation
from optimizer.io import read_json, write_json, write_torch
from optimizer.models import ModelSource
from optimizer.transforms import build_candidate
from pisim.loading import load_weights

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
WEIGHTS = "model.pt"


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
    model, _ = build_candidate(source, candidate)
    model.load_state_dict(load_weights(weights, map_location=device))
    return model.to(device).eval()


def train(job: TrainJob, directory: Path, *, device: str = "auto", progress: bool = True,
          on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Run `job` in `directory` (created): resumes from its checkpoint, returns its cached result when done.

    `on_epoch` sees each epoch's curve point once its checkpoint is written (an early-stopping scheduler's hook).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    result_path = directory / RESULT
    if result_path.is_file():
        stored = read_json(result_path)
        return TrainResult(job.label, stored["accuracy"], stored["curve"], str(directory / WEIGHTS),
                           stored["device"], cached=True)
    write_json(directory / "job.json", job.spec())
    target = pick_device(device)
    torch.set_flush_denormal(True)  # culled (linear) networks drift into denormals, which run ~50x slower on CPU
    splits = load_splits(job.data)
    torch.manual_seed(job.seed)
    model, _ = build_candidate(job.source, job.candidate)
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
    use_amp = target.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    curve: list[dict[str, float]] = []
    start = 0
    checkpoint_path = directory / CHECKPOINT
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=target, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        curve, start = state["curve"], state["epoch"]
    bar = tqdm(total=schedule.epochs * steps_per_epoch, initial=start * steps_per_epoch, desc=job.label,
               unit="step", disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in range(start, schedule.epochs):
        torch.manual_seed(job.seed * 7_919 + epoch)  # augmentation draws: the same after a resume
        model.train()
        total_loss = seen = 0.0
        for images, labels in _loader(splits.train, schedule.batch_size, job.seed, epoch, shuffle=True):
            images, labels = images.to(target, non_blocking=True), labels.to(target, non_blocking=True)
            with torch.autocast(target.type, enabled=use_amp):
                logits = model(images)
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(images)
                    loss = job.distillation.loss(logits.float(), teacher_logits.float(), labels)
                else:
                    loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total_loss += float(loss.detach()) * len(labels)
            seen += len(labels)
            bar.update(1)
        accuracy = evaluate(model, splits.test, schedule.batch_size, target)
        curve.append({"epoch": epoch + 1, "train_loss": total_loss / max(seen, 1), "test_accuracy": accuracy})
        bar.set_postfix(acc=f"{accuracy:.3f}")
        write_torch(checkpoint_path, {"epoch": epoch + 1, "model": model.state_dict(),
                                      "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                      "scaler": scaler.state_dict(), "curve": curve})
        if on_epoch is not None:
            on_epoch(curve[-1])
    bar.close()
    write_torch(directory / WEIGHTS, {k: v.cpu() for k, v in model.state_dict().items()})
    final = curve[-1]["test_accuracy"] if curve else evaluate(model, splits.test, schedule.batch_size, target)
    write_json(result_path, {"accuracy": final, "curve": curve, "device": str(target), "job": job.spec()})
    checkpoint_path.unlink(missing_ok=True)
    return TrainResult(job.label, final, curve, str(directory / WEIGHTS), str(target))
