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

from explorer.files import atomic_write, locked
from explorer.paper.inside.landscape import Surface
from explorer.settings import pretrained_dir

LANDSCAPES = "landscapes"
MANIFEST = "manifest.json"


def landscapes_dir() -> Path:
    return pretrained_dir() / LANDSCAPES


def _write_json(path: Path, payload: dict) -> None:
    atomic_write(path, json.dumps(payload, separators=(",", ":")))  # a shipped file: 0644, readable by all


def save_surface(surface: Surface, command: str, folder: Path | None = None) -> Path:
    """Write ``<model>.json`` and its manifest entry (other entries kept); returns the file."""
    folder = folder or landscapes_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{surface.model}.json"
    _write_json(path, surface.to_json())
    manifest_path = folder / MANIFEST
    with locked(manifest_path):  # two `landscape --save-dir` at once both keep their entries
        raw = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}  # keeps any "note"
        manifest = raw.get("landscapes", {})
        manifest[surface.model] = {
            "file": path.name, "command": command, "seed": surface.seed, "grid": len(surface.alphas),
            "span": surface.alphas[-1], "images": surface.images, "data": surface.source,
            "torch": torch.__version__, "wall_time_s": surface.seconds,
        }
        _write_json(manifest_path, {**raw, "landscapes": dict(sorted(manifest.items()))})
    return path


def read_landscape_manifest(folder: Path | None = None) -> dict[str, dict]:
    path = (folder or landscapes_dir()) / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text())["landscapes"]


def shipped_surfaces(folder: Path | None = None) -> dict[str, Surface]:
    """Every precomputed surface, by checkpoint name (empty when none are shipped). An entry
    whose file is not a plain name in ``folder``, or that cannot be read, is skipped (and
    logged): one bad entry never hides the others."""
    folder = folder or landscapes_dir()
    surfaces = {}
    for name, entry in read_landscape_manifest(folder).items():
        try:
            file = str(entry["file"])
            if Path(file).name != file or file in ("", ".", "..") or (folder / file).is_symlink():
                raise ValueError(f"its file {file[:80]!r} is not a plain file name in {folder}")
            raw = json.loads((folder / file).read_text())
            surfaces[name] = Surface(
                model=raw["model"], alphas=tuple(raw["alphas"]), betas=tuple(raw["betas"]),
                loss=tuple(tuple(row) for row in raw["loss"]), seed=entry["seed"], images=entry["images"],
                source=entry["data"], seconds=entry["wall_time_s"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            logging.getLogger("explorer").warning("The landscape %r is skipped: %s", name, error)
    return surfaces
