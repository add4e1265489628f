"""Load ResNet-18…152 on one device and time them side by side (the page's speed button).

    python benchmarks/zoo_speed.py [--device cuda] [--batch 32] [--image-size 224]

Prints per model: load time, weights, batch-1 latency, batch-N throughput, and each
model's cost and throughput relative to ResNet-18, measured in the same run.
"""

import argparse

from explorer.architecture import analyze
from explorer.devices import pick_device
from explorer.speed import measure_speed

DEPTHS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device={device} batch={args.batch} image={args.image_size}")
    print(f"{'model':10} {'weights':9} {'load s':>7} {'MB':>7} {'lat ms':>8} {'img/s':>8} "
          f"{'MACs×':>6} {'speed×':>7}")
    base = None
    for row in measure_speed(DEPTHS, device, batch_size=args.batch, image_size=args.image_size,
                             repeats=args.repeats):
        macs = analyze(row.name).macs
        base = base or (macs, row.throughput)
        print(f"{row.name:10} {'ImageNet' if row.trained else 'untrained':9} {row.load_s:7.2f} "
              f"{row.weights_mb:7.1f} {row.latency_ms:8.1f} {row.throughput:8.1f} "
              f"{macs / base[0]:6.2f} {row.throughput / base[1]:7.2f}")


if __name__ == "__main__":
    main()
