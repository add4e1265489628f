"""How much each speed switch of the training engine pays, measured side by side in one run.

    python benchmarks/engine_speed.py [--data folder:../shared/data/cifar10/train] [--device cpu]
                                      [--rounds 2] [--compile]

For each workload (ResNet-20 and ResNet-56 at the paper's width, batch 128, 32×32; the
four-net class demo preset; the eight-net fig6 preset), trains with:

* the landed engine's behaviour: every switch off (contiguous NCHW, one host sync per
  model, validation under no_grad);
* the default config (every switch on, except channels_last for the demo's small nets);
* the default with one switch flipped at a time, so each switch's own share shows;
* for several models, 2 and 4 model threads (models trained at once, each on
  cores / threads intra-op threads).

Measurements alternate between configurations for ``--rounds`` rounds and keep each one's
best, so a slow moment of the machine hits them all alike. Then the engine (default config)
against the usual tutorial loop (DataLoader with per-sample transforms and 2 workers) on
ResNet-20. Prints images/s (steps/s for the demo) and the ratios. On CUDA the AMP and
cuDNN switches are measured too; ``--compile`` adds torch.compile (slow to start).

Goals (issue "Training engine: faster, seeded, resumable"), same machine, same run: ≥ 1.25×
the landed engine for ResNet-20 and ResNet-56 at paper width on CPU; ≥ 1.5× steps/s for the
four-net demo preset; engine vs the DataLoader loop ≥ 2.5× on a quiet machine. Check
``uptime`` first: a number taken beside another job is not a number.

Measured (2-core AMD EPYC with avx512_bf16, the background training paused, real CIFAR-10,
``--rounds 2``), × the landed engine:

| workload | default (fp32) | one switch off: channels_last, one_sync, inference_mode | amp=bf16 | model_threads=4 |
|---|---:|---|---:|---:|
| ResNet-20, paper width | 515 img/s, 1.21× | 1.00×, 1.15×, 1.05× | 690 img/s, 1.62× | — |
| ResNet-56, paper width | 193 img/s, 1.22× | 0.96×, 1.20×, 1.18× | 292 img/s, 1.86× | — |

Engine against the DataLoader loop on ResNet-20: 1.91× at paper width (556 vs 292 img/s),
3.02× at the demo's size (2,106 vs 698 img/s). On a later host without AVX-512 (so bf16 ran
at 0.1×), with the demo preset in two model lanes: ResNet-20 1.22×, ResNet-56 1.19×; the
demo 1.17× (best of 2; a paired median over 10 rounds of one lane against two gave 1.37×);
DataLoader 1.54× at paper width, 2.88× at the demo's size. The demo's convolutions (6-24
channels) run at ~30 GFLOP/s on the two cores, compute-bound rather than dispatch-bound,
and grouping two nets into one grouped convolution was slower (0.7-0.8×). The fig6 preset in
two lanes: a paired median of 1.31× one lane (5 rounds of 30 steps, training paused). bf16 autocast is
off by default (the paper trains in fp32). Within one hour this machine's speed drifted by
up to a quarter, so compare only numbers from one run.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from degradation_demo import reference_loop_throughput

from explorer.devices import pick_device
from explorer.train import Training, load_training_data, preset

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "train"
CPU_SWITCHES = ("channels_last", "one_sync", "inference_mode")
CUDA_SWITCHES = ("cudnn_benchmark",)


def measure(config, data, device, steps: int, warmup: int = 3) -> float:
    """Steps per second over ``steps`` steps after ``warmup`` (validation included as the
    config schedules it; the run is long, so no end-of-run validation falls in)."""
    if device.type == "cpu":  # every core: a run's model threads split them (Training.threads)
        torch.set_num_threads(os.cpu_count() or 1)
    run = Training(replace(config, steps=10**6), data, device=device)
    iterator = run.steps()
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - start)


def profile(title: str, config, data, device, steps: int = 10) -> None:
    """torch.profiler's top operators for ``steps`` steps of ``config`` (after a warm-up)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    run = Training(replace(config, steps=10**6), data, device=device)
    iterator = run.steps()
    for _ in range(3):
        next(iterator)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as profiler:
        for _ in range(steps):
            next(iterator)
    print(f"\nprofile of {title}, {steps} steps:")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def variants(config, device, with_compile: bool) -> dict[str, object]:
    switches = CPU_SWITCHES + (CUDA_SWITCHES if device.type == "cuda" else ())
    found = {"landed (all switches off)": replace(config, model_threads=1, **{s: False for s in switches}),
             "default": config}
    for switch in switches:
        found[f"{'without' if getattr(config, switch) else 'with'} {switch}"] = replace(
            config, **{switch: not getattr(config, switch)})
    if len(config.models) > 1:
        for threads in (1, 2, 4):
            if threads != config.model_threads:
                found[f"with model_threads={threads}"] = replace(config, model_threads=threads)
    found["with amp=bf16"] = replace(config, amp="bf16")  # CPUs with bf16 instructions too
    if with_compile:
        found["with torch.compile"] = replace(config, compile=True)
    return found


