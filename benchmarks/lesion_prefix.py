"""The lesion study sharing its prefixes against the naive sweep, side by side in one run (issue 38).

    python benchmarks/lesion_prefix.py [--model resnet56-cifar10] [--images 250] [--rounds 2] [--draws 3]

Both run the same study (nothing removed, each block removed, then ``draws`` random subsets
for each k up to half the blocks) on the same images of the shipped evaluation pack:

* naive: ``lesion_study(reuse=False)``, one whole forward pass per lesion, the removed blocks
  computed and then zeroed by hooks (Veit et al. 2016's procedure, as the app ran it before);
* prefix: ``lesion_study()``, each activation its lesions share computed once
  (explorer/paper/inside/prefix.py), a removed block run as ReLU(shortcut(x)).

Rounds interleave the two (prefix, naive, naive, prefix, …) so a load that drifts on a shared
CPU weighs on both alike; the load average is printed before and after each. The two results
must be equal, exactly. Issue 38 asks for a ratio ≤ 0.6.
"""

import argparse
import os
import statistics
import time

import torch

from explorer.devices import machine_description
from explorer.paper.inside import lesion_study, load_probe, load_subject


def _load() -> str:
    """The load average as ``uptime`` prints it."""
    return "load average: " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet56-cifar10")
    parser.add_argument("--images", type=int, default=250, help="images of the shipped evaluation pack (one batch)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both, interleaved")
    parser.add_argument("--draws", type=int, default=3, help="random subsets per k (the app's default)")
    args = parser.parse_args()
    subject = load_subject(args.model)
    probe = load_probe(subject, "pack:cifar10-eval", args.images)
    print(f"{args.model} on {probe.source}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{machine_description('cpu')}; {_load()}")
    times: dict[str, list[float]] = {"prefix": [], "naive": []}
    results = {}
    for round_ in range(args.rounds):
        order = ("prefix", "naive") if round_ % 2 == 0 else ("naive", "prefix")
        for kind in order:
            started = time.perf_counter()
            results[kind] = lesion_study(subject, probe, draws=args.draws, reuse=kind == "prefix")
            times[kind].append(time.perf_counter() - started)
            print(f"round {round_ + 1}, {kind}: {times[kind][-1]:.1f} s ({_load()})", flush=True)
    assert results["prefix"] == results["naive"], "the two sweeps disagree"
    prefix, naive = statistics.median(times["prefix"]), statistics.median(times["naive"])
    print(f"median: prefix {prefix:.1f} s, naive {naive:.1f} s, ratio {prefix / naive:.2f} (issue 38: <= 0.6); "
          f"results equal; baseline error {100 * results['prefix'].baseline_error:.2f}%, "
          f"{results['prefix'].precision}; {_load()}")


if __name__ == "__main__":
    main()
