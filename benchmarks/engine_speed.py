"""How much each speed switch of the training engine pays, measured side by side in one run.

    python benchmarks/engine_speed.py [--data folder:../shared/data/cifar10/train] [--device cpu]
                                      [--rounds 4] [--compile] [--skip-fig6]

For each workload (ResNet-20 and ResNet-56 at the paper's width, batch 128, 32×32; the
four-net class demo preset; the eight-net fig6 preset), trains with:

* the landed engine's behaviour: every switch off (contiguous NCHW, one host sync per
  model, validation under no_grad);
* the default config (every switch on, except channels_last for the demo's small nets; the
  demo's amp="auto" is bf16 on a CPU with AMX or AVX-512 BF16, fp32 elsewhere);
* the default with one switch flipped at a time, so each switch's own share shows;
* for several models, 2 and 4 model threads (models trained at once, each on
  cores / threads intra-op threads);
* bf16 autocast, and at paper width torch.compile (alone and with bf16): its first start
  (a fresh inductor cache unless ``--warm-compile-cache``) and after how many steps it has
  paid that back. ``--compile`` measures it on the demo and fig6 presets too.

Every variant is built once and kept alive; then ``--rounds`` rounds, the variants taking
turns, so a slow moment of the machine hits one round of each alike. Prints the median
speed (images/s, steps/s for the presets) and the median of the per-round ratios with their
range. Then the engine against the usual tutorial loop (DataLoader with per-sample
transforms and 2 workers) on ResNet-20, both in fp32. On CUDA the cuDNN switch is measured
too.

Goals (issue "Training engine: faster, seeded, resumable"), same machine, same run: ≥ 1.25×
the landed engine for ResNet-20 and ResNet-56 at paper width on CPU; ≥ 1.5× steps/s for the
four-net demo preset; engine vs the DataLoader loop ≥ 2.5× on a quiet machine. Check
``uptime`` first: a number taken beside another job is not a number.

Measured on a 2-core Xeon with AMX (Sapphire Rapids), real CIFAR-10, the background training
paused, 4 interleaved rounds, × the landed engine (range over the rounds):

| workload | default | +torch.compile | bf16 | bf16 + compile | compile pays back after |
|---|---:|---:|---:|---:|---:|
| ResNet-20, paper width | 614 img/s, 1.20× (1.11-1.25) | 1.42× | 1.96× | 2.58× | 909 steps (30 s to compile) |
| ResNet-56, paper width | 237 img/s, 1.25× (1.17-1.31) | 1.41× | 2.05× | 2.68× | 384 steps (23 s) |
| four-net demo | 10.2 steps/s, 1.78× (bf16 by "auto"); in fp32 1.27× | — | — | — | (torch.compile: no gain, 85 s) |

The default's gain at paper width is channels_last (one switch off: 1.02×, 1.01×); one_sync
and inference_mode are within the noise here. The paper's 64,000 steps are 70 to 170 times
the compile's payback, so long runs should use ``--compile`` (also allowed with ``--resume``);
it stays off by default (a short run never pays it back, and a live demo cannot wait 30 s).
Engine against the DataLoader loop: 1.71× at paper width (convolutions dominate there, so a
better data path cannot pay more), 2.87× at the demo's size (the issue's 2.03× baseline was
measured there).

Earlier hosts. A 2-core AMD EPYC with avx512_bf16 (best of 2 builds): ResNet-20 1.21×,
ResNet-56 1.22×, bf16 1.62× and 1.86×; DataLoader 1.91× at paper width, 3.02× at the demo's
size. A 2-core AMD EPYC without AVX-512 (bf16 emulated: 0.1×, which is why "auto" checks for
AMX or AVX-512 BF16): ResNet-20 1.22×, ResNet-56 1.19×, the demo in fp32 with two lanes 1.17×
(a paired median of 10 rounds, one lane against two: 1.37×); DataLoader 1.54× at paper width,
2.88× at the demo's size. The demo's convolutions (6-24 channels) run at ~30 GFLOP/s on the
two cores, compute-bound rather than dispatch-bound: grouping two nets into one grouped
convolution was slower (0.7-0.8×); on the Xeon, PyTorch's own convolutions instead of
oneDNN's ran the demo at 0.6×, and torch.compile gave it nothing for 85 s of compiling. The
fig6 preset in two lanes: a paired median of 1.31× one lane (5 rounds of 30 steps).

The presets' switches (explorer.training.recipe.PRESETS, its ``engine``), from these runs: the
demo's nets are too small for NHWC (0.86× with it), so both small presets turn channels_last
off. Two model threads, each a 56- and a 20-layer net on one core, train the demo's four nets at
1.3-1.4× the steps per second of one thread after another on both cores (but 2 model threads ×
2 torch threads each on 2 cores ran at 0.4×: Training splits its threads among them); the fig6
preset's two lanes pay 1.31×, as above. The demo's amp="auto" is bf16 only where the CPU has it
natively (1.7× the landed engine on the Xeon with AMX; bf16 1.9-2.0× at paper width there).
torch.compile stays off in every preset: ~30 s to start on CPU, paid back after 400-900 steps at
paper width, never on the demo's nets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from degradation_demo import reference_loop_throughput

from explorer.devices import pick_device
from explorer.training.engine import Training, load_training_data, preset

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
    """``config`` with its engine switches (config.engine) flipped: one at a time, and all off."""
    switches = CPU_SWITCHES + (CUDA_SWITCHES if device.type == "cuda" else ())
    engine = config.engine
    found = {"landed (all switches off)": config.with_engine(model_threads=1, amp="off", **{s: False for s in switches}),
             "default": config}
    for switch in switches:
        found[f"{'without' if getattr(engine, switch) else 'with'} {switch}"] = config.with_engine(
            **{switch: not getattr(engine, switch)})
    if len(config.models) > 1:
        for threads in (1, 2, 4):
            if threads != engine.model_threads:
                found[f"with model_threads={threads}"] = config.with_engine(model_threads=threads)
    if engine.amp == "auto":  # the demo: what the default does without bf16 hardware
        found["with amp=off"] = config.with_engine(amp="off")
    else:
        found["with amp=bf16"] = config.with_engine(amp="bf16")  # CPUs with bf16 instructions too
    if with_compile:
        found["with torch.compile"] = config.with_engine(compile=True)
        if "with amp=bf16" in found:
            found["with torch.compile, amp=bf16"] = config.with_engine(compile=True, amp="bf16")
    return found


COMPILE_REFERENCE = {"with torch.compile": "default", "with torch.compile, amp=bf16": "with amp=bf16"}


def compare(title: str, config, data, device, steps: int, rounds: int, with_compile: bool, unit: str) -> None:
    """Every variant built once and kept alive, then ``rounds`` rounds of ``steps`` steps each,
    the variants taking turns, so a slow moment of the machine hits one round of each alike:
    the ratios are the median of the per-round ratios (the best of separate builds, as
    before, spread by ±15% from one build to the next on the 2-core hosts)."""
    def every_core() -> None:  # a run's model threads split them (Training.threads); set again
        if device.type == "cpu":  # before each turn, as another run's lanes may have changed it
            torch.set_num_threads(os.cpu_count() or 1)

    configs = variants(config, device, with_compile)
    runs, start = {}, {}
    for name, variant in configs.items():  # the first build of a compiled variant compiles
        every_core()
        begin = time.perf_counter()
        runs[name] = Training(replace(variant, steps=10**6), data, device=device).steps()
        for _ in range(3):
            next(runs[name])
        start[name] = time.perf_counter() - begin
    speeds = {name: [] for name in configs}
    for _ in range(rounds):
        for name, iterator in runs.items():
            every_core()
            began = time.perf_counter()
            for _ in range(steps):
                next(iterator)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            speeds[name].append(steps / (time.perf_counter() - began))

    def ratio(name: str, to: str) -> float:
        return statistics.median(a / b for a, b in zip(speeds[name], speeds[to]))

    scale = config.batch_size * len(config.models) if unit == "images/s" else 1
    landed = "landed (all switches off)"
    print(f"\n{title} ({rounds} interleaved rounds of {steps} steps; median speed, median per-round ratios)")
    for name in configs:
        low, high = min(a / b for a, b in zip(speeds[name], speeds[landed])), max(
            a / b for a, b in zip(speeds[name], speeds[landed]))
        print(f"  {name:<30} {statistics.median(speeds[name]) * scale:9.1f} {unit}   {ratio(name, landed):5.2f}× landed "
              f"({low:.2f}-{high:.2f})   {ratio(name, 'default'):5.2f}× default")
    for name, reference in ((n, r) for n, r in COMPILE_REFERENCE.items() if n in configs):
        extra = start[name] - start[reference]
        saved = 1 / statistics.median(speeds[reference]) - 1 / statistics.median(speeds[name])  # s per step
        payback = f"pays back after {extra / saved:,.0f} steps" if saved > 0 else "never pays back"
        print(f"  {name}: {extra:.0f} s more to start than {reference}; {payback}")
    for iterator in runs.values():
        iterator.close()  # ends each run's model-thread pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"folder:{REAL_DATA}" if REAL_DATA.is_dir() else "synthetic:5000")
    parser.add_argument("--device", default=None)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--paper-steps", type=int, default=16, help="steps per round at paper width")
    parser.add_argument("--demo-steps", type=int, default=60, help="steps per round of the demo preset")
    parser.add_argument("--fig6-steps", type=int, default=20, help="steps per round of the fig6 preset")
    parser.add_argument("--compile", action="store_true",
                        help="also measure torch.compile on the demo and fig6 presets (always at paper width)")
    parser.add_argument("--skip-reference", action="store_true", help="skip the DataLoader comparison")
    parser.add_argument("--skip-fig6", action="store_true", help="skip the eight-net fig6 preset (not a goal)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators per workload")
    parser.add_argument("--warm-compile-cache", action="store_true",
                        help="keep torch.compile's on-disk cache (default: a fresh one, so its start is a first start)")
    args = parser.parse_args()
    if not args.warm_compile_cache:  # read by inductor when it compiles, not at import
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="engine-speed-inductor-")
    device = pick_device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}, "
          f"data {args.data}")

    paper = preset("paper", data=args.data, val_every=10**9)
    data32 = load_training_data(paper)
    for model, steps in (("resnet20", args.paper_steps), ("resnet56", max(4, args.paper_steps // 2))):
        title = f"{model}, paper width (16 filters, batch 128, 32×32)"
        compare(title, replace(paper, models=(model,)), data32, device, steps, args.rounds, True, "images/s")
        if args.profile:
            profile(title, replace(paper, models=(model,)), data32, device)

    demo = preset("demo", data=args.data, models=("plain20", "plain56", "resnet20", "resnet56"))
    data_demo = load_training_data(demo)
    compare("four-net class demo preset (validation included)", demo, data_demo, device, args.demo_steps,
            args.rounds, args.compile, "steps/s")
    if args.profile:
        profile("the four-net demo preset", demo, data_demo, device, steps=20)

    fig6 = preset("fig6", data=args.data)  # the eight nets of Fig. 6: the lanes pay here too
    if not args.skip_fig6:
        compare("eight-net fig6 preset (validation included)", fig6, load_training_data(fig6), device,
                args.fig6_steps, args.rounds, args.compile, "steps/s")

    if not args.skip_reference:
        for title, single, data, steps in (
                ("resnet20, paper width", replace(paper, models=("resnet20",)), data32, args.paper_steps),
                ("resnet20, the demo's size", replace(demo, models=("resnet20",), classes=None).with_engine(amp="off"),
                 data_demo, args.demo_steps)):  # both in fp32, as the tutorial loop is
            engine = max(measure(single, data, device, steps) for _ in range(args.rounds)) * single.batch_size
            reference = max(reference_loop_throughput(single, data, args.data, device, steps)
                            for _ in range(args.rounds))
            print(f"\n{title}: engine {engine:.0f} img/s, DataLoader + per-sample transforms "
                  f"{reference:.0f} img/s: {engine / reference:.2f}×  (goal ≥ 2.5×)")


if __name__ == "__main__":
    main()