def compare(title: str, config, data, device, steps: int, rounds: int, with_compile: bool, unit: str) -> None:
    configs = variants(config, device, with_compile)
    best = {name: 0.0 for name in configs}
    for _ in range(rounds):
        for name, variant in configs.items():
            best[name] = max(best[name], measure(variant, data, device, steps))
    scale = config.batch_size * len(config.models) if unit == "images/s" else 1
    base, default = best["landed (all switches off)"], best["default"]
    print(f"\n{title} ({steps} steps per measurement, best of {rounds})")
    for name, value in best.items():
        print(f"  {name:<28} {value * scale:9.1f} {unit}   {value / base:5.2f}× landed   {value / default:5.2f}× default")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"folder:{REAL_DATA}" if REAL_DATA.is_dir() else "synthetic:5000")
    parser.add_argument("--device", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paper-steps", type=int, default=12, help="steps per measurement at paper width")
    parser.add_argument("--demo-steps", type=int, default=100, help="steps per measurement of the demo preset")
    parser.add_argument("--fig6-steps", type=int, default=30, help="steps per measurement of the fig6 preset")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--skip-reference", action="store_true", help="skip the DataLoader comparison")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators per workload")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}, "
          f"data {args.data}")

    paper = preset("paper", data=args.data, val_every=10**9)
    data32 = load_training_data(paper)
    for model, steps in (("resnet20", args.paper_steps), ("resnet56", max(4, args.paper_steps // 2))):
        title = f"{model}, paper width (16 filters, batch 128, 32×32)"
        compare(title, replace(paper, models=(model,)), data32, device, steps, args.rounds, args.compile, "images/s")
        if args.profile:
            profile(title, replace(paper, models=(model,)), data32, device)

    demo = preset("demo", data=args.data, models=("plain20", "plain56", "resnet20", "resnet56"))
    data_demo = load_training_data(demo)
    compare("four-net class demo preset (validation included)", demo, data_demo, device, args.demo_steps,
            args.rounds, args.compile, "steps/s")
    if args.profile:
        profile("the four-net demo preset", demo, data_demo, device, steps=20)

    fig6 = preset("fig6", data=args.data)  # the eight nets of Fig. 6: the lanes pay here too
    compare("eight-net fig6 preset (validation included)", fig6, load_training_data(fig6), device,
            args.fig6_steps, args.rounds, args.compile, "steps/s")

    if not args.skip_reference:
        for title, single, data, steps in (
                ("resnet20, paper width", replace(paper, models=("resnet20",)), data32, args.paper_steps),
                ("resnet20, the demo's size", replace(demo, models=("resnet20",), classes=None), data_demo,
                 args.demo_steps)):
            engine = max(measure(single, data, device, steps) for _ in range(args.rounds)) * single.batch_size
            reference = max(reference_loop_throughput(single, data, args.data, device, steps)
                            for _ in range(args.rounds))
            print(f"\n{title}: engine {engine:.0f} img/s, DataLoader + per-sample transforms "
                  f"{reference:.0f} img/s: {engine / reference:.2f}×  (goal ≥ 2.5×)")


if __name__ == "__main__":
    main()
