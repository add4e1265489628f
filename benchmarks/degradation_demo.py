"""Does the class demo convince in a minute? The issue's criteria, per seed, measured.

    python benchmarks/degradation_demo.py [--data folder:../shared/data/cifar10/train] [--seconds 60]
                                          [--seeds 0,1,2] [--set lr=0.2 ...]

Trains the class demo (explorer.lab.class_demo_config: the demo preset's plain-20, plain-56,
ResNet-20 and ResNet-56 in lock-step) once per seed for ``--seconds`` of wall time (60 on real
CIFAR-10; use 90 for the synthetic set) and prints, per seed, the training errors then and
the three criteria:

1. plain-56 ≥ plain-20 + 10 points (Fig. 1: the degradation problem);
2. ResNet-56 ≤ plain-56 − 15 points (Fig. 6: shortcuts fix it);
3. ResNet-20 ≤ 0.6 × chance (something visibly learns; chance = 1 − 1/k for k classes).

``--set key=value`` overrides the preset (as Python literals), to try other settings.
``reference_loop_throughput`` (the tutorial DataLoader loop) is used by engine_speed.py.

What was tried (2-core CPU, real CIFAR-10, training error after 60 s, seed 0 unless noted;
p20/p56/r20/r56 = plain-20, plain-56, ResNet-20, ResNet-56):

| setting | steps in 60 s | p20 | p56 | r20 | r56 | criteria |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
| landed preset (width 6, 16 px, batch 32, lr 0.1), 10 classes | 900 | 78 | 90 | 72 | 78 | 2, 3 fail |
| the same, 5 classes (airplane, automobile, frog, horse, ship) | 850 | 51 | 83 | 40 | 52 | pass |
| 2 classes (automobile, frog) | 814 | 8 | 42 | 9 | 15 | pass (too easy to teach with) |
| 5 classes, 900 steps, ÷10 at 700: seed 0 / 1 / 2 | 780 | 50 / 56 / 51 | 79 / 67 / 72 | 41 / 40 / 41 | 54 / 58 / 57 | seeds 1, 2 fail 2 |
| **5 classes, lr 0.2 after a 50-step ramp, ÷10 at 700: seed 0 / 1 / 2** | 730-810 | 54 / 54 / 54 | 79 / 81 / 78 | 42 / 37 / 39 | 48 / 51 / 46 | **all pass** |

On the synthetic set (90 s, seed 0), no setting tried passes criterion 2: ResNet-56 stays near
chance while ResNet-20 learns (5 patterns, lr 0.2: p20 37, p56 64, r20 16, r56 80; lr 0.1:
82 / 75 / 8 / 79; lr 0.05: 33 / 70 / 9 / 79; 10 patterns, lr 0.2: 90 / 90 / 34 / 90).
"""

from __future__ import annotations

import argparse
import ast
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision.transforms import v2

from explorer.data import CIFAR10_MEAN, CIFAR10_STD
from explorer.lab import class_demo_config
from explorer.models import build_model
from explorer.train import Training, intra_op_threads, load_training_data

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "train"


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


def criteria_at(config, data, seconds: float) -> tuple[int, float, dict[str, float]]:
    """(step, elapsed s, training error per model) after ``seconds`` of training."""
    run = Training(config, data)
    start = time.perf_counter()
    last = None
    for last in run.steps():
        if time.perf_counter() - start >= seconds:
            break
    return last.step, time.perf_counter() - start, {m.name: m.train_error for m in last.models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"folder:{REAL_DATA}" if REAL_DATA.is_dir() else "synthetic")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides")
    args = parser.parse_args()
    overrides = {key: ast.literal_eval(value) for key, value in (item.split("=", 1) for item in args.set)}
    config = replace(class_demo_config(args.data), **overrides)
    torch.set_num_threads(intra_op_threads(config))
    data = load_training_data(config)
    k = len(config.classes) if config.classes else data.num_classes
    chance = 1 - 1 / k
    print(f"class demo on {config.data}: {k} classes, width {config.width}, {config.image_size} px, batch "
          f"{config.batch_size}, lr {config.lr} (ramp {config.warmup_steps} steps), ÷10 at {config.milestones}, "
          f"{config.steps} steps; {args.seconds:.0f} s per seed")
    passed = 0
    for seed in (int(s) for s in args.seeds.split(",")):
        step, elapsed, errors = criteria_at(replace(config, seed=seed), data, args.seconds)
        gap, rescue = errors["plain56"] - errors["plain20"], errors["plain56"] - errors["resnet56"]
        checks = (gap >= 0.10, rescue >= 0.15, errors["resnet20"] <= 0.6 * chance)
        passed += all(checks)
        shown = ", ".join(f"{name} {100 * e:.0f}%" for name, e in errors.items())
        print(f"seed {seed}: step {step} after {elapsed:.0f} s [{shown}]\n"
              f"  plain-56 − plain-20 = {100 * gap:+.0f} points (≥ +10: {'yes' if checks[0] else 'NO'}); "
              f"plain-56 − ResNet-56 = {100 * rescue:+.0f} points (≥ 15: {'yes' if checks[1] else 'NO'}); "
              f"ResNet-20 {100 * errors['resnet20']:.0f}% (≤ {60 * chance:.0f}%: {'yes' if checks[2] else 'NO'})")
    print(f"{passed} of {len(args.seeds.split(','))} seeds meet all three criteria")


if __name__ == "__main__":
    main()
