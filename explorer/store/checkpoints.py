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

import dataclasses
import hashlib
import json
import logging
import math
import stat
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from explorer.data import DataSource, SourceKind
from explorer.files import atomic_write, free_name, locked
from explorer.models import build_model, get_model_spec
from explorer.models.heads import replace_head
from explorer.settings import pretrained_dir

MANIFEST = "manifest.json"
# File timestamps are coarse (one kernel clock tick), so a file rewritten twice within one
# tick keeps its mtime: a manifest younger than this is read again instead of trusted ("racy git").
SETTLED_NS = 2_000_000_000


_LOG = logging.getLogger("explorer")


class CheckpointError(ValueError):
    """A checkpoint that is missing, altered or of another architecture."""


class NameTakenError(CheckpointError):
    """A save under a key the manifest already has, where replacing it was not asked for."""

    def __init__(self, key: str, where: str, free: str):
        self.key, self.free = key, free  # free: the first versioned name not taken ("name-2")
        super().__init__(f"{key!r} is {where}: choose another name ({free!r} is free). Nothing was replaced.")


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
    """A short data-set name for keys and captions: cifar10, synthetic, a shipped pack's name
    ("pack:cifar10-demo" -> cifar10-demo), or the folder's name ("folder:…/cifar10/train" -> cifar10)."""
    parsed = DataSource.read(source)  # None for text that names no source, e.g. an old entry's "?"
    if parsed is not None and parsed.kind is SourceKind.PACK:
        return parsed.pack
    if parsed is None or parsed.kind is not SourceKind.FOLDER:
        return source.split(":")[0]
    path = Path(parsed.path.rstrip("/"))
    return path.parent.name if path.name in ("train", "training") else path.name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ManifestReader:
    """Reads manifests, each from disk once and again only when its file changes, and keeps
    why the last read of each skipped entries. One reader serves a whole process
    (:data:`MANIFESTS`, behind :func:`read_manifest` and :func:`skipped_entries`), so every
    session of the app shares what it has read; a test may hold its own."""

    def __init__(self):
        # manifest path -> ((mtime_ns, size) when it was read, its entries)
        self._entries: dict[Path, tuple[tuple[int, int], dict[str, CheckpointEntry]]] = {}
        # manifest path -> one sentence per entry the last read skipped
        self._skipped: dict[Path, list[str]] = {}

    def read(self, folder: Path | None = None) -> dict[str, CheckpointEntry]:
        """The entries of ``folder``'s manifest (default: pretrained/), by key; {} if it has none.

        Read from disk again only when the file's (mtime_ns, size) changes, or while the file is
        too new for its mtime to be trusted (see SETTLED_NS). An entry that cannot be used (a
        missing field, a wrong type, a file outside the folder) is left out, and
        :meth:`skipped` says why: one bad entry never hides the others. A file that is
        not a manifest at all raises :class:`CheckpointError`."""
        path = (folder or pretrained_dir()) / MANIFEST
        try:
            status = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            status = None
        if status is None or not stat.S_ISREG(status.st_mode):
            self._skipped.pop(path, None)
            return {}
        stamp = (status.st_mtime_ns, status.st_size)
        cached = self._entries.get(path)
        if cached is None or cached[0] != stamp:
            entries, self._skipped[path] = _read_manifest_file(path)
            cached = (stamp, entries)
            if time.time_ns() - status.st_mtime_ns > SETTLED_NS:
                self._entries[path] = cached
        return dict(cached[1])  # a copy: a caller's edits never reach the cache

    def skipped(self, folder: Path | None = None) -> list[str]:
        """Why entries of ``folder``'s manifest were left out by :meth:`read`, one sentence
        each naming the entry (empty when all are sound, or there is no manifest)."""
        self.read(folder)
        return list(self._skipped.get((folder or pretrained_dir()) / MANIFEST, []))


MANIFESTS = ManifestReader()  # this process's reader


def read_manifest(folder: Path | None = None) -> dict[str, CheckpointEntry]:
    """The entries of ``folder``'s manifest (default: pretrained/), by key, through this
    process's :class:`ManifestReader` (read from disk only when the file changed)."""
    return MANIFESTS.read(folder)


def skipped_entries(folder: Path | None = None) -> list[str]:
    """Why entries of ``folder``'s manifest were left out by :func:`read_manifest`, one
    sentence each naming the entry (empty when all are sound, or there is no manifest)."""
    return MANIFESTS.skipped(folder)


def _raw_manifest(path: Path) -> dict:
    """The manifest's JSON (``{"checkpoints": {...}}`` plus any other top-level keys)."""
    try:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict) or not isinstance(raw.get("checkpoints"), dict):
            raise ValueError("it has no \"checkpoints\" object")
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path} is not a valid checkpoint manifest ({error}).") from error
    return raw


def _read_manifest_file(path: Path) -> tuple[dict[str, CheckpointEntry], list[str]]:
    """Parse one manifest file; the only place a manifest is read from disk. Returns its
    usable entries, and why each unusable one was skipped."""
    entries, skipped = {}, []
    for key, values in _raw_manifest(path)["checkpoints"].items():
        try:
            entries[key] = _entry_from_json(key, values, path.parent)
        except CheckpointError as error:
            skipped.append(str(error))
    if skipped:
        _LOG.warning("%s: %s", path, " ".join(skipped))
    return entries, skipped


