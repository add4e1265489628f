"""``train``: CIFAR plain/residual nets in lock-step (the degradation lab, §4.2), resumable.

This module turns the flags into a :class:`explorer.train.TrainConfig` and chooses one
process or torchrun; :mod:`explorer.cli.training_run` runs the steps and reports them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from explorer.cli.common import CommandError
from explorer.cli.training_run import train_and_save

# explorer.train_config.PRESETS' names (a test keeps them equal): importing it here would load
# torch for every `--help`.
PRESET_NAMES = ("demo", "paper", "fig6")


def add_commands(commands: argparse._SubParsersAction) -> None:
    training = commands.add_parser("train", help="train CIFAR plain/residual nets in lock-step (degradation lab)")
    _add_recipe_arguments(training)
    _add_run_arguments(training)
    training.set_defaults(run=_cmd_train)


def _add_recipe_arguments(training: argparse.ArgumentParser) -> None:
    """What is trained, on what, and how: these become the TrainConfig."""
    training.add_argument("--models", default=None,
                          help="comma-separated CIFAR nets (default: the preset's; plain20,plain56,resnet20,"
                               "resnet56 for demo and paper, the eight of Fig. 6 for fig6)")
    training.add_argument("--data", default="synthetic", help="synthetic, cifar10 or folder:PATH")
    training.add_argument("--preset", default="demo", choices=PRESET_NAMES,
                          help="demo (the class demo's sizes), paper (§4.2) or fig6 (Fig. 6's eight nets)")
    training.add_argument("--steps", type=int, default=None,
                          help="override the preset's step count (with --resume: extend the run to N steps)")
    training.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    training.add_argument("--lr", type=float, default=None, help="override the preset's learning rate")
    training.add_argument("--shortcut", default="A", choices=["A", "B"])
    training.add_argument("--erasing", type=float, default=0.0, metavar="P",
                          help="random-erasing probability (0 = off, the paper's recipe)")
    training.add_argument("--seed", type=int, default=None, help="the first seed (default: the preset's)")
    training.add_argument("--repeat", type=int, default=1, metavar="K",
                          help="train every model with seeds SEED…SEED+K−1, in lock-step (default 1)")
    training.add_argument("--schedule", default=None, choices=["steps", "cosine", "onecycle"],
                          help="learning-rate schedule: steps (§4.2, ÷10 at 50%% and 75%%), cosine or onecycle")
    training.add_argument("--label-smoothing", type=float, default=None, help="e.g. 0.1 (default 0: the paper)")
    training.add_argument("--nesterov", action="store_true", help="Nesterov momentum (the paper: plain momentum)")
    training.add_argument("--weight-decay", type=float, default=None, help="override the preset's 1e-4 (§4.2)")
    training.add_argument("--milestones", default=None, metavar="S1,S2",
                          help="steps where the rate drops ÷10 (default: the preset's, moved with --steps)")
    training.add_argument("--warmup-steps", type=int, default=None, help="ramp the rate up linearly over N steps")
    training.add_argument("--val-every", type=int, default=None, help="steps between validation passes")
    training.add_argument("--classes", default=None, help="comma-separated class names to train on (default: all)")
    training.add_argument("--train-limit", type=int, default=None, help="train on the first N training images only")
    training.add_argument("--no-channels-last", action="store_true", help="contiguous NCHW activations")
    training.add_argument("--compile", action="store_true",
                          help="torch.compile every model: ~30 s to start, pays back in long runs at paper "
                               "width (benchmarks/engine_speed.py); also allowed with --resume")
    training.add_argument("--amp", default=None, choices=["off", "auto", "bf16", "fp16"],
                          help="mixed precision: bf16 (CUDA or CPU), fp16 (CUDA), auto (bf16 where the device "
                               "has it in hardware; the demo preset's default)")
    training.add_argument("--model-threads", type=int, default=None, metavar="N",
                          help="train the lock-step models in N threads at once, balanced by depth and "
                               "sharing the cores (small nets on CPU; the demo preset uses 2)")


def _add_run_arguments(training: argparse.ArgumentParser) -> None:
    """Where it runs and what it writes (record, checkpoints, resumable state)."""
    training.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    training.add_argument("--out", type=Path, default=None,
                          help="run record to write (JSON; default run.json, or the resumed run's)")
    training.add_argument("--width", type=int, default=None, help="override the preset's first-stage filters")
    training.add_argument("--image-size", type=int, default=None, help="override the preset's image size")
    training.add_argument("--save-dir", type=Path, default=None,
                          help="save each trained model as safetensors + manifest entry here (e.g. pretrained)")
    training.add_argument("--state", type=Path, default=None, metavar="DIR",
                          help="keep a resumable training state in DIR (written every --state-every steps, "
                               "at the end and at Ctrl-C)")
    training.add_argument("--state-every", type=int, default=None, metavar="N",
                          help="steps between states (default: about every 5 minutes)")
    training.add_argument("--resume", type=Path, default=None, metavar="DIR",
                          help="continue the run whose state is in DIR (its config; --steps may extend it)")


def _cmd_train(args: argparse.Namespace) -> None:
    from explorer.devices import pick_device
    from explorer.distributed import launch_from_environment
    from explorer.distributed import start as start_distributed
    from explorer.distributed import stop as stop_distributed
    from explorer.train import check_config

    saved = None
    if args.resume is not None:
        config, saved = _resumed_config(args)
    else:
        config = _config_from_args(args)
    check_config(config)
    launch = launch_from_environment()  # set by torchrun
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


def _config_from_args(args: argparse.Namespace):
    from explorer.train import preset

    overrides = {"data": args.data, "shortcut": args.shortcut, "repeat": args.repeat}
    if args.models is not None:
        overrides["models"] = tuple(n.strip() for n in args.models.split(",") if n.strip())
    for option in ("steps", "batch_size", "width", "image_size", "schedule", "label_smoothing", "lr", "amp",
                   "weight_decay", "warmup_steps", "val_every", "train_limit", "model_threads", "seed"):
        if getattr(args, option) is not None:
            overrides[option] = getattr(args, option)
    for switch in ("nesterov", "compile"):
        if getattr(args, switch):
            overrides[switch] = True
    if args.milestones:
        overrides["milestones"] = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    if args.classes:
        overrides["classes"] = tuple(name.strip() for name in args.classes.split(",") if name.strip())
    if args.no_channels_last:
        overrides["channels_last"] = False
    config = preset(args.preset, **overrides)
    if args.erasing:  # added to the preset's crop and flip
        config = replace(config, augmentation=replace(config.augmentation, erasing_p=args.erasing))
    return config


def _resumed_config(args: argparse.Namespace):
    """The config saved in ``--resume DIR``, with ``--steps`` extending the run: the schedule
    keeps its length (and the rate its last value after it), nothing done is moved.
    ``--compile`` may be switched on for the rest of the run."""
    from dataclasses import replace

    from explorer.state import load_state

    saved = load_state(args.resume)
    config = saved.config
    if args.steps is not None and args.steps != config.steps:
        if args.steps < saved.step:
            raise CommandError(f"{args.resume} is already at step {saved.step:,}; --steps must be at least that.")
        config = replace(config, steps=args.steps, schedule_steps=config.schedule_length)
    if args.compile:  # a speed switch, not part of the recipe: a long run may take it up when resumed
        config = replace(config, compile=True)
    return config, saved
