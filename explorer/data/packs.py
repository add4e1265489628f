"""Real CIFAR-10 images shipped with the app: a fresh laptop with no data teaches on real photos.

A teacher's laptop has no CIFAR-10 folder and often no internet. So two small *packs* of the
real images ship in ``pretrained/data/``, each one safetensors file holding the images' own JPEG
bytes (exactly the files of the CIFAR-10 copy the shipped checkpoints were trained on, so the
pixels are the same after decoding), their labels, and where each came from:

- ``cifar10-demo``: the class demo's classes (:data:`explorer.paper.degradation.CLASS_DEMO_CLASSES`) drawn
  from the 45k *training* part of the §4.2 split, plus held-out images of the same part for
  the demo's validation curve;
- ``cifar10-eval``: images drawn only from the 5k *validation* part, which no shipped
  checkpoint trained on, balanced over the ten classes. Lesion studies, Fig. 7's responses
  and the loss surfaces are measured on it.

The split is the one every shipped checkpoint used: the 50,000 files sorted by path, shuffled
by ``torch.randperm(50000)`` seeded with 0, the first 5,000 held out
(:func:`explorer.data.dataset.split_train_val`). Within a part, each class takes its images
in that shuffled order, so a pack is reproducible from the folder by :func:`build_pack`.

A pack is a data source like the others: ``"pack:cifar10-eval"``. Its training and held-out
parts are the pack's own, not a random split. Every image is decoded through the one image
gate (:func:`explorer.data.images.read_image`), and the file's sha256 is checked against
``pretrained/data/manifest.json`` before anything is decoded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save

from explorer.data.dataset import DataError, InMemoryData, ProgressCallback, SourceKind, report_progress
from explorer.data.decoder import folder_pixels
from explorer.data.images import ImageError, read_image
from explorer.data.scanner import scan_folder
from explorer.files import atomic_write, locked
from explorer.settings import pretrained_dir

MANIFEST = "manifest.json"
SPLIT_SEED = 0  # the seed every shipped checkpoint's 45k/5k split used (pretrained/manifest.json)
SPLIT_VAL = 5000  # §4.2: "45k/5k train/val split"
_PROGRESS_EVERY = 1000


def packs_dir() -> Path:
    """``pretrained/data`` (``$EXPLORER_PRETRAINED_DIR/data`` when that is set)."""
    return pretrained_dir() / "data"


@dataclass(frozen=True)
class PackSpec:
    """What a pack holds: which classes, how many of each, from which part of the split."""

    name: str
    part: str  # "train" (the 45k) or "val" (the 5k held out by every shipped checkpoint)
    classes: tuple[str, ...] | None  # None: all ten
    per_class: int  # images of each class in the pack's training part
    held_out_per_class: int  # images of each class in the pack's own held-out part
    about: str  # how a page names it, e.g. "2,000 CIFAR-10 validation images shipped with the app"


DEMO_CLASSES = ("automobile", "frog", "ship")  # explorer.paper.degradation.CLASS_DEMO_CLASSES (a test keeps them equal)

PACK_SPECS = {
    # The demo preset draws 300 × 64 = 19,200 images: about three passes over 6,000.
    "cifar10-demo": PackSpec("cifar10-demo", "train", DEMO_CLASSES, 2000, 100,
                             "6,000 CIFAR-10 training images of 3 classes (+300 held out), shipped with the app"),
    # Everything here is held out: a model is only ever evaluated on it.
    "cifar10-eval": PackSpec("cifar10-eval", "val", None, 0, 200,
                             "2,000 CIFAR-10 validation images (200 a class) shipped with the app, "
                             "never trained on by the shipped models"),
}


@dataclass(frozen=True)
class PackEntry:
    """A pack's line in ``pretrained/data/manifest.json``."""

    name: str
    file: str
    sha256: str
    classes: tuple[str, ...]
    train: int
    held_out: int
    about: str
    origin: str  # the folder it was built from, described (never a path of the building machine)
    split: str


def pack_source(name: str) -> str:
    """The source text of the pack ``name``, e.g. ``"pack:cifar10-eval"``."""
    return f"{SourceKind.PACK}:{name}"


def read_manifest(folder: Path | None = None) -> dict[str, PackEntry]:
    folder = folder or packs_dir()
    try:
        raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise DataError(f"The shipped data manifest {folder / MANIFEST} cannot be read ({error}).") from error
    entries = {}
    for name, values in raw.items():
        try:
            entries[name] = PackEntry(name=name, file=values["file"], sha256=values["sha256"],
                                      classes=tuple(values["classes"]), train=int(values["train"]),
                                      held_out=int(values["held_out"]), about=values["about"],
                                      origin=values["origin"], split=values["split"])
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"The shipped data manifest's entry {name!r} is malformed ({error}).") from error
    return entries


def available_packs(folder: Path | None = None) -> dict[str, PackEntry]:
    """The packs whose file is present (a manifest entry without its file is not offered)."""
    folder = folder or packs_dir()
    try:
        entries = read_manifest(folder)
    except DataError:
        return {}
    return {name: entry for name, entry in entries.items() if (folder / Path(entry.file).name).is_file()}


def _split_order(count: int) -> torch.Tensor:
    return torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))


