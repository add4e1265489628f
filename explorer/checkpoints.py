"""The project's own checkpoints: safetensors files plus a manifest, verified on load.

Each entry of ``pretrained/manifest.json`` records the file, its sha256, the registry name
and build options of the architecture, the parameter count, the measured validation error,
the full training config, the steps, wall time and device: the numbers the UI shows come
from here, never from hand-typed text (torchvision's weights enums work the same way).
Loading checks the hash first (altered bytes are refused) and then loads strictly into a
freshly built architecture (weights of another architecture are refused).

A manifest is read from disk once and again only when its file changes, so the many
look-ups of one page run (names, labels, the fingerprint, the load) cost one ``stat`` each.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from explorer.models import build_model, get_model_spec
from explorer.models.heads import replace_head
from explorer.weights import pretrained_dir

MANIFEST = "manifest.json"
# File timestamps are coarse (one kernel clock tick), so a file rewritten twice within one
# tick keeps its mtime: a manifest younger than this is read again instead of trusted ("racy git").
SETTLED_NS = 2_000_000_000


class CheckpointError(ValueError):
    """A checkpoint that is missing, altered or of another architecture."""


@dataclass(frozen=True)
class CheckpointEntry:
    key: str  # the manifest key, e.g. "resnet20-cifar10"
    file: str  # relative to the manifest's folder
    sha256: str
    model: str  # registry name of the architecture
    build: dict  # builder options: width, shortcut, num_classes
    classes: list
    params: int
    val_error: float | None
    config: dict
    steps: int
    wall_time_s: float
    device: str
    # "trained": a registry architecture trained from scratch (``explorer train``);
    # "finetuned": a backbone with a new head (``explorer finetune``), see :func:`build_entry_model`.
    kind: str = "trained"
    epochs: float | None = None  # passes over the training split (None in entries written before it was kept)
    machine: str | None = None  # explorer.devices.machine_description: "AMD EPYC, 2 cores"


FINETUNED_FOLDER = "finetuned"  # under pretrained/: the user's own fine-tuned models, not committed


def finetuned_dir() -> Path:
    return pretrained_dir() / FINETUNED_FOLDER


def build_entry_model(entry: CheckpointEntry) -> nn.Module:
    """The untrained architecture an entry's weights belong to."""
    get_model_spec(entry.model)
    if entry.kind == "trained":
        return build_model(entry.model, **entry.build)
    if entry.kind == "finetuned":
        backbone = build_model(entry.model, **entry.build["backbone_build"])
        return replace_head(backbone, entry.build["head"], entry.build["num_classes"])
    raise CheckpointError(f"Checkpoint {entry.key!r} has an unknown kind {entry.kind!r}.")


def dataset_tag(source: str) -> str:
    """A short data-set name for keys and captions: cifar10, synthetic, or the folder's name
    ("folder:…/cifar10/train" -> cifar10)."""
    if not source.startswith("folder:"):
        return source.split(":")[0]
    path = Path(source.removeprefix("folder:").rstrip("/"))
    return path.parent.name if path.name in ("train", "training") else path.name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# manifest path -> ((mtime_ns, size) when it was read, its entries)
_MANIFESTS: dict[Path, tuple[tuple[int, int], dict[str, CheckpointEntry]]] = {}


def read_manifest(folder: Path | None = None) -> dict[str, CheckpointEntry]:
    """The entries of ``folder``'s manifest (default: pretrained/), by key; {} if it has none.

    Read from disk again only when the file's (mtime_ns, size) changes, or while the file is
    too new for its mtime to be trusted (see SETTLED_NS)."""
    path = (folder or pretrained_dir()) / MANIFEST
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    if not stat.S_ISREG(status.st_mode):
        return {}
    stamp = (status.st_mtime_ns, status.st_size)
    cached = _MANIFESTS.get(path)
    if cached is None or cached[0] != stamp:
        cached = (stamp, _read_manifest_file(path))
        if time.time_ns() - status.st_mtime_ns > SETTLED_NS:
            _MANIFESTS[path] = cached
    return dict(cached[1])  # a copy: a caller's edits never reach the cache


