"""``classify`` and ``cam``: what a trained model sees in an image, and where (Grad-CAM)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from explorer import settings
from explorer.cli.parsing import CommandError, print_json, ranged, table
from explorer.files import atomic_write


def add_commands(commands: argparse._SubParsersAction) -> None:
    classify = commands.add_parser("classify", help="top classes of images with a trained model")
    classify.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="JPEG, PNG, WebP, BMP or GIF files")
    classify.add_argument("--model", default=None,
                          help="a checkpoint (see pretrained/manifest.json) or an ImageNet model with weights; "
                               "default: the checkpoint with the lowest validation error")
    classify.add_argument("--topk", type=ranged(settings.TOPK), default=5, help="how many classes to show (default 5)")
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


def _classifier(args: argparse.Namespace):
    """``--model`` (default: the best one here) on ``--device``; CommandError if none can load."""
    # deferred: torch, so --help stays instant
    from explorer.devices import pick_device
    from explorer.store.classifiers import (
        ClassifierError,
        default_classifier_name,
        load_classifier,
        missing_classifier_message,
    )

    name = args.model or default_classifier_name()
    if name is None:
        raise CommandError(missing_classifier_message())
    try:
        return load_classifier(name, device=pick_device(args.device))
    except (ClassifierError, ValueError) as error:
        raise CommandError(str(error)) from error


def _cmd_classify(args: argparse.Namespace) -> None:
    from explorer.data.images import ImageError, read_image_file  # deferred: torch, so --help stays instant

    classifier = _classifier(args)
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
        print_json({"model": classifier.name, "about": classifier.about, "results": results}, indent=2)
    else:
        print(f"{classifier.name}: {classifier.about}\n")
        for result in results:
            if "error" in result:
                print(f"{result['file']}: error: {result['error']}\n")
                continue
            print(result["file"])
            print(table(["class", "probability"], [[p["label"], f"{100 * p['probability']:.1f}%"]
                                                   for p in result["predictions"]]) + "\n")
    failed = sum("error" in r for r in results)
    if failed:
        raise CommandError(f"{failed} of {len(results)} images could not be read (see above).")


def _cmd_cam(args: argparse.Namespace) -> None:
    # deferred: torch, so --help stays instant
    from explorer.data.images import ImageError, read_image_file
    from explorer.paper.gradcam import explain
    from explorer.present.overlays import overlay, overlay_strip
    from explorer.store.classifiers import ClassifierError

    if args.out.suffix.lower() != ".png":
        raise CommandError(f"--out must name a .png file, got {args.out}.")
    classifier = _classifier(args)
    try:
        image = read_image_file(args.image)
        explanation = explain(classifier, image, target=args.target, topk=1)
    except (ClassifierError, ImageError) as error:
        raise CommandError(str(error)) from error
    seen = explanation.model_input
    if args.layer is None:
        panels = [(f"{c.stage} ({c.layer})", overlay(seen, c.upsampled)) for c in explanation.cams]
    else:
        panels = [(args.layer, _layer_overlay(classifier, explanation, args.layer))]
    top = explanation.predictions[0]
    panels.insert(0, (f"{top.label} {100 * top.probability:.0f}%", seen.cpu()))
    strip = overlay_strip(panels)
    try:
        atomic_write(args.out, lambda temporary: strip.save(temporary, format="PNG"))  # whole or not at all, 0644
    except OSError as error:
        raise CommandError(f"Could not write {args.out}: {error}") from error
    print(f"{classifier.name}: top class {top.label} ({100 * top.probability:.1f}%); Grad-CAM for "
          f"{explanation.target!r} at {', '.join(title for title, _ in panels[1:])} written to {args.out}")


def _layer_overlay(classifier, explanation, layer: str):
    """Grad-CAM of ``explanation.target`` at any one module ``layer``, over the image the model saw."""
    # deferred: torch, captum and plotly, so --help stays instant
    import torch

    from explorer.paper.gradcam import layer_grad_cam, upsample
    from explorer.present.overlays import overlay

    seen = explanation.model_input
    modules = dict(classifier.model.named_modules())
    if layer not in modules or not layer:
        stages = ", ".join(c.layer for c in explanation.cams)
        raise CommandError(f"{classifier.model_name} has no layer {layer!r}. Stage ends: {stages}; "
                           f"any module name of the model works (e.g. {explanation.cams[-1].layer}.0).")
    index = torch.tensor([classifier.classes.index(explanation.target)], device=classifier.device)
    batch = classifier.to_model(seen.unsqueeze(0).to(classifier.device))
    with classifier.lock:
        cam = layer_grad_cam(classifier.model, batch, layer, index)
    if cam.dim() != 4:
        raise CommandError(f"{layer} does not output a feature map (its output has shape "
                           f"{tuple(cam.shape)}); pick a conv layer, block or stage.")
    return overlay(seen, upsample(cam, tuple(seen.shape[-2:]))[0].cpu())
