"""``train``: CIFAR plain/residual nets in lock-step (the degradation lab, §4.2), resumable.

This module turns the flags into a :class:`explorer.training.engine.TrainConfig` and chooses one
process or torchrun; :mod:`explorer.cli.training_run` runs the steps and reports them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from explorer import settings
from explorer.cli.parsing import CommandError, folder_option, ranged, ranged_list, writable_file
from explorer.cli.training_run import train_and_save

# explorer.training.recipe.PRESETS' names (a test keeps them equal): importing it here would load
# torch for every `--help`.
PRESET_NAMES = ("demo", "paper", "fig6")
CIFAR10_ENV = "EXPLORER_CIFAR10_DIR"  # explorer.settings.CIFAR10_DIR_ENV (a test keeps them equal), for --help
# Where a resumed run writes its record without --out: beside its state, inside the folder the
# user named. Never the path stored in the state: a state file is data, and a crafted one
# could otherwise name any file the user may write.
RESUMED_RECORD = "run.json"


def add_commands(commands: argparse._SubParsersAction) -> None:
    training = commands.add_parser("train", help="train CIFAR plain/residual nets in lock-step (degradation lab)")
    _add_recipe_arguments(training)
    _add_run_arguments(training)
    training.set_defaults(run=_cmd_train)


def _add_recipe_arguments(training: argparse.ArgumentParser) -> None:
    """What is trained, on what, and how: these become the TrainConfig (the last four flags
    its engine switches, which change the speed, not the recipe)."""
    training.add_argument("--models", default=None,
                          help="comma-separated CIFAR nets (default: the preset's; plain20,plain56,resnet20,"
                               "resnet56 for demo and paper, the eight of Fig. 6 for fig6)")
    training.add_argument("--data", default=None,
                          help="pack:cifar10-demo (6,000 real CIFAR-10 images of 3 classes, +300 held out, shipped "
                               "with the app), cifar10 (torchvision's download), folder:PATH or synthetic[:N]; "
                               f"default: CIFAR-10 when a folder is found (${CIFAR10_ENV}, ../shared/data/cifar10/"
                               "train or torchvision's cache), else pack:cifar10-demo. The first line printed "
                               "says which")
    training.add_argument("--preset", default="demo", choices=PRESET_NAMES,
                          help="demo (the class demo's sizes), paper (§4.2) or fig6 (Fig. 6's eight nets)")
    training.add_argument("--steps", type=ranged(settings.EXTENDED_STEPS), default=None,
                          help=f"override the preset's step count, up to {settings.STEPS.high:,} (with --resume: "
                               f"extend the run to N steps, up to {settings.EXTENDED_STEPS.high:,})")
    training.add_argument("--batch-size", type=ranged(settings.BATCH_SIZE), default=None,
                          help="override the preset's batch size")
    training.add_argument("--lr", type=ranged(settings.LEARNING_RATE), default=None,
                          help="override the preset's learning rate")
    training.add_argument("--shortcut", default="A", choices=["A", "B"])
    training.add_argument("--erasing", type=ranged(settings.ERASING_P), default=0.0, metavar="P",
                          help="random-erasing probability (0 = off, the paper's recipe)")
    training.add_argument("--seed", type=ranged(settings.SEED), default=None, help="the first seed (default: the preset's)")
    training.add_argument("--repeat", type=ranged(settings.REPEAT), default=1, metavar="K",
                          help="train every model with seeds SEED…SEED+K−1, in lock-step (default 1)")
    training.add_argument("--schedule", default=None, choices=["steps", "cosine", "onecycle"],
                          help="learning-rate schedule: steps (§4.2, ÷10 at 50%% and 75%%), cosine or onecycle")
    training.add_argument("--label-smoothing", type=ranged(settings.LABEL_SMOOTHING), default=None,
                          help="e.g. 0.1 (default 0: the paper)")
    training.add_argument("--nesterov", action="store_true", help="Nesterov momentum (the paper: plain momentum)")
    training.add_argument("--weight-decay", type=ranged(settings.WEIGHT_DECAY), default=None,
                          help="override the preset's 1e-4 (§4.2)")
    training.add_argument("--milestones", type=ranged_list(settings.MILESTONE, settings.MILESTONES), default=None,
                          metavar="S1,S2",
                          help="steps where the rate drops ÷10 (default: the preset's, moved with --steps)")
    training.add_argument("--warmup-steps", type=ranged(settings.WARMUP_STEPS), default=None,
                          help="ramp the rate up linearly over N steps")
    training.add_argument("--val-every", type=ranged(settings.VAL_EVERY), default=None,
                          help="steps between validation passes")
    training.add_argument("--classes", default=None, help="comma-separated class names to train on (default: all)")
    training.add_argument("--train-limit", type=ranged(settings.TRAIN_IMAGES), default=None,
                          help="train on the first N training images only")
    training.add_argument("--no-channels-last", action="store_true", help="contiguous NCHW activations")
    training.add_argument("--compile", action="store_true",
                          help="torch.compile every model: ~30 s to start, pays back in long runs at paper "
                               "width (benchmarks/engine_speed.py); also allowed with --resume")
    training.add_argument("--amp", default=None, choices=["off", "auto", "bf16", "fp16"],
                          help="mixed precision: bf16 (CUDA or CPU), fp16 (CUDA), auto (bf16 where the device "
                               "has it in hardware; the demo preset's default)")
    training.add_argument("--model-threads", type=ranged(settings.MODEL_THREADS), default=None, metavar="N",
                          help="train the lock-step models in N threads at once, balanced by depth and "
                               "sharing the cores (small nets on CPU; the demo preset uses 2)")


def _add_run_arguments(training: argparse.ArgumentParser) -> None:
    """Where it runs and what it writes (record, checkpoints, resumable state)."""
    training.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    training.add_argument("--out", type=Path, default=None,
                          help=f"run record to write (JSON; default: run.json in the current folder, and with "
                               f"--resume DIR, DIR/{RESUMED_RECORD}, never a path read from the state)")
    training.add_argument("--width", type=ranged(settings.WIDTH), default=None,
                          help="override the preset's first-stage filters")
    training.add_argument("--image-size", type=ranged(settings.IMAGE_SIZE), default=None,
                          help="override the preset's image size")
    training.add_argument("--save-dir", type=Path, default=None,
                          help="save each trained model as safetensors + manifest entry here (e.g. pretrained)")
    training.add_argument("--state", type=Path, default=None, metavar="DIR",
                          help="keep a resumable training state in DIR (written every --state-every steps, "
                               "at the end and at Ctrl-C)")
    training.add_argument("--state-every", type=ranged(settings.STATE_EVERY), default=None, metavar="N",
                          help="steps between states (default: about every 5 minutes)")
    training.add_argument("--resume", type=Path, default=None, metavar="DIR",
                          help="continue the run whose state is in DIR (its config; --steps may extend it)")


def _cmd_train(args: argparse.Namespace) -> None:
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.devices import pick_device
    from explorer.training.distributed import launch_from_environment
    from explorer.training.distributed import start as start_distributed
    from explorer.training.distributed import stop as stop_distributed
    from explorer.training.engine import check_config

    saved = None
    _check_paths(args)  # before the state is read or any data loads: a wrong path costs nothing
    if args.resume is not None:
        config, saved = _resumed_config(args)
    else:
        config = _config_from_args(args)
    check_config(config)  # the evaluation pack (no training images) is refused here, before anything loads
    launch = launch_from_environment()  # set by torchrun
    if launch is None or launch.is_main:
        print(f"data: {_data_label(config.data)} ({config.data})", file=sys.stderr)
    if launch is None:
        train_and_save(args, config, pick_device(args.device), saved=saved)
        return
    if args.state is not None or saved is not None:
        raise CommandError("--state and --resume work in one process; run without torchrun to keep a state.")
    if config.batch_size % launch.world_size:  # refuse before any process waits on another
        raise CommandError(f"The batch size ({config.batch_size}) must divide evenly over the "
                           f"{launch.world_size} processes.")
    device = start_distributed(launch, args.device)
    try:
        if launch.is_main:
            print(f"torchrun: {launch.world_size} processes on {device.type}, "
                  f"{config.batch_size // launch.world_size} images each per step", file=sys.stderr)
        train_and_save(args, config, device, main=launch.is_main)
    finally:
        stop_distributed()


def _data_label(source: str) -> str:
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.paper.degradation import data_label

    try:
        return data_label(source)
    except ValueError:  # a source check_config refused has no label; its own message follows
        return source


def _config_from_args(args: argparse.Namespace):
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.paper.degradation import default_training_source
    from explorer.training.engine import preset

    data = args.data if args.data is not None else default_training_source()
    overrides = {"data": data, "shortcut": args.shortcut, "repeat": args.repeat}
    if args.models is not None:
        overrides["models"] = tuple(n.strip() for n in args.models.split(",") if n.strip())
    for option in ("steps", "batch_size", "width", "image_size", "schedule", "label_smoothing", "lr",
                   "weight_decay", "warmup_steps", "val_every", "train_limit", "seed"):
        if getattr(args, option) is not None:
            overrides[option] = getattr(args, option)
    if args.nesterov:
        overrides["nesterov"] = True
    if args.milestones:  # parsed and checked by ranged_list; empty: the preset's
        overrides["milestones"] = args.milestones
    if args.classes:
        overrides["classes"] = tuple(name.strip() for name in args.classes.split(",") if name.strip())
    config = preset(args.preset, **overrides)
    if args.erasing:  # added to the preset's crop and flip
        config = replace(config, augmentation=replace(config.augmentation, erasing_p=args.erasing))
    return config.with_engine(**_engine_switches(args))


def _engine_switches(args: argparse.Namespace) -> dict:
    """The speed flags that were given (the preset's switches otherwise): how the recipe runs."""
    switches = {option: getattr(args, option) for option in ("amp", "model_threads")
                if getattr(args, option) is not None}
    if args.compile:
        switches["compile"] = True
    if args.no_channels_last:
        switches["channels_last"] = False
    return switches


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse paths that cannot be written (a folder for --out, a file for --state) before
    hours of training, and fix where the run record goes: ``--out``, else ``run.json`` here,
    else (``--resume DIR``) ``DIR/run.json``."""
    for flag, folder in (("--resume", args.resume), ("--state", args.state), ("--save-dir", args.save_dir)):
        if folder is not None:
            folder_option(folder, flag)
    if args.out is None:
        args.out = args.resume / RESUMED_RECORD if args.resume is not None else Path("run.json")
    writable_file(args.out, "--out")


def _resumed_config(args: argparse.Namespace):
    """The config saved in ``--resume DIR``, with ``--steps`` extending the run: the schedule
    keeps its length (and the rate its last value after it), nothing done is moved.
    ``--compile`` may be switched on for the rest of the run."""
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.store.state import load_state

    saved = load_state(args.resume)  # every field checked (types, ranges, keys) before anything loads
    config = saved.config
    out = getattr(args, "out", None)
    if saved.out and out is not None and Path(saved.out) != out:  # a hint only: never a write target
        print(f"note: this run began with --out {saved.out[:300]!r}; its record now goes to {out} "
              "(pass --out to choose)", file=sys.stderr)
    if args.steps is not None and args.steps != config.steps:
        if args.steps < saved.step:
            raise CommandError(f"{args.resume} is already at step {saved.step:,}; --steps must be at least that.")
        config = replace(config, steps=args.steps, schedule_steps=config.schedule_length)
    if args.compile:  # a speed switch, not part of the recipe: a long run may take it up when resumed
        config = config.with_engine(compile=True)
    return config, saved
