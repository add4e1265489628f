"""Head-only fine-tuning with and without cached backbone features, side by side.

    python benchmarks/finetune_cache.py [--data folder:../shared/data/cifar10/train]
        [--backbone resnet20-cifar10] [--epochs 5] [--upsample 1] [--limit N] [--device cuda]

Both runs train the same head from the same seed on the same batches; the cached run
computes the frozen backbone's features once, the other runs the backbone at every step.
Prints each run's validation accuracy and wall time (data loading excluded) and the
speed-up, measured in the same run.
"""

import argparse
from dataclasses import replace

from explorer.data import load_data
from explorer.devices import pick_device
from explorer.transfer.finetune import FinetuneConfig, default_backbone_name, finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic:5000")
    parser.add_argument("--backbone", default=None, help="default: the best backbone with weights here")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--upsample", type=int, default=1)
    parser.add_argument("--head", default="linear", choices=("linear", "seed"))
    parser.add_argument("--limit", type=int, default=None, help="training images to use (default: all)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = pick_device(args.device)
    config = FinetuneConfig(backbone=args.backbone or default_backbone_name(), data=args.data, epochs=args.epochs,
                            upsample=args.upsample, head=args.head, train_limit=args.limit)
    data = load_data(config.data, image_size=config.data_size, seed=config.seed)
    print(f"{config.backbone}, {config.head} head, {args.data}: {min(len(data.train_labels), args.limit or 10**9):,} "
          f"training / {len(data.val_labels):,} validation images at {config.input_size}×{config.input_size}, "
          f"{config.epochs} epochs on {device}")
    finetune(replace(config, epochs=1, train_limit=1024), data, device)  # warm-up: first calls are slow
    cached = finetune(config, data, device)
    uncached = finetune(replace(config, cache_features=False), data, device)
    for label, result in (("cached features", cached), ("backbone every step", uncached)):
        print(f"{label:20} validation accuracy {100 * result.val_accuracy:5.1f}%   {result.wall_time_s:7.1f} s")
    print(f"speed-up of caching: {uncached.wall_time_s / cached.wall_time_s:.1f}×")


if __name__ == "__main__":
    main()
