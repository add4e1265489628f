"""Precomputed loss surfaces of the shipped checkpoints (``pretrained/landscapes/``), so the
page opens at once: a 21×21 surface of ResNet-56 on 64 images costs minutes on a laptop CPU.

Each ``<checkpoint>.json`` is exactly what ``python -m explorer landscape NAME --json``
prints; ``manifest.json`` records, per file, the command that wrote it, its seed, grid,
span, images, data source, torch version and wall time, so anyone can recompute and compare.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from explorer.inside.landscape import Surface
from explorer.weights import pretrained_dir

LANDSCAPES = "landscapes"
MANIFEST = "manifest.json"


def landscapes_dir() -> Path:
    return pretrained_dir() / LANDSCAPES


def _write_json(path: Path, payload: dict) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, separators=(",", ":"))
    os.chmod(handle.name, 0o644)  # a shipped file, readable by all (NamedTemporaryFile makes it 0600)
    os.replace(handle.name, path)


def save_surface(surface: Surface, command: str, folder: Path | None = None) -> Path:
    """Write ``<model>.json`` and its manifest entry (other entries kept); returns the file."""
    folder = folder or landscapes_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{surface.model}.json"
    _write_json(path, surface.to_json())
    manifest_path = folder / MANIFEST
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
    """Every precomputed surface, by checkpoint name (empty when none are shipped)."""
    folder = folder or landscapes_dir()
    surfaces = {}
    for name, entry in read_landscape_manifest(folder).items():
        raw = json.loads((folder / entry["file"]).read_text())
        surfaces[name] = Surface(
            model=raw["model"], alphas=tuple(raw["alphas"]), betas=tuple(raw["betas"]),
            loss=tuple(tuple(row) for row in raw["loss"]), seed=entry["seed"], images=entry["images"],
            source=entry["data"], seconds=entry["wall_time_s"])
    return surfaces
