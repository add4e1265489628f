"""Precomputed loss surfaces of the shipped checkpoints (``pretrained/landscapes/``), so the
page opens at once: a 21×21 surface of ResNet-56 on 64 images costs minutes on a laptop CPU.

Each ``<checkpoint>.json`` is exactly what ``python -m explorer landscape NAME --json``
prints; ``manifest.json`` records, per file, the command that wrote it, its seed, grid,
span, images, data source, torch version and wall time, so anyone can recompute and compare.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from explorer.files import atomic_write
from explorer.paper.inside.landscape import Surface
from explorer.settings import pretrained_dir
from explorer.store import result_folders

LANDSCAPES = "landscapes"


def landscapes_dir() -> Path:
    return pretrained_dir() / LANDSCAPES


def save_surface(surface: Surface, command: str, folder: Path | None = None) -> Path:
    """Write ``<model>.json`` and its manifest entry (other entries kept); returns the file."""
    folder = folder or landscapes_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{surface.model}.json"
    atomic_write(path, json.dumps(surface.to_json(), separators=(",", ":")))
    result_folders.add_entry(folder, "landscapes", surface.model, {
        "file": path.name, "command": command, "seed": surface.seed, "grid": len(surface.alphas),
        "span": surface.alphas[-1], "images": surface.images, "data": surface.source,
        "torch": torch.__version__, "wall_time_s": surface.seconds,
    })
    return path


def read_landscape_manifest(folder: Path | None = None) -> dict[str, dict]:
    return result_folders.entries(folder or landscapes_dir(), "landscapes")


def shipped_surfaces(folder: Path | None = None) -> dict[str, Surface]:
    """Every precomputed surface, by checkpoint name (empty when none are shipped). An entry
    whose file is not a plain name in ``folder``, or that cannot be read, is skipped (and
    logged): one bad entry never hides the others."""
    folder = folder or landscapes_dir()
    surfaces = {}
    for name, entry in read_landscape_manifest(folder).items():
        try:
            raw = json.loads(result_folders.entry_file(folder, entry).read_text())
            surfaces[name] = Surface(
                model=raw["model"], alphas=tuple(raw["alphas"]), betas=tuple(raw["betas"]),
                loss=tuple(tuple(row) for row in raw["loss"]), seed=entry["seed"], images=entry["images"],
                source=entry["data"], seconds=entry["wall_time_s"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            logging.getLogger("explorer").warning("The landscape %r is skipped: %s", name, error)
    return surfaces