_FIELDS = {field.name: field for field in dataclasses.fields(CheckpointEntry)}
# What each field of an entry must be (bool is an int in Python: refused where a number is meant).
_TYPES = {"file": str, "sha256": str, "model": str, "build": dict, "classes": list, "params": int,
          "val_error": (int, float, type(None)), "config": dict, "steps": int, "wall_time_s": (int, float),
          "device": str, "kind": str, "epochs": (int, float, type(None)), "machine": (str, type(None))}
KINDS = ("trained", "finetuned")


def _entry_from_json(key, values, folder: Path) -> CheckpointEntry:
    """One manifest entry, checked: every field present with its type, ``file`` a plain
    path inside ``folder``, and the entry describable (the pickers and captions read it).
    Fields a later version may add are ignored. CheckpointError naming the entry if not."""
    name = repr(key)[:60]
    if not isinstance(values, dict):
        raise CheckpointError(f"The manifest entry {name} is not an object; it is skipped.")
    missing = [f for f, field in _FIELDS.items()
               if f != "key" and f not in values and field.default is dataclasses.MISSING]
    wrong = [f for f, kind in _TYPES.items()
             if f in values and (isinstance(values[f], bool) or not isinstance(values[f], kind))]
    if missing or wrong:
        what = "; ".join(part for part in (missing and f"missing {', '.join(missing)}",
                                           wrong and f"wrong type of {', '.join(wrong)}") if part)
        raise CheckpointError(f"The manifest entry {name} is skipped ({what}).")
    entry = CheckpointEntry(key=str(key), **{f: v for f, v in values.items() if f in _FIELDS and f != "key"})
    if entry.kind not in KINDS:
        raise CheckpointError(f"The manifest entry {name} has an unknown kind {entry.kind[:20]!r}; it is skipped.")
    checkpoint_path(entry, folder)
    try:
        for form in DESCRIPTIONS:
            describe_entry(entry, form)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise CheckpointError(f"The manifest entry {name} is skipped ({error}).") from None
    return entry


def checkpoint_path(entry: CheckpointEntry, folder: Path) -> Path:
    """Where an entry's weights are: ``folder / entry.file``, which must stay inside
    ``folder`` (a relative path without ``..``, not through a link that leads out), so a
    manifest cannot make the app read /etc/passwd. CheckpointError otherwise."""
    relative = PurePosixPath(entry.file)
    if (not entry.file or "\x00" in entry.file or "\\" in entry.file or relative.is_absolute()
            or ".." in relative.parts):
        raise CheckpointError(f"The manifest entry {entry.key!r} names the file {entry.file[:80]!r}, which is not "
                              f"a plain path inside {folder}.")
    path = folder / relative
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        raise CheckpointError(f"The manifest entry {entry.key!r} names the file {entry.file[:80]!r}, which leads "
                              f"out of {folder}.") from None
    return path


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
                    epochs: float | None = None, machine: str | None = None,
                    replace: bool = True) -> CheckpointEntry:
    """Write ``<key>.safetensors`` and its manifest entry (atomically, other entries kept).

    The read-merge-write of the manifest holds an inter-process lock, so saves from several
    sessions or processes at once all keep their entries. ``replace=False`` refuses a key
    the manifest already has (:class:`NameTakenError`, nothing written); the default
    replaces it, as re-training a shipped checkpoint with ``train --save-dir pretrained``
    is meant to."""
    folder = folder or pretrained_dir()
    folder.mkdir(parents=True, exist_ok=True)
    file = f"{key}.safetensors"
    if not key or PurePosixPath(file).name != file or "\\" in key or key.startswith("."):
        raise CheckpointError(f"{key[:80]!r} cannot name a checkpoint file: use letters, digits, - and _.")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    manifest = folder / MANIFEST
    with locked(manifest):
        raw = _raw_manifest(manifest) if manifest.is_file() else {"checkpoints": {}}
        if not replace and key in raw["checkpoints"]:
            raise NameTakenError(key, f"already saved in {folder}", free_name(key, raw["checkpoints"]))
        atomic_write(folder / file, lambda temporary: save_file(
            state, temporary, metadata={"model": model_name, "build": json.dumps(build)}))
        entry = CheckpointEntry(
            key=key, file=file, sha256=sha256_of(folder / file), model=model_name, build=build,
            classes=list(classes), params=sum(p.numel() for p in model.parameters()), val_error=val_error,
            config=config, steps=steps, wall_time_s=round(wall_time_s, 1), device=device, kind=kind,
            epochs=None if epochs is None else round(epochs, 2), machine=machine,
        )
        # Merged as JSON, so entries this version cannot read (and any other key) are kept as they are.
        raw["checkpoints"][key] = {f: v for f, v in vars(entry).items() if f != "key"}
        raw["checkpoints"] = dict(sorted(raw["checkpoints"].items()))
        atomic_write(manifest, json.dumps(raw, indent=2))
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
    key, path = entry.key, checkpoint_path(entry, folder)  # checked again: a link may have changed since
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