def _chosen_images(files, classes: tuple[str, ...], spec: PackSpec) -> list[tuple[int, int, bool]]:
    """(index in the sorted listing, label, held out) of every image ``spec`` takes: each
    class's first images of its part of the split, in the split's shuffled order."""
    order = _split_order(len(files)).tolist()
    part = order[:SPLIT_VAL] if spec.part == "val" else order[SPLIT_VAL:]
    wanted = spec.classes or classes
    label_of = {name: i for i, name in enumerate(wanted)}
    train_take = {name: spec.per_class for name in wanted}
    held_take = {name: spec.held_out_per_class for name in wanted}
    chosen: list[tuple[int, int, bool]] = []
    for index in part:
        name = files[index].relative.split("/", 1)[0]
        if name not in label_of:
            continue
        if train_take[name]:
            train_take[name] -= 1
            chosen.append((index, label_of[name], False))
        elif held_take[name]:
            held_take[name] -= 1
            chosen.append((index, label_of[name], True))
    if any(train_take.values()) or any(held_take.values()):
        raise DataError(f"The folder has too few images of some class for {spec.name}.")
    return sorted(chosen, key=lambda c: (c[2], c[1], c[0]))  # training part first, by class


def _pack_tensors(blobs: list[bytes], chosen: list[tuple[int, int, bool]]) -> dict[str, torch.Tensor]:
    offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
    digests = np.stack([np.frombuffer(hashlib.sha256(b).digest(), dtype=np.uint8) for b in blobs])
    return {
        "jpeg": torch.from_numpy(np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()),
        "offsets": torch.from_numpy(offsets),
        "labels": torch.tensor([label for _, label, _ in chosen], dtype=torch.int64),
        "held_out": torch.tensor([held for _, _, held in chosen], dtype=torch.bool),
        "source_index": torch.tensor([index for index, _, _ in chosen], dtype=torch.int64),
        "sha256": torch.from_numpy(digests),
    }


def build_pack(root: Path, spec: PackSpec, out_dir: Path) -> PackEntry:
    """Build ``spec`` from the CIFAR-10 training folder ``root`` (50,000 files, ImageFolder
    layout) into ``out_dir/<name>.safetensors`` and add it to ``out_dir/manifest.json``."""
    classes, files = scan_folder(root)
    if len(files) != 50_000:
        raise DataError(f"{root} holds {len(files):,} images; the packs are cut from CIFAR-10's 50,000 "
                        "training images (the split every shipped checkpoint used).")
    chosen = _chosen_images(files, classes, spec)
    blobs = [(root / files[index].relative).read_bytes() for index, _, _ in chosen]
    wanted = spec.classes or classes
    metadata = {"classes": json.dumps(list(wanted)),
                "paths": json.dumps([files[index].relative for index, _, _ in chosen])}
    out_dir.mkdir(parents=True, exist_ok=True)
    file = f"{spec.name}.safetensors"
    atomic_write(out_dir / file, save(_pack_tensors(blobs, chosen), metadata=metadata))
    held = sum(1 for c in chosen if c[2])
    entry = PackEntry(
        name=spec.name, file=file, sha256=hashlib.sha256((out_dir / file).read_bytes()).hexdigest(),
        classes=tuple(wanted), train=len(chosen) - held, held_out=held, about=spec.about,
        origin="CIFAR-10's 50,000 training images, the JPEG (quality 75) ImageFolder copy the shipped "
               "checkpoints were trained on",
        split=(f"files sorted by path, torch.randperm(50000) seeded {SPLIT_SEED}, the first {SPLIT_VAL:,} held out "
               f"(the §4.2 45k/5k split of every shipped checkpoint); this pack draws from the "
               f"{'5k validation' if spec.part == 'val' else '45k training'} part, each class in that order"),
    )
    with locked(out_dir / MANIFEST):
        manifest_path = out_dir / MANIFEST
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
        manifest[spec.name] = {key: (list(value) if isinstance(value, tuple) else value)
                               for key, value in entry.__dict__.items() if key != "name"}
        atomic_write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return entry


def load_pack(name: str, image_size: int = 32, progress: ProgressCallback | None = None,
              folder: Path | None = None) -> InMemoryData:
    """The pack ``name`` as an :class:`InMemoryData`: its training part and its held-out part
    (for ``cifar10-eval`` everything is held out and the training part is empty)."""
    folder = folder or packs_dir()
    entries = read_manifest(folder)
    if name not in entries:
        known = ", ".join(pack_source(n) for n in entries) or "none (pretrained/data/ is missing)"
        raise DataError(f"No shipped data set {name!r}; the shipped ones are {known}.")
    entry = entries[name]
    path = folder / Path(entry.file).name
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"The shipped data set {name} is missing ({path}: {error.strerror}). "
                        "Check out the repository again.") from error
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise DataError(f"The shipped data set {path.name} does not match its sha256 in {MANIFEST}: "
                        "it is damaged or was replaced. Check out the repository again.")
    tensors = load_safetensors(data)
    jpeg, offsets = tensors["jpeg"].numpy(), tensors["offsets"].tolist()
    count = len(offsets) - 1
    pixels = np.empty((count, image_size, image_size, 3), dtype=np.uint8)
    report_progress(progress, 0, count)
    for i in range(count):
        try:
            image = read_image(jpeg[offsets[i]:offsets[i + 1]].tobytes(), name=f"{name} image {i}")
        except ImageError as error:
            raise DataError(str(error)) from error
        pixels[i] = folder_pixels(image, image_size)
        if (i + 1) % _PROGRESS_EVERY == 0 or i + 1 == count:
            report_progress(progress, i + 1, count)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    labels, held = tensors["labels"], tensors["held_out"]
    return InMemoryData(name=pack_source(name), classes=entry.classes,
                        train_images=images[~held], train_labels=labels[~held],
                        val_images=images[held], val_labels=labels[held])
