"""Does the fig6 preset draw both of Fig. 6's orderings within 30 minutes? Measured.

    python benchmarks/fig6_preset.py [--data folder:../shared/data/cifar10/train] [--minutes 30]
                                     [--set width=8 ...] [--out run.json]

Trains the ``fig6`` preset (explorer.train_config: plain and residual 20/32/44/56 in
lock-step) and prints, at every validation step, both panels of Fig. 6 (explorer.lab's
depth_orderings): left, deeper plain nets should have *higher* training error; right, deeper
ResNets *lower*. It stops after ``--minutes`` of wall time or at the preset's last step and
says whether both orderings held at the end, on training and on validation error.

``--set key=value`` overrides the preset (as Python literals), to try other settings;
``--out`` writes the run record, which the lab replays in Fig. 6's two panels.

What was tried (2-core CPU, real CIFAR-10, 10 classes, seed 0; errors at the end):

| setting | steps/s | p20 | p32 | p44 | p56 | r20 | r32 | r44 | r56 | orderings |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
| width 8, 16 px, batch 128 (90 s probe, step 120) | 1.32 | 79 | 81 | 86 | 89 | 72 | 81 | 79 | 88 | plain only |
| width 16, 16 px, batch 128 (90 s probe, step 60) | 0.66 | 82 | 87 | 87 | 90 | 78 | 83 | 90 | 89 | plain only |
| width 8, 32 px, batch 128 (90 s probe, step 35) | 0.39 | 87 | 89 | 89 | 90 | 79 | 84 | 86 | 89 | plain only |
| **the preset: width 8, 16 px, batch 128, lr 0.1 after a 200-step ramp, ÷10 at 1,200 and 1,800, 2,400 steps on the first 10,000 training images (30.7 epochs of them), 28.4 min** | 1.41 | 55.3 | 61.3 | 69.2 | 75.8 | 44.6 | 41.8 | 40.0 | 45.2 | plain: yes, from step 400 on; ResNets: 20 > 32 > 44, but ResNet-56 behind from step 400 on |

Validation errors at the end of the bold run follow the same pattern (plain 55.8 < 59.8 <
66.5 < 75.4; ResNets 44.4, 42.1, 40.6, 46.8). ResNet-56 trailing the shallower ResNets all
run long is what the four-net paper-width run (pretrained/runs) shows too (29.2% against
ResNet-20's 20.7% after 3,000 steps): at these lengths the 56-layer ResNet has not caught
up. Open: a setting where it does within 30 minutes (a longer high-rate phase, cosine, a
gentler start for the deepest net), to be tried with this script.
"""

from __future__ import annotations

import argparse
import ast
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from explorer.lab import depth_orderings
from explorer.runs import new_record, save_run
from explorer.train import Training, layer_names, load_training_data, preset

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"folder:{REAL_DATA}" if REAL_DATA.is_dir() else "synthetic")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="also write the run record here")
    args = parser.parse_args()
    overrides = {key: ast.literal_eval(value) for key, value in (item.split("=", 1) for item in args.set)}
    steps = overrides.pop("steps", None)
    config = preset("fig6", data=args.data, **({"steps": steps} if steps else {}))
    config = replace(config, **overrides)
    torch.set_num_threads(args.threads)
    data = load_training_data(config)
    print(f"fig6 on {config.data}: width {config.width}, {config.image_size} px, batch {config.batch_size}, "
          f"lr {config.lr} ({config.schedule}, ramp {config.warmup_steps}), {config.steps} steps, "
          f"train_limit {config.train_limit}; at most {args.minutes:.0f} min, {torch.get_num_threads()} threads",
          flush=True)
    record = new_record(args.out.stem if args.out else "fig6", config, "cpu", layer_names(config))
    training = Training(config, data)
    record.classes = list(training.data.classes)
    start = time.perf_counter()
    for step in training.steps():
        record.append(step)
        elapsed = time.perf_counter() - start
        if any(m.val_error is not None for m in step.models):
            panels = " | ".join(p.describe() for p in depth_orderings(record))
            print(f"step {step.step} ({elapsed / 60:.1f} min, {step.step / elapsed:.2f} steps/s): {panels}", flush=True)
        if elapsed >= 60 * args.minutes:
            break
    record.finished = record.steps[-1]["step"] >= config.steps
    print(f"{record.steps[-1]['step']} steps in {elapsed / 60:.1f} min: {record.steps[-1]['step'] / elapsed:.2f} steps/s"
          f", epoch {record.steps[-1]['epoch']:.1f}")
    for key in ("train_error", "val_error"):
        panels = depth_orderings(record, key)
        held = all(p.as_in_the_paper for p in panels) and len(panels) == 2
        print(f"{key}: {'both orderings as in Fig. 6' if held else 'NOT both orderings'}; "
              + " | ".join(p.describe() for p in panels))
    if args.out:
        save_run(record, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
