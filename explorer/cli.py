"""``python -m explorer …``: the same core the pages use, from a terminal.

The library never prints; this module decides how results look (a text table, or JSON
with ``--json``). User mistakes end in one line on stderr and exit status 2, never in a
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from explorer import __version__


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_models(args: argparse.Namespace) -> None:
    from explorer.architecture import zoo_row
    from explorer.checkpoints import best_checkpoints, trained_label
    from explorer.models import list_models
    from explorer.weights import weights_status

    trained = best_checkpoints()
    entries = []
    for spec in list_models():
        row = zoo_row(spec.name)
        status = weights_status(spec)
        entries.append({
            "name": row.name, "family": spec.family, "depth": row.depth, "block": row.block,
            "params": row.params, "macs": round(row.gmacs * 1e9), "gmacs": round(row.gmacs, 3),
            "paper_gmacs": row.paper_gmacs, "imagenet_top1": row.imagenet_top1,
            "paper_top1_error": row.paper_top1_error,
            "weights": "present" if status.present else ("missing" if status.filename else "none published"),
            "checkpoint": trained[spec.name].key if spec.name in trained else None,
            "checkpoint_val_error": trained[spec.name].val_error if spec.name in trained else None,
            "trained_here": trained_label(trained.get(spec.name)),
        })
    if args.json:
        print(json.dumps(entries, indent=2))
        return
    print(_table(
        ["name", "depth", "block", "params", "GMACs", "paper", "ImageNet top-1 %", "weights", "trained here (val error)"],
        [[e["name"], e["depth"], e["block"], f"{e['params']:,}", f"{e['gmacs']:.2f}",
          e["paper_gmacs"], e["imagenet_top1"], e["weights"], e["trained_here"]] for e in entries],
    ))
    print("\nGMACs: multiply-accumulates for one image at the model's input size "
          "(what the paper calls FLOPs); BatchNorm, ReLU, pooling and additions are not counted.")


def _cmd_arch(args: argparse.Namespace) -> None:
    from explorer.architecture import analyze

    analysis = analyze(args.name)
    if args.json:
        print(json.dumps({
            "name": analysis.spec.name,
            "input_size": list(analysis.spec.input_size),
            "rows": [asdict(row) for row in analysis.stages],
            "total_params": analysis.params,
            "total_macs": analysis.macs,
        }, indent=2))
        return
    print(f"{analysis.spec.name}: {analysis.spec.summary} (untrained architecture, "
          f"input {'×'.join(map(str, analysis.spec.input_size))})\n")
    print(_table(
        ["stage", "output size", "blocks", "params", "GMACs"],
        [[r.stage, r.output_size, r.blocks, f"{r.params:,}", f"{r.macs / 1e9:.3f}"] for r in analysis.stages],
    ))
    print(f"\ntotal: {analysis.params:,} parameters, {analysis.macs / 1e9:.3f} GMACs")


def _cmd_weights_list(args: argparse.Namespace) -> None:
    from explorer.models import list_models
    from explorer.weights import search_dirs, weights_status

    statuses = [weights_status(spec) for spec in list_models() if spec.weights is not None]
    if args.json:
        print(json.dumps([{"name": s.name, "file": s.filename, "path": str(s.path) if s.path else None}
                          for s in statuses], indent=2))
        return
    print(_table(["model", "file", "where"],
                 [[s.name, s.filename, s.path or "missing"] for s in statuses]))
    print("\nSearched: " + ", ".join(map(str, search_dirs())))
    if not all(s.present for s in statuses):
        print("Get missing files with: python -m explorer weights download NAME [NAME ...]")


def _cmd_weights_download(args: argparse.Namespace) -> None:
    from explorer.models import get_model_spec
    from explorer.weights import WeightsError, download_weights

    failures = []
    for name in args.names:
        get_model_spec(name)  # unknown names fail before any download starts
    for name in args.names:
        try:
            path = download_weights(name, dest=args.dir, progress=not args.quiet)
            print(f"{name}: saved {path}")
        except WeightsError as error:
            failures.append(f"{name}: {error}")
    if failures:
        raise CommandError("\n".join(failures))


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
        _train_and_save(args, config, pick_device(args.device), saved=saved)
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
        _train_and_save(args, config, device, main=launch.is_main)
    finally:
        stop_distributed()


def _config_from_args(args: argparse.Namespace):
    from explorer.train import preset

    overrides = {"models": tuple(n.strip() for n in args.models.split(",") if n.strip()), "data": args.data,
                 "shortcut": args.shortcut, "seed": args.seed, "repeat": args.repeat}
    for option in ("steps", "batch_size", "width", "image_size", "schedule", "label_smoothing", "lr", "amp",
                   "weight_decay", "warmup_steps", "val_every", "train_limit", "model_threads"):
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
    if args.erasing:
        from explorer.data import Augmentation

        overrides["augmentation"] = Augmentation(erasing_p=args.erasing)
    return preset(args.preset, **overrides)


def _resumed_config(args: argparse.Namespace):
    """The config saved in ``--resume DIR``, with ``--steps`` extending the run: the schedule
    keeps its length (and the rate its last value after it), nothing done is moved."""
    from dataclasses import replace

    from explorer.state import load_state

    saved = load_state(args.resume)
    config = saved.config
    if args.steps is not None and args.steps != config.steps:
        if args.steps < saved.step:
            raise CommandError(f"{args.resume} is already at step {saved.step:,}; --steps must be at least that.")
        config = replace(config, steps=args.steps, schedule_steps=config.schedule_length)
    return config, saved


class _GracefulStop:
    """The first Ctrl-C (or SIGTERM) stops at the end of the current step, so the state
    written then is a whole step; a second one interrupts at once."""

    def __init__(self):
        import signal
        import threading

        self.event = threading.Event()
        self._signal = signal
        self._previous = {}
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print("\nstopping after this step (again to interrupt at once)", file=sys.stderr)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            self._signal.signal(number, handler)


def _train_and_save(args: argparse.Namespace, config, device, main: bool = True, saved=None) -> None:
    """Train (or continue ``saved``); the main process (rank 0 under torchrun) reports,
    records, keeps the resumable state and saves."""
    import threading
    import time

    from explorer.data import DataError
    from explorer.runs import new_record, save_run
    from explorer.state import restore, save_state, state_path
    from explorer.train import Training, intra_op_threads, layer_names, load_training_data

    state_dir = args.resume if saved is not None else args.state
    if saved is None and state_dir is not None and state_path(state_dir).exists():
        raise CommandError(f"{state_dir} already holds a training state: continue it with --resume {state_dir}, "
                           "or give another folder.")
    out = args.out or Path(saved.out if saved is not None and saved.out else "run.json")
    if main:
        print(f"loading {config.data} ({config.image_size}×{config.image_size}) …", file=sys.stderr)
    try:
        data = load_training_data(config)
    except DataError as error:
        raise CommandError(str(error)) from error
    if config.model_threads > 1 and device.type == "cpu":
        import torch

        torch.set_num_threads(intra_op_threads(config))
    training = Training(config, data, device=device)
    if saved is not None:
        restore(saved, training)
        record = saved.record
        record.config, record.finished = asdict(config), False
        if main:
            print(f"resuming {state_dir} at step {training.step:,} of {config.steps:,}", file=sys.stderr)
    else:
        record = new_record(out.stem, config, device, layer_names(config))
        record.classes = list(training.data.classes)
    stop = _GracefulStop() if main and threading.current_thread() is threading.main_thread() else None
    last_state = time.monotonic()

    def keep_state() -> None:
        nonlocal last_state
        if main and state_dir is not None:
            save_state(state_dir, training, record, str(out))
            last_state = time.monotonic()

    started = time.perf_counter() - training.elapsed_s
    try:
        for step in training.steps(stop.event if stop else None):
            record.append(step)
            if main and (step.step % max(1, config.steps // 100) == 0 or step.step == config.steps):
                _progress_line(step, config.steps, time.perf_counter() - started)
            due = (step.step % args.state_every == 0 if args.state_every
                   else time.monotonic() - last_state >= STATE_EVERY_S)
            if due and step.step < config.steps:
                keep_state()
        record.finished = training.step >= config.steps
        if not record.finished and main:
            print("\nstopped: saving the steps so far", file=sys.stderr)
    except KeyboardInterrupt:
        if main:
            print("\ninterrupted: saving the steps so far", file=sys.stderr)
    finally:
        if stop is not None:
            stop.restore()
        if main:
            print(file=sys.stderr)
        if main and record.steps:
            save_run(record, out)
            print(f"saved {out}", file=sys.stderr)
        if main and state_dir is not None and training.step > 0:
            keep_state()  # at the end, at Stop and at Ctrl-C: a whole step, never half of one
            print(f"training state at step {training.step:,}: {state_path(state_dir)} "
                  f"(continue with: python -m explorer train --resume {state_dir})", file=sys.stderr)
    if not main:
        return
    if args.save_dir is not None and record.finished:
        _save_trained(args, config, data, training.models, record, device, time.perf_counter() - started)
    last = record.steps[-1]["models"] if record.steps else []
    for metrics in last:
        val = "" if metrics["val_error"] is None else f", validation error {100 * metrics['val_error']:.1f}%"
        seed = f" (seed {metrics.get('seed', 0)})" if config.repeat > 1 else ""
        print(f"{metrics['name']}{seed}: training error {100 * metrics['train_error']:.1f}%{val}")


STATE_EVERY_S = 300  # without --state-every, the state is written about every 5 minutes


def _cmd_classify(args: argparse.Namespace) -> None:
    from explorer.classify import ClassifierError, default_classifier_name, load_classifier, missing_classifier_message
    from explorer.devices import pick_device
    from explorer.images import ImageError, read_image_file

    name = args.model or default_classifier_name()
    if name is None:
        raise CommandError(missing_classifier_message())
    try:
        classifier = load_classifier(name, device=pick_device(args.device))
    except (ClassifierError, ValueError) as error:
        raise CommandError(str(error)) from error
    results = []
    for path in args.images:
        try:
            image = read_image_file(path)
        except ImageError as error:
            results.append({"file": str(path), "error": str(error)})
            continue
        predictions = classifier.predict([image], topk=args.topk)[0]
        results.append({"file": str(path), "predictions": [asdict(p) for p in predictions]})
    if args.json:
        print(json.dumps({"model": classifier.name, "about": classifier.about, "results": results}, indent=2))
    else:
        print(f"{classifier.name}: {classifier.about}\n")
        for result in results:
            if "error" in result:
                print(f"{result['file']}: error: {result['error']}\n")
                continue
            print(result["file"])
            print(_table(["class", "probability"], [[p["label"], f"{100 * p['probability']:.1f}%"]
                                                    for p in result["predictions"]]) + "\n")
    failed = sum("error" in r for r in results)
    if failed:
        raise CommandError(f"{failed} of {len(results)} images could not be read (see above).")


def _cmd_cam(args: argparse.Namespace) -> None:
    import torch

    from explorer.attribution import explain, layer_grad_cam, overlay, overlay_strip, upsample
    from explorer.classify import ClassifierError, default_classifier_name, load_classifier, missing_classifier_message
    from explorer.devices import pick_device
    from explorer.images import ImageError, read_image_file

    if args.out.suffix.lower() != ".png":
        raise CommandError(f"--out must name a .png file, got {args.out}.")
    name = args.model or default_classifier_name()
    if name is None:
        raise CommandError(missing_classifier_message())
    try:
        classifier = load_classifier(name, device=pick_device(args.device))
        image = read_image_file(args.image)
        explanation = explain(classifier, image, target=args.target, topk=1)
    except (ClassifierError, ImageError) as error:
        raise CommandError(str(error)) from error
    seen = explanation.model_input
    if args.layer is None:
        panels = [(f"{c.stage} ({c.layer})", overlay(seen, c.upsampled)) for c in explanation.cams]
    else:
        modules = dict(classifier.model.named_modules())
        if args.layer not in modules or not args.layer:
            stages = ", ".join(c.layer for c in explanation.cams)
            raise CommandError(f"{classifier.model_name} has no layer {args.layer!r}. Stage ends: {stages}; "
                               f"any module name of the model works (e.g. {explanation.cams[-1].layer}.0).")
        index = torch.tensor([classifier.classes.index(explanation.target)], device=classifier.device)
        batch = classifier.to_model(seen.unsqueeze(0).to(classifier.device))
        with classifier.lock:
            cam = layer_grad_cam(classifier.model, batch, args.layer, index)
        if cam.dim() != 4:
            raise CommandError(f"{args.layer} does not output a feature map (its output has shape "
                               f"{tuple(cam.shape)}); pick a conv layer, block or stage.")
        panels = [(args.layer, overlay(seen, upsample(cam, tuple(seen.shape[-2:]))[0].cpu()))]
    top = explanation.predictions[0]
    panels.insert(0, (f"{top.label} {100 * top.probability:.0f}%", seen.cpu()))
    try:
        overlay_strip(panels).save(args.out)
    except OSError as error:
        raise CommandError(f"Could not write {args.out}: {error}") from error
    print(f"{classifier.name}: top class {top.label} ({100 * top.probability:.1f}%); Grad-CAM for "
          f"{explanation.target!r} at {', '.join(title for title, _ in panels[1:])} written to {args.out}")


def _cmd_finetune(args: argparse.Namespace) -> None:
    import time

    from explorer.checkpoints import finetuned_dir, read_manifest
    from explorer.classify import ClassifierError, load_classifier
    from explorer.data import Augmentation, DataError, load_data
    from explorer.devices import pick_device
    from explorer.transfer import (FinetuneConfig, Finetuning, backbone_names, cache_explanation,
                                   check_finetune_config, default_backbone_name, save_finetuned, suggested_key)

    backbone = args.backbone or default_backbone_name()
    if backbone is None:
        raise CommandError("No backbone with trained weights here: restore pretrained/ (git checkout pretrained) "
                           "or get ImageNet weights (python -m explorer weights download resnet50).")
    args.out = args.out or finetuned_dir()
    if args.upsample is None:  # ImageNet backbones were trained on 224×224: 32 × 7
        args.upsample = 1 if backbone in read_manifest() else 7
    try:
        config = FinetuneConfig(
            backbone=backbone, data=args.data, upsample=args.upsample, train=args.train, head=args.head,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, cache_features=not args.no_cache,
            augmentation=Augmentation(pad=0, flip=False, erasing_p=args.erasing), train_limit=args.limit,
            data_size=args.image_size)
        check_finetune_config(config)  # before minutes of loading, not after
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
        entry = save_finetuned(run.result, config, args.name or suggested_key(config), folder=args.out)
    except (ValueError, ClassifierError, DataError, OSError) as error:
        raise CommandError(str(error)) from error
    result = run.result
    print(f"{entry.key}: validation accuracy {100 * result.val_accuracy:.1f}% after {result.epochs_done} epochs, "
          f"{result.wall_time_s:.1f} s on {result.device}; saved {args.out / entry.file} (+ manifest.json)")
    if args.out.resolve() != finetuned_dir().resolve():
        print(f"note: the app and `classify` list fine-tuned models from {finetuned_dir()}; copy both files there.")


def _save_trained(args, config, data, trained, record, device, wall_time_s: float) -> None:
    from dataclasses import asdict

    from explorer.checkpoints import dataset_tag, save_checkpoint
    from explorer.train import evaluate

    stopped = {m["name"] for m in record.steps[-1]["models"] if m.get("stopped")}
    for name, model in trained.items():
        if name in stopped:
            print(f"{name}: not saved ({name} stopped early)", file=sys.stderr)
            continue
        val_error = evaluate(model, data.val_images, data.val_labels) if len(data.val_labels) else None
        entry = save_checkpoint(
            model, key=f"{name}-{dataset_tag(config.data)}", model_name=name,
            build={"width": config.width, "shortcut": config.shortcut, "num_classes": data.num_classes},
            classes=list(data.classes), val_error=val_error, config=asdict(config),
            steps=record.steps[-1]["step"], wall_time_s=wall_time_s, device=str(device), folder=args.save_dir)
        print(f"{name}: saved {args.save_dir / entry.file} (validation error "
              f"{100 * val_error:.2f}% on {len(data.val_labels)} images)", file=sys.stderr)


def _progress_line(step, total: int, elapsed: float) -> None:
    width = 30
    filled = int(width * step.step / total)
    errors = " ".join(f"{m.name} {100 * m.train_error:.0f}%" for m in step.models)
    eta = elapsed / step.step * (total - step.step)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {step.step}/{total} · {errors} · ETA {eta:.0f}s",
          end="", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explorer",
        description="ResNet Explorer: the models of He et al. (2015), from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = commands.add_parser("models", help="every registered model: params, GMACs, paper numbers")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(run=_cmd_models)

    arch = commands.add_parser("arch", help="the paper's Table 1 for one model, from the live model")
    arch.add_argument("name", help="a registered model, e.g. resnet50 (see `models`)")
    arch.add_argument("--json", action="store_true", help="machine-readable output")
    arch.set_defaults(run=_cmd_arch)

    weights = commands.add_parser("weights", help="torchvision's ImageNet weights: list or download")
    weight_commands = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    listing = weight_commands.add_parser("list", help="which weight files are on this machine")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=_cmd_weights_list)
    download = weight_commands.add_parser("download", help="download with torchvision's hash check")
    download.add_argument("names", nargs="+", metavar="NAME", help="models, e.g. resnet50 resnet152")
    download.add_argument("--dir", type=Path, default=None,
                          help="folder to save into (default: the torch hub cache)")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(run=_cmd_weights_download)

    classify = commands.add_parser("classify", help="top classes of images with a trained model")
    classify.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="JPEG, PNG, WebP, BMP or GIF files")
    classify.add_argument("--model", default=None,
                          help="a checkpoint (see pretrained/manifest.json) or an ImageNet model with weights; "
                               "default: the checkpoint with the lowest validation error")
    classify.add_argument("--topk", type=int, default=5, help="how many classes to show (default 5)")
    classify.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    classify.add_argument("--json", action="store_true", help="machine-readable output")
    classify.set_defaults(run=_cmd_classify)

    cam = commands.add_parser("cam", help="Grad-CAM overlays of an image at the end of each stage (PNG)")
    cam.add_argument("image", type=Path, metavar="IMAGE")
    cam.add_argument("--model", default=None, help="as for classify; default: the best shipped checkpoint")
    cam.add_argument("--layer", default=None, help="one module name (e.g. layer3.2); default: every stage end")
    cam.add_argument("--target", default=None, help="the class to explain (default: the top prediction)")
    cam.add_argument("--out", type=Path, required=True, metavar="FILE.png")
    cam.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    cam.set_defaults(run=_cmd_cam)

    finetune = commands.add_parser("finetune", help="transfer learning: a new head on a trained ResNet backbone")
    finetune.add_argument("--backbone", default=None,
                          help="an ImageNet ResNet with weights or a shipped checkpoint; default: the best one here")
    finetune.add_argument("--data", default="synthetic:2000", help="synthetic[:N], cifar10 or folder:PATH")
    finetune.add_argument("--out", type=Path, default=None,
                          help="folder for the safetensors file and its manifest (default: pretrained/finetuned)")
    finetune.add_argument("--name", default=None, help="the saved model's name (default: backbone-head-data)")
    finetune.add_argument("--train", choices=("head", "last stage", "all"), default="head",
                          help='what learns: "head" (backbone frozen, features cached), "last stage", "all"')
    finetune.add_argument("--head", choices=("linear", "seed"), default="linear",
                          help="linear, or seed: the notebook's BN-Dense-Dropout stack")
    finetune.add_argument("--upsample", type=int, default=None,
                          help="enlarge the images by this factor (default: 7 for ImageNet backbones, else 1)")
    finetune.add_argument("--image-size", type=int, default=32, help="side the data set is decoded at (default 32)")
    finetune.add_argument("--epochs", type=int, default=5)
    finetune.add_argument("--batch-size", type=int, default=128)
    finetune.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate of the head (default 0.01)")
    finetune.add_argument("--limit", type=int, default=None, help="use only this many training images")
    finetune.add_argument("--erasing", type=float, default=0.0, help="random-erasing probability (turns caching off)")
    finetune.add_argument("--no-cache", action="store_true", help="run the backbone at every step (for comparison)")
    finetune.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    finetune.set_defaults(run=_cmd_finetune)

    training = commands.add_parser("train", help="train CIFAR plain/residual nets in lock-step (degradation lab)")
    training.add_argument("--models", default="plain20,plain56,resnet20,resnet56",
                          help="comma-separated CIFAR nets (default: plain20,plain56,resnet20,resnet56)")
    training.add_argument("--data", default="synthetic", help="synthetic, cifar10 or folder:PATH")
    training.add_argument("--preset", default="demo", choices=["demo", "paper"])
    training.add_argument("--steps", type=int, default=None,
                          help="override the preset's step count (with --resume: extend the run to N steps)")
    training.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    training.add_argument("--lr", type=float, default=None, help="override the preset's learning rate (0.1)")
    training.add_argument("--shortcut", default="A", choices=["A", "B"])
    training.add_argument("--erasing", type=float, default=0.0, metavar="P",
                          help="random-erasing probability (0 = off, the paper's recipe)")
    training.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
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
    training.add_argument("--compile", action="store_true", help="torch.compile every model (slow to start)")
    training.add_argument("--amp", default=None, choices=["off", "bf16", "fp16"], help="mixed precision: bf16 (CUDA or CPU), fp16 (CUDA)")
    training.add_argument("--model-threads", type=int, default=None, metavar="N",
                          help="train N of the lock-step models at once, in threads (small nets on CPU)")
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
    training.set_defaults(run=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    from explorer.models import UnknownModelError
    from explorer.weights import WeightsError

    try:
        args.run(args)
    except (CommandError, UnknownModelError, WeightsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
