"""Precomputed views of the shipped checkpoints (``pretrained/inside/``), so "Why shortcuts work"
shows real-image results at once on any machine (issue 38): a lesion study of ResNet-56 costs
minutes on a laptop CPU, and a fresh laptop has no CIFAR-10 folder to run it on.

For each view (``responses``, ``branches``, ``lesion``) and checkpoint, ``<view>-<checkpoint>.json``
holds the result, and ``manifest.json`` records per file the command that wrote it, the
checkpoint's sha256 (a result of other weights is never shown as this checkpoint's), the
images (in words and how many), seed and draws, the precision, the wall time and the machine.
The files are written by ``python -m explorer responses|branches|lesion ... --save-dir
pretrained/inside`` through :func:`explorer.files.atomic_write`, as the landscapes are.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from explorer.files import atomic_write
from explorer.models import get_model_spec
from explorer.paper.inside.branches import Branches, BranchRatio
from explorer.paper.inside.lesion import BlockLesion, LesionStudy, RandomLesion
from explorer.paper.inside.responses import LayerResponse, Responses
from explorer.settings import pretrained_dir
from explorer.store import result_folders
from explorer.store.checkpoints import read_manifest

INSIDE = "inside"
VIEWS = ("responses", "branches", "lesion")
Result = Responses | Branches | LesionStudy


def results_dir() -> Path:
    return pretrained_dir() / INSIDE


def _payload(view: str, result: Result) -> dict:
    if view == "branches":  # to_json() leaves out which blocks downsample; the chart marks them
        return {"model": result.model, "blocks": [{"block": b.block, "ratio": b.ratio, "downsampling": b.downsampling}
                                                  for b in result.blocks]}
    if view == "responses":
        return {"model": result.model, "layers": result.to_json()}
    return result.to_json()


def save_result(view: str, result: Result, *, command: str, seconds: float, machine: str, draws: int | None = None,
                folder: Path | None = None) -> Path:
    """Write ``<view>-<model>.json`` and its manifest entry (other entries kept); returns the file."""
    folder = folder or results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = read_manifest().get(result.model)
    path = folder / f"{view}-{result.model}.json"
    atomic_write(path, json.dumps(_payload(view, result), separators=(",", ":")))
    entry = {"view": view, "model": result.model, "file": path.name,
             "checkpoint_sha256": checkpoint.sha256 if checkpoint else None, "command": command,
             "data": result.source, "images": result.images, "seed": getattr(result, "seed", None), "draws": draws,
             "precision": getattr(result, "precision", "fp32"), "wall_time_s": round(seconds, 1),
             "machine": machine, "torch": torch.__version__}
    result_folders.add_entry(folder, "results", f"{view}/{result.model}", entry)
    return path


def read_results_manifest(folder: Path | None = None) -> dict[str, dict]:
    return result_folders.entries(folder or results_dir(), "results")


def _result(view: str, raw: dict, entry: dict) -> Result:
    model, images, source = raw["model"], int(entry["images"]), str(entry["data"])
    if view == "responses":
        layers = tuple(LayerResponse(layer["layer"], float(layer["std"])) for layer in raw["layers"])
        return Responses(model=model, layers=layers, images=images, source=source)
    residual = get_model_spec(read_manifest()[model].model).residual
    if view == "branches":
        return Branches(model=model, residual=residual, images=images, source=source, blocks=tuple(
            BranchRatio(b["block"], float(b["ratio"]), bool(b["downsampling"])) for b in raw["blocks"]))
    return LesionStudy(
        model=model, residual=residual, baseline_error=float(raw["baseline_error"]), images=images, source=source,
        blocks=tuple(BlockLesion(b["block"], float(b["error"]), bool(b["downsampling"])) for b in raw["blocks"]),
        random=tuple(RandomLesion(int(r["removed"]), float(r["error_mean"]), float(r["error_min"]),
                                  float(r["error_max"])) for r in raw["random"]),
        seed=int(entry["seed"]), precision=str(entry.get("precision", "fp32")))


def shipped_results(view: str, folder: Path | None = None) -> dict[str, Result]:
    """Every precomputed ``view`` result whose checkpoint is shipped here with the sha256 it was
    computed on, by checkpoint name. An entry that cannot be read, or was computed on other
    weights, is skipped (and logged): one bad entry never hides the others."""
    folder = folder or results_dir()
    checkpoints = read_manifest()
    found = {}
    for key, entry in read_results_manifest(folder).items():
        if entry.get("view") != view:
            continue
        try:
            file, model = result_folders.entry_file(folder, entry), str(entry["model"])
            if model not in checkpoints or checkpoints[model].sha256 != entry["checkpoint_sha256"]:
                raise ValueError("it was computed on other weights than the shipped checkpoint's")
            found[model] = _result(view, json.loads(file.read_text()), entry)
        except (OSError, ValueError, KeyError, TypeError) as error:
            logging.getLogger("explorer").warning("The precomputed %r is skipped: %s", key, error)
    return found


def results_about(view: str, models: list[str], folder: Path | None = None) -> list[dict]:
    """The manifest entries of ``view`` for ``models``, in that order (for the page's caption)."""
    entries = read_results_manifest(folder)
    return [entries[f"{view}/{model}"] for model in models if f"{view}/{model}" in entries]
