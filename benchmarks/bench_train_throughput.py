"""Training throughput of optimizer.training.train against a plain torch loop, same model, data and device.

CIFAR ResNet18 at 3x32x32 on the bundled digits (upsampled to 32x32), SGD, the same batch size; AMP in both
when CUDA is present. train() also evaluates and writes a checkpoint every epoch: its figure includes that.

  PYTHONPATH=. python benchmarks/bench_train_throughput.py --epochs 3          # on a GPU machine
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from optimizer.candidate import Candidate
from optimizer.data import DataSpec, load_splits
from optimizer.models import ZooModel
from optimizer.training import Schedule, TrainJob, pick_device, train


def plain_loop(source: ZooModel, dataset, epochs: int, batch_size: int, device: torch.device) -> float:
    """Images per second of the textbook loop: no evaluation, no checkpoints, no progress bar."""
    torch.manual_seed(0)
    model = source.build().to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    seen = 0
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(epochs):
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                loss = F.cross_entropy(model(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            seen += len(labels)
    _synchronize(device)
    return seen / (time.perf_counter() - started)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="cifar-resnet18", help="a zoo name (a small one for a CPU smoke run)")
    parser.add_argument("--side", type=int, default=32, help="input height and width (default %(default)s)")
    args = parser.parse_args()
    device = pick_device(args.device)
    data = DataSpec("digits", None, (3, args.side, args.side))
    source = ZooModel(args.model, 10, data.input_size)
    train_set = load_splits(data).train
    plain_loop(source, train_set, 1, args.batch_size, device)  # warm-up: allocator, cuDNN autotuning
    plain = plain_loop(source, train_set, args.epochs, args.batch_size, device)
    job = TrainJob("throughput", source, data, Candidate(), Schedule(args.epochs, args.batch_size), seed=0)
    with tempfile.TemporaryDirectory() as work:
        _synchronize(device)
        started = time.perf_counter()
        train(job, Path(work), device=args.device, progress=False)
        ours = len(train_set) * args.epochs / (time.perf_counter() - started)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.model} 3x{args.side}x{args.side}, batch {args.batch_size}, {args.epochs} epochs of {len(train_set)} images on "
          f"{name} (AMP {'on' if device.type == 'cuda' else 'off'})")
    print(f"  plain torch loop                      {plain:10.1f} images/s")
    print(f"  optimizer.training.train (eval+ckpt)  {ours:10.1f} images/s  ({ours / plain:.2f}x the plain loop)")


if __name__ == "__main__":
    main()
