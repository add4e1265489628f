"""``finetune``: transfer learning, a new head on a trained ResNet backbone."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from explorer import settings
from explorer.cli.parsing import CommandError, folder_option, ranged


def add_commands(commands: argparse._SubParsersAction) -> None:
    finetune = commands.add_parser("finetune", help="transfer learning: a new head on a trained ResNet backbone")
    finetune.add_argument("--backbone", default=None,
                          help="an ImageNet ResNet with weights or a shipped checkpoint; default: the best one here")
    finetune.add_argument("--data", default=None,
                          help="pack:cifar10-demo (6,000 real CIFAR-10 images of 3 classes, +300 held out, shipped "
                               "with the app), cifar10 (torchvision's download), folder:PATH or synthetic[:N]; "
                               "default: CIFAR-10 when a folder is found (EXPLORER_CIFAR10_DIR, ../shared/data/"
                               "cifar10/train or torchvision's cache), else pack:cifar10-demo. The first line "
                               "printed says which")
    finetune.add_argument("--out", type=Path, default=None,
                          help="folder for the safetensors file and its manifest (default: pretrained/finetuned)")
    finetune.add_argument("--name", default=None, help="the saved model's name (default: backbone-head-data)")
    # TrainPart's values (explorer.transfer.recipe, not imported here: it loads torch, and --help
    # stays instant); tests/test_transfer.py keeps the two equal.
    finetune.add_argument("--train", choices=("head", "last stage", "all"), default="head",
                          help='what learns: "head" (backbone frozen, features cached), "last stage", "all"')
    finetune.add_argument("--head", choices=("linear", "seed"), default="linear",
                          help="linear, or seed: the notebook's BN-Dense-Dropout stack")
    finetune.add_argument("--upsample", type=ranged(settings.UPSAMPLE, "upsample"), default=None,
                          help="enlarge the images by this factor (default: 7 for ImageNet backbones, else 1)")
    finetune.add_argument("--image-size", type=ranged(settings.IMAGE_SIZE), default=32,
                          help="side the data set is decoded at (default 32)")
    finetune.add_argument("--epochs", type=ranged(settings.FINETUNE_EPOCHS), default=5)
    finetune.add_argument("--batch-size", type=ranged(settings.BATCH_SIZE), default=128)
    finetune.add_argument("--lr", type=ranged(settings.LEARNING_RATE), default=1e-2,
                          help="Adam learning rate of the head (default 0.01)")
    finetune.add_argument("--limit", type=ranged(settings.TRAIN_IMAGES), default=None,
                          help="use only this many training images")
    finetune.add_argument("--erasing", type=ranged(settings.ERASING_P), default=0.0,
                          help="random-erasing probability (turns caching off)")
    finetune.add_argument("--no-cache", action="store_true", help="run the backbone at every step (for comparison)")
    finetune.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    finetune.set_defaults(run=_cmd_finetune)


def _cmd_finetune(args: argparse.Namespace) -> None:
    # deferred: torch, so --help stays instant
    from explorer.data import DataError
    from explorer.store.checkpoints import finetuned_dir
    from explorer.store.classifiers import ClassifierError
    from explorer.transfer.finetune import default_backbone_name, default_upsample

    backbone = args.backbone or default_backbone_name()
    if backbone is None:
        raise CommandError("No backbone with trained weights here: restore pretrained/ (git checkout pretrained) "
                           "or get ImageNet weights (python -m explorer weights download resnet50).")
    args.out = folder_option(args.out or finetuned_dir(), "--out")
    if args.upsample is None:
        args.upsample = default_upsample(backbone)
    try:
        run, entry = _finetune_and_save(args, backbone)
    except (ValueError, ClassifierError, DataError, OSError) as error:
        raise CommandError(str(error)) from error
    result = run.result
    print(f"{entry.key}: validation accuracy {100 * result.val_accuracy:.1f}% after {result.epochs_done} epochs, "
          f"{result.wall_time_s:.1f} s on {result.device}; saved {args.out / entry.file} (+ manifest.json)")
    if args.out.resolve() != finetuned_dir().resolve():
        print(f"note: the app and `classify` list fine-tuned models from {finetuned_dir()}; copy both files there.")


def _finetune_and_save(args: argparse.Namespace, backbone: str):
    """Check the settings before minutes of loading, train with progress on stderr, save."""
    # deferred: torch, so --help stays instant
    from explorer.data import Augmentation, check_source, load_data
    from explorer.devices import pick_device
    from explorer.paper.degradation import data_label, default_training_source
    from explorer.store.classifiers import load_classifier
    from explorer.transfer.finetune import (
        FinetuneConfig,
        Finetuning,
        backbone_names,
        cache_explanation,
        check_finetune_config,
        check_save_name,
        save_finetuned,
        suggested_key,
    )
    from explorer.transfer.recipe import seen_images_note

    config = FinetuneConfig(
        backbone=backbone, data=args.data or default_training_source(), upsample=args.upsample, train=args.train, head=args.head,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, cache_features=not args.no_cache,
        augmentation=Augmentation(pad=0, flip=False, erasing_p=args.erasing), train_limit=args.limit,
        data_size=args.image_size)
    check_finetune_config(config)  # before minutes of loading, not after; refuses the evaluation pack
    check_source(config.data)  # synthetic:N in its range, a known kind of source
    name = check_save_name(args.name or suggested_key(config, args.out), args.out)  # a taken name: refused now
    print(f"data: {data_label(config.data)} ({config.data})", file=sys.stderr)
    if note := seen_images_note(backbone, config.data):
        print(f"note: {note}", file=sys.stderr)
    if backbone not in backbone_names():
        load_classifier(backbone)  # says why (no weights, unknown name)
        raise CommandError(f"{backbone} cannot be a backbone (it has no fc layer to replace); "
                           f"use one of: {', '.join(backbone_names())}.")
    device = pick_device(args.device)
    print(f"loading {config.data} ({config.data_size}×{config.data_size}) …", file=sys.stderr)
    data = load_data(config.data, image_size=config.data_size, seed=config.seed)
    run = Finetuning(config, data, device)
    print(f"{backbone} -> {config.head} head on {len(data.classes)} classes, input "
          f"{config.input_size}×{config.input_size}, training {config.train}. {cache_explanation(config)}",
          file=sys.stderr)
    _print_progress(run)
    return run, save_finetuned(run.result, config, name, folder=args.out)


def _print_progress(run) -> None:
    """One line per epoch, and a counter of images (feature caching) or steps in between."""
    started, phase = time.perf_counter(), None
    for step in run.steps():
        if step.phase != phase:
            phase = step.phase
            print(file=sys.stderr)
        if step.val_accuracy is not None:
            line = (f"epoch {round(step.epoch)}: train accuracy {100 * step.train_accuracy:.1f}%, validation "
                    f"accuracy {100 * step.val_accuracy:.1f}% ({time.perf_counter() - started:.1f} s)")
            print(f"\r{line:<72}", file=sys.stderr)
        elif step.done == step.total or step.done % 20 == 0:
            unit = "images through the backbone" if phase == "features" else "steps"
            print(f"\r{step.done:,}/{step.total:,} {unit}", end="", file=sys.stderr)