def _read_manifest_file(path: Path) -> dict[str, CheckpointEntry]:
    """Parse one manifest file; the only place a manifest is read from disk."""
    try:
        raw = json.loads(path.read_text())
        return {key: CheckpointEntry(key=key, **entry) for key, entry in raw["checkpoints"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path} is not a valid checkpoint manifest ({error}).") from error


def best_first(entry: CheckpointEntry) -> tuple[float, str]:
    """Sort key: lowest validation error first (unmeasured last), then by key."""
    return (math.inf if entry.val_error is None else entry.val_error, entry.key)


def best_checkpoints(folder: Path | None = None) -> dict[str, CheckpointEntry]:
    """Per registry model name, its checkpoint with the lowest validation error."""
    best: dict[str, CheckpointEntry] = {}
    for entry in sorted(read_manifest(folder).values(), key=best_first, reverse=True):
        best[entry.model] = entry  # the best comes last and wins
    return best


DESCRIPTIONS = ("line", "choice", "cell")


def describe_entry(entry: CheckpointEntry, form: str = "line") -> str:
    """How a manifest entry reads everywhere, all of it from the entry (nothing typed by hand).

    ``line``, a caption: "resnet20 trained by this project on cifar10 (10 classes, 64,000 steps,
    95 min on cuda): 8.75% validation error" (a fine-tuned entry names its backbone, head and
    epochs, and gives validation *accuracy*, as the transfer page does); ``choice``, a model
    picker's option: "resnet20-cifar10 (trained here on cifar10, 8.8% validation error)";
    ``cell``, a table cell beside the paper's Table 6 error: "8.8% (cifar10, 64,000 steps)".
    """
    if form not in DESCRIPTIONS:
        raise ValueError(f"form must be one of {', '.join(DESCRIPTIONS)}, got {form!r}.")
    tag, finetuned, error = dataset_tag(entry.config.get("data", "?")), entry.kind == "finetuned", entry.val_error
    if form == "cell":
        return f"{'?' if error is None else f'{100 * error:.1f}%'} ({tag}, {entry.steps:,} steps)"
    if error is None:
        measured = None
    elif finetuned:
        measured = f"{100 * (1 - error):.1f}% validation accuracy"
    else:  # a caption gives the paper's two decimals (Table 6), a picker one
        measured = f"{100 * error:.{2 if form == 'line' else 1}f}% validation error"
    if form == "choice":
        how = "fine-tuned" if finetuned else "trained"
        return f"{entry.key} ({how} here on {tag}{f', {measured}' if measured else ''})"
    if finetuned:
        config = entry.config
        return (f"{entry.model} backbone ({config['backbone']}) with a {entry.build['head']} head, fine-tuned "
                f"({config['train']}) on {tag} ({len(entry.classes)} classes, {config['epochs']} epochs, "
                f"{entry.wall_time_s:.0f} s on {entry.device}): {measured or 'no validation accuracy recorded'}")
    return (f"{entry.model} trained by this project on {tag} ({len(entry.classes)} classes, {entry.steps:,} steps, "
            f"{entry.wall_time_s / 60:.0f} min on {entry.device}): {measured or 'no validation error recorded'}")


def trained_label(entry: CheckpointEntry | None) -> str | None:
    """A checkpoint's table cell (see :func:`describe_entry`), or None without one."""
    return None if entry is None else describe_entry(entry, "cell")


def save_checkpoint(model: nn.Module, *, key: str, model_name: str, build: dict, classes: list,
                    val_error: float | None, config: dict, steps: int, wall_time_s: float,
                    device: str, folder: Path | None = None, kind: str = "trained",
                    epochs: float | None = None, machine: str | None = None) -> CheckpointEntry:
    """Write ``<key>.safetensors`` and its manifest entry (atomically, other entries kept)."""
    folder = folder or pretrained_dir()
    folder.mkdir(parents=True, exist_ok=True)
    file = f"{key}.safetensors"
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / file), metadata={"model": model_name, "build": json.dumps(build)})
    entry = CheckpointEntry(
        key=key, file=file, sha256=sha256_of(folder / file), model=model_name, build=build,
        classes=list(classes), params=sum(p.numel() for p in model.parameters()), val_error=val_error,
        config=config, steps=steps, wall_time_s=round(wall_time_s, 1), device=device, kind=kind,
        epochs=None if epochs is None else round(epochs, 2), machine=machine,
    )
    entries = {k: e for k, e in read_manifest(folder).items() if k != key}
    entries[key] = entry
    payload = {"checkpoints": {k: {f: v for f, v in vars(e).items() if f != "key"}
                               for k, e in sorted(entries.items())}}
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, indent=2)
    os.replace(handle.name, folder / MANIFEST)
    return entry


def load_checkpoint(key: str, folder: Path | None = None) -> tuple[nn.Module, CheckpointEntry]:
    """Build the entry's architecture and load its verified weights; eval mode."""
    folder = folder or pretrained_dir()
    entries = read_manifest(folder)
    if key not in entries:
        known = ", ".join(entries) or "none"
        raise CheckpointError(f"No checkpoint {key!r} in {folder / MANIFEST} (known: {known}).")
    return load_entry(entries[key], folder), entries[key]


def load_entry(entry: CheckpointEntry, folder: Path) -> nn.Module:
    """The model of one manifest entry (of ``folder``'s manifest), its file checked against
    the entry's sha256 and loaded strictly; eval mode."""
    key, path = entry.key, folder / entry.file
    if not path.is_file():
        raise CheckpointError(f"{path} is listed in the manifest but missing.")
    if sha256_of(path) != entry.sha256:
        raise CheckpointError(f"{path} does not match its sha256 in the manifest: the file was altered "
                              "or is from another version. Restore it (git checkout) or retrain it.")
    try:
        model = build_entry_model(entry)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"The manifest entry of {key!r} cannot build its model ({error}).") from error
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, SafetensorError) as error:
        raise CheckpointError(f"{path} does not fit the {entry.model} architecture: "
                              f"{str(error).splitlines()[0]}") from error
    return model.eval()
