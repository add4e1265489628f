"""Does a page's classify call wait behind training? Its latency idle and with one job running.

    python benchmarks/classify_latency.py [--requests 40] [--model resnet20-cifar10]

The inspect page classifies the shipped samples (four images, one batch) and runs Grad-CAM
on one; each page run is a new Streamlit script thread. This script times those calls, each
in a fresh thread as a page run would make them, in four settings, in one run:

1. ``idle``: nothing else in this process;
2. ``job, unscheduled``: the class demo (explorer.paper.degradation.class_demo_config, on the synthetic set)
   training in a thread the way the lab started it before the scheduler: the process-wide
   thread count set to the cores but one, normal priority;
3. ``job, scheduled``: the same job inside :meth:`explorer.server.scheduler.Scheduler.slot`: its
   share of the threads and its thread at nice +10, calling ``ticket.pace()`` between steps;
4. ``idle`` again, to see how much the machine's own load drifted meanwhile.

Prints p50 and p95 in milliseconds and p95 against the first idle p95. Goal (issue 16):
classify p95 with one job training ≤ 3× idle. Check ``uptime`` first: other processes on
the machine are not in either column and move both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import torch

from explorer.data.images import read_image_file, sample_images
from explorer.paper.degradation import class_demo_config
from explorer.paper.gradcam import explain
from explorer.server.scheduler import Scheduler
from explorer.store.classifiers import RecentResults, load_classifier
from explorer.training.engine import Training, load_training_data


def in_fresh_thread(call) -> float:
    """Seconds ``call()`` takes in a new thread (a Streamlit page run is one)."""
    seconds = []

    def timed():
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)

    thread = threading.Thread(target=timed)
    thread.start()
    thread.join()
    return seconds[0]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=20, method="inclusive")
    return statistics.median(seconds) * 1000, cuts[18] * 1000


def measure(classifier, images, requests: int) -> dict[str, list[float]]:
    times = {"classify": [], "grad-cam": []}
    for _ in range(requests):
        times["classify"].append(in_fresh_thread(lambda: classifier.predict(images)))
        times["grad-cam"].append(in_fresh_thread(lambda: explain(classifier, images[0])))
        time.sleep(0.05)  # a student reads the page between clicks
    return times


def training_job(data, stop: threading.Event, started: threading.Event, scheduler: Scheduler | None) -> None:
    training = Training(class_demo_config("synthetic"), data)
    if scheduler is None:
        started.set()
        for _ in training.steps(stop):
            pass
        return
    with scheduler.slot("demo") as ticket:
        started.set()
        for _ in training.steps(stop):
            ticket.pace()


def with_job(classifier, images, requests: int, data, scheduler: Scheduler | None) -> dict[str, list[float]]:
    stop, started = threading.Event(), threading.Event()
    job = threading.Thread(target=training_job, args=(data, stop, started, scheduler))
    job.start()
    started.wait()
    time.sleep(2.0)  # past the first steps' warm-up
    try:
        return measure(classifier, images, requests)
    finally:
        stop.set()
        job.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--model", default="resnet20-cifar10")
    args = parser.parse_args()
    classifier = load_classifier(args.model, allow_untrained=True)
    # Remember nothing: every request runs the model, as a new photo would (the app's
    # classifiers answer a photo seen recently from memory, which would time nothing here).
    classifier.probabilities_of = classifier.explanations = RecentResults(0)
    images = [read_image_file(path) for path in list(sample_images().values())[:4]]
    data = load_training_data(class_demo_config("synthetic"))
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # what the lab did before the scheduler; the idle default
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (1 min), torch threads "
          f"{torch.get_num_threads()}; {args.requests} requests each, each in a fresh thread")
    settings = {
        "idle": lambda: measure(classifier, images, args.requests),
        "job, unscheduled": lambda: with_job(classifier, images, args.requests, data, None),
        "job, scheduled": lambda: with_job(classifier, images, args.requests, data, Scheduler(max_jobs=1)),
        "idle again": lambda: measure(classifier, images, args.requests),
    }
    results = {name: run() for name, run in settings.items()}
    idle_p95 = {call: percentiles(results["idle"][call])[1] for call in ("classify", "grad-cam")}
    print(f"{'setting':<18} {'call':<9} {'p50 ms':>8} {'p95 ms':>8} {'p95 × idle':>11}")
    for name, times in results.items():
        for call, seconds in times.items():
            p50, p95 = percentiles(seconds)
            print(f"{name:<18} {call:<9} {p50:>8.1f} {p95:>8.1f} {p95 / idle_p95[call]:>11.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
