"""Two training jobs in one process: how to split torch's threads between them.

    python benchmarks/scheduler_threads.py [--steps 30] [--rounds 2]

``torch.set_num_threads`` looks process-wide, but with PyTorch's OpenMP backend it does two
things: it stores a process-wide count (which gates whether an op runs in parallel at all,
and which every thread *new to torch* copies at its first parallel op) and it sets the
calling thread's own OpenMP team size (``omp_set_num_threads`` is per thread). So a job that
calls it in its own thread sizes its own team. This script measures, side by side in one
run, the images per second of ResNet-20 (the paper's CIFAR net, 32×32, batch 64) trained in
Python threads:

- ``alone, all cores``: one job, ``torch.set_num_threads(cores)``;
- ``alone, share``: one job at the scheduler's share, :func:`explorer.server.scheduler.threads_per_job`
  (the cores but one; the reference for the ratios);
- ``two, shared``: two jobs, nothing set: each thread takes every core (2 × cores threads);
- ``two, per job``: two jobs, each calls ``torch.set_num_threads(threads_per_job(2, cores))``
  in its own thread (what :meth:`explorer.server.scheduler.Ticket.pace` does);
- ``two, per job, nice``: the same, the job threads at nice +10 (the scheduler's default).

It also reads each thread's OpenMP team size (``omp_get_max_threads`` from the libgomp torch
loaded) to show the per-thread effect. Check ``uptime`` first: on a busy machine the ratios
move; the script alternates the variants for ``--rounds`` rounds so drift hits them alike.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import threading
import time

import torch
from torch import nn

from explorer.models import build_model
from explorer.server.scheduler import threads_per_job


def openmp_library() -> ctypes.CDLL | None:
    """The libgomp torch loaded (torch bundles its own, under a hashed file name)."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "gomp" in line and line.rstrip().endswith(".so.1")}
    return ctypes.CDLL(paths.pop()) if paths else None


def train_steps(steps: int, threads: int | None, nice: int, out: dict, omp) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    if nice:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    torch.manual_seed(0)
    model = build_model("resnet20").train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images, labels = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    loss_fn = nn.CrossEntropyLoss()
    for step in range(steps + 2):
        if step == 2:  # the first steps warm up the allocator and oneDNN's kernels
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()
    out["images_per_s"] = steps * 64 / (time.perf_counter() - start)
    out["team"] = omp.omp_get_max_threads() if omp is not None else None


def run_jobs(jobs: int, threads: int | None, nice: int, steps: int, omp) -> tuple[list[float], list]:
    results = [{} for _ in range(jobs)]
    workers = [threading.Thread(target=train_steps, args=(steps, threads, nice, r, omp)) for r in results]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [r["images_per_s"] for r in results], [r["team"] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    omp = openmp_library()
    torch.set_num_threads(cores)
    variants = {"alone, all cores": (1, cores, 0), "alone, share": (1, threads_per_job(1, cores), 0),
                "two, shared": (2, None, 0), "two, per job": (2, threads_per_job(2, cores), 0),
                "two, per job, nice": (2, threads_per_job(2, cores), 10)}
    speeds: dict[str, list[float]] = {name: [] for name in variants}
    teams: dict[str, list] = {}
    print(f"{cores} cores, load average {os.getloadavg()[0]:.1f} (1 min); torch {torch.__version__}")
    for _ in range(args.rounds):
        for name, (jobs, threads, nice) in variants.items():
            torch.set_num_threads(cores)  # each variant starts from the same process-wide count
            per_job, teams[name] = run_jobs(jobs, threads, nice, args.steps, omp)
            speeds[name].append(sum(per_job) / jobs)
    alone = statistics.median(speeds["alone, share"])
    print(f"{'variant':<20} {'images/s per job':>17} {'× alone':>8} {'total images/s':>15} {'teams':>8}")
    for name, (jobs, _, _) in variants.items():
        speed = statistics.median(speeds[name])
        print(f"{name:<20} {speed:>17.0f} {speed / alone:>8.2f} {speed * jobs:>15.0f} {str(teams[name]):>8}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
