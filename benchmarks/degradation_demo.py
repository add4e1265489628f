"""How fast does the class demo show the degradation problem, and how fast is the engine?

    python benchmarks/degradation_demo.py [--data folder:../shared/data/cifar10/train] [--preset demo]

1. Trains plain-20, plain-56, ResNet-20 and ResNet-56 in lock-step with the preset and
   reports the wall-clock seconds until plain-56's smoothed training error exceeds
   plain-20's by at least 10 points (the paper's Fig. 1, live). Goal: ≤ 45 s on a laptop CPU.
2. Trains one model with the engine (data in memory on the device, batched augmentation)
   and with the common reference loop (torchvision ImageFolder/per-sample transforms +
   DataLoader) on the same data and model, and prints both images/s and their ratio.
   Goal: ≥ 2×.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision.transforms import v2

from explorer.data import CIFAR10_MEAN, CIFAR10_STD
from explorer.devices import pick_device
from explorer.models import build_model
from explorer.train import load_training_data, preset, train

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "train"


def run_demo(config, data, device, max_seconds: float, gap: float = 0.10):
    """Train the preset to its end; return (first divergence or None, last record)."""
    divergence, last = None, None
    for record in train(config, data, device=device):
        last = record
        errors = {m.name: m.train_error for m in record.models}
        if divergence is None and record.step >= config.window and errors["plain56"] - errors["plain20"] >= gap:
            divergence = (record.elapsed_s, record.step, errors)
        if record.elapsed_s > max_seconds:
            break
    return divergence, last


class _UInt8AsPil(Dataset):
    """The reference style for a non-folder source: a PIL image per sample, then transforms."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(v2.functional.to_pil_image(self.images[index])), int(self.labels[index])


def reference_loop_throughput(config, data, source: str, device, steps: int) -> float:
    """images/s of DataLoader + per-sample transforms, the usual tutorial loop."""
    transform = v2.Compose([
        v2.Resize(config.image_size), v2.RandomCrop(config.image_size, padding=config.augmentation.pad),
        v2.RandomHorizontalFlip(), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(CIFAR10_MEAN, CIFAR10_STD),
    ])
    if source.startswith("folder:"):
        dataset = datasets.ImageFolder(source.removeprefix("folder:"), transform=transform)
    else:
        dataset = _UInt8AsPil(data.train_images, data.train_labels, transform)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, num_workers=2,
                        drop_last=True, persistent_workers=False)
    model = build_model(config.models[0], device=device, width=config.width, shortcut=config.shortcut).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    seen, start = 0, None
    for index, (images, labels) in enumerate(loader):
        if index == 2:  # let the workers start before timing
            start, seen = time.perf_counter(), 0
        images, labels = images.to(device), labels.to(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
        seen += len(labels)
        if index >= steps + 2:
            break
    return seen / (time.perf_counter() - start)


def engine_throughput(config, data, device, steps: int) -> float:
    records = list(train(replace(config, steps=steps + 2, val_every=10**9), data, device=device))
    timed = records[-1].elapsed_s - records[1].elapsed_s
    return config.batch_size * steps / timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"folder:{REAL_DATA}" if REAL_DATA.is_dir() else "synthetic")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--device", default=None)
    parser.add_argument("--max-seconds", type=float, default=240)
    parser.add_argument("--throughput-steps", type=int, default=40)
    parser.add_argument("--width", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--skip-divergence", action="store_true")
    args = parser.parse_args()
    overrides = {k: v for k, v in {"width": args.width, "image_size": args.image_size,
                                    "batch_size": args.batch_size, "lr": args.lr}.items() if v is not None}
    config = preset(args.preset, data=args.data, models=("plain20", "plain56", "resnet20", "resnet56"), **overrides)
    device = pick_device(args.device)
    start = time.perf_counter()
    data = load_training_data(config)
    print(f"data {config.data}: {len(data.train_labels)} train / {len(data.val_labels)} val at "
          f"{config.image_size}px, loaded in {time.perf_counter() - start:.1f} s; device {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"preset {args.preset}: width {config.width}, batch {config.batch_size}, lr {config.lr}, "
          f"{config.steps} steps, window {config.window}")

    if not args.skip_divergence:
        divergence, last = run_demo(config, data, device, args.max_seconds)
        if divergence:
            seconds, step, errors = divergence
            shown = ", ".join(f"{name} {100 * e:.0f}%" for name, e in errors.items())
            print(f"divergence (plain56 ≥ plain20 + 10 points): {seconds:.1f} s at step {step} "
                  f"[{shown}]  goal ≤ 45 s")
        else:
            print("divergence: plain56 never trailed plain20 by 10 points")
        final = ", ".join(f"{m.name} {100 * m.train_error:.0f}%"
                          + (f" (val {100 * m.val_error:.0f}%)" if m.val_error is not None else "")
                          for m in last.models)
        print(f"whole demo: {last.step} steps in {last.elapsed_s:.1f} s; training error {final}")

    single = replace(config, models=("resnet20",))
    engine = engine_throughput(single, data, device, args.throughput_steps)
    reference = reference_loop_throughput(single, data, config.data, device, args.throughput_steps)
    print(f"throughput resnet20: engine {engine:.0f} img/s, DataLoader loop {reference:.0f} img/s, "
          f"ratio {engine / reference:.2f}×  goal ≥ 2×")


if __name__ == "__main__":
    main()
