"""Load ResNet-18…152 on one device and time them side by side (the page's speed button).

    python benchmarks/zoo_speed.py [--device cuda] [--batch 32] [--image-size 224] [--threads 1]

Prints per model: load time, weights, batch-1 latency, batch-N throughput, and each
model's cost, throughput and arithmetic rate (MACs/s) relative to ResNet-18, measured in
the same run. Every depth is timed twice: with denormal floats flushed to zero (what the
Architecture page does) and without, for comparison.

What to expect: the MACs/s of every depth within about 2× of ResNet-18's, since all of
them are mostly 3×3 and 1×1 convolutions. A depth far outside that range was slowed by
something other than its arithmetic: denormal floats, or, on a CPU shared with other
processes, intra-op threads waiting for each other (compare ``--threads 1``).
"""

import argparse

import torch

from explorer.devices import pick_device
from explorer.paper.speed import measure_speed
from explorer.paper.table1 import analyze

DEPTHS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
MEASURED_SIDE = 224  # analyze() counts MACs at the models' own 224×224 input


def print_rows(rows, image_size: int) -> None:
    # Convolutions dominate the cost and scale with the image's area; the fc does not
    # (a ~0.1% error at 224).
    scale = (image_size / MEASURED_SIDE) ** 2
    print(f"{'model':10} {'weights':9} {'load s':>7} {'MB':>7} {'lat ms':>8} {'img/s':>8} "
          f"{'GMAC/s':>7} {'MACs×':>6} {'speed×':>7} {'MACs/s×':>8}")
    base = None
    for row in rows:
        macs = analyze(row.name).macs * scale
        rate = macs * row.throughput  # multiply-adds per second at batch N
        base = base or (macs, row.throughput, rate)
        print(f"{row.name:10} {'ImageNet' if row.trained else 'untrained':9} {row.load_s:7.2f} "
              f"{row.weights_mb:7.1f} {row.latency_ms:8.1f} {row.throughput:8.1f} {rate / 1e9:7.1f} "
              f"{macs / base[0]:6.2f} {row.throughput / base[1]:7.2f} {rate / base[2]:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    print(f"device={device} batch={args.batch} image={args.image_size} threads={torch.get_num_threads()}")
    for flush in (True, False):
        print(f"\ndenormals {'flushed to zero (as on the page)' if flush else 'not flushed'}:")
        rows = list(measure_speed(DEPTHS, device, batch_size=args.batch, image_size=args.image_size,
                                  repeats=args.repeats, flush_denormals=flush))
        print_rows(rows, args.image_size)


if __name__ == "__main__":
    main()
