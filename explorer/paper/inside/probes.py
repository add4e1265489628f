"""What the "Why shortcuts work" views look at: a trained model and the images it is probed with.

A :class:`Subject` is a trained model, built fresh for the caller (never a shared cached
instance: the views hook and perturb it), with its class names and the normalisation it
was trained with. A :class:`Probe` is the batch of images the views run on:

* by default the validation split the checkpoint's own training run held out (§4.2's 45k/5k
  split of the CIFAR-10 training set, rebuilt from the run's data source, seed and
  ``val_size`` stored in the manifest), when that folder is on this machine; so no image was
  trained on;
* else the CIFAR-10 evaluation pack shipped with the app (``pack:cifar10-eval``: 2,000 images
  of that same 5k part, 200 a class), of which a class-balanced subset is taken: the first
  N/10 of each class, in the pack's order (issue 38: on a laptop without CIFAR-10 the views
  ran on the 10 sample photos, which gave ResNet-56 50% error);
* ``samples``: the photos shipped in ``explorer/samples`` (one held-out CIFAR-10 image per
  class), only when asked for;
* or any source :func:`explorer.data.load_data` knows (``folder:PATH``, ``cifar10``,
  ``synthetic``), of which the validation split with seed 0 is used, as ``explorer train``
  would hold it out.

:func:`probe_data` says which of these a choice means on this machine, and how many images
it holds, before any image is decoded (the page's "How many" stops there).

Views that need labels (lesion errors, loss surfaces) call :func:`require_labels`: a data
set whose classes are not the model's has no meaningful error, so it is refused with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from explorer.data import DataError, DataSource, SourceKind, load_data, normalize, source_kind
from explorer.data.images import read_image_file, sample_images
from explorer.data.packs import available_packs, load_pack, pack_source
from explorer.models import ModelSpec, build_model, get_model_spec
from explorer.paper.inside.defaults import DEFAULT_IMAGES
from explorer.settings import PROBE_IMAGES, LimitError
from explorer.store.checkpoints import load_checkpoint, read_manifest
from explorer.store.classifiers import checkpoint_model_input, entry_preprocessing, weights_preprocessing
from explorer.store.weights import WeightsError, load_pretrained
from explorer.training.evaluate import Evaluation, eta_s, evaluate
from explorer.words import spoken_duration

BATCH_SIZE = 250  # images per forward pass: bounds memory, keeps each pass efficient on a CPU
SAMPLES = "samples"  # --data value of the shipped photos
EVAL_PACK = "cifar10-eval"  # the shipped held-out CIFAR-10 images (explorer.data.packs)
Progress = Callable[[float], None]  # progress(fraction done), 0.0 … 1.0


class InsideError(ValueError):
    """A model, data source or setting the views cannot use; the message says what to do."""


@dataclass(frozen=True)
class Subject:
    """A trained model, ready to be looked inside (eval mode, this caller's own instance)."""

    name: str  # what was asked for: a checkpoint key ("resnet56-cifar10") or "resnet50"
    spec: ModelSpec  # its registry entry: residual or not, blocks, twin
    model: nn.Module
    classes: tuple[str, ...]  # label i means classes[i]
    image_size: int  # side of the square input, in pixels
    mean: tuple[float, float, float]  # the normalisation it was trained with
    std: tuple[float, float, float]
    training_data: str | None = None  # the checkpoint's training source, e.g. "folder:/…/train"
    split_seed: int = 0  # seed and size of the validation split its training run held out
    val_size: int | None = None


@dataclass(frozen=True)
class Probe:
    """The images every view runs on, normalised as the model expects."""

    source: str  # where they came from, in words, for captions and the JSON
    images: torch.Tensor  # float32 (N, 3, H, W)
    labels: torch.Tensor | None  # int64 (N,) indices into the subject's classes; None: other classes
    classes: tuple[str, ...]  # the source's own class names

    @property
    def count(self) -> int:
        return int(self.images.shape[0])


def report(progress: Progress | None, fraction: float) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)))


def progress_line(view: str, net: str, position: int, nets: int, fraction: float, elapsed_s: float,
                  started_at: float = 0.0) -> str:
    """What a view's progress bar says while it computes ``net`` (``position`` of ``nets``):
    "lesion: resnet56 (2 of 4), 34% · about 40 s left for it". The time left is this net's
    alone, at its own pace: the nets differ in depth (a 56-layer net costs ~3× a 20-layer
    one), so a guess for the others would mislead. ``elapsed_s`` counts from the net's first
    progress report, made at ``started_at``: loading the net and its images comes before it
    and is not part of the pace. No guess before 2% or 1 s of it, nor once done."""
    line = f"{view}: {net} ({position} of {nets}), {100 * fraction:.0f}%"
    done = fraction - started_at
    if done >= 0.02 and fraction < 1.0 and elapsed_s >= 1.0:
        line += f" · about {spoken_duration(eta_s(elapsed_s, done, 1.0 - started_at))} left for it"
    return line


def load_subject(name: str) -> Subject:
    """A shipped checkpoint (key, or a CIFAR architecture with exactly one checkpoint), or an
    ImageNet model whose torchvision weights are on this machine."""
    entries = read_manifest()
    trained = [entry.key for entry in entries.values() if entry.model == name and entry.kind == "trained"]
    key = trained[0] if name not in entries and len(trained) == 1 else name
    if key in entries:
        model, entry = load_checkpoint(key)
        preprocessing = entry_preprocessing(entry)
        return Subject(name=key, spec=get_model_spec(entry.model), model=model, classes=tuple(entry.classes),
                       image_size=preprocessing.input_size, mean=preprocessing.mean, std=preprocessing.std,
                       training_data=entry.config.get("data"), split_seed=entry.config.get("seed", 0),
                       val_size=entry.config.get("val_size"))
    spec = get_model_spec(name)  # UnknownModelError (a ValueError) lists the known names
    if spec.family != "imagenet":
        raise InsideError(f"{name} has no trained checkpoint here (checkpoints: {', '.join(entries) or 'none'}); "
                          f"train one: python -m explorer train --models {name} --save-dir pretrained")
    if spec.weights is None:
        raise InsideError(f"{name} has no published ImageNet weights; an untrained net shows nothing of interest.")
    model = build_model(name)
    try:
        load_pretrained(model, name)
    except WeightsError as error:
        raise InsideError(f"{name} needs its ImageNet weights: {error}") from error
    preprocessing = weights_preprocessing(spec)
    return Subject(name=name, spec=spec, model=model.eval(), classes=tuple(spec.weights.meta["categories"]),
                   image_size=preprocessing.input_size, mean=preprocessing.mean, std=preprocessing.std)


@dataclass(frozen=True)
class ProbeData:
    """What a choice of images means on this machine, known before any image is decoded."""

    data: str  # the source load_probe reads: "folder:…", "pack:cifar10-eval", "samples", …
    about: str  # in words, e.g. "the 2,000 CIFAR-10 validation images shipped with the app …"
    available: int  # how many images it holds (at most settings.PROBE_IMAGES.high)


def probe_data(data: str | None, training_data: str | None = None, val_size: int | None = None) -> ProbeData:
    """Which images ``data`` means ("default" or None: the checkpoint's own held-out split when
    ``training_data`` is a folder on this machine, else the shipped evaluation pack)."""
    if data is None or data == "default":
        own = _own_split(training_data, val_size)
        return own if own is not None else probe_data(pack_source(EVAL_PACK))
    if data == SAMPLES:
        return ProbeData(SAMPLES, "the 10 sample photos in explorer/samples (one a class)", len(sample_images()))
    if source_kind(data) is SourceKind.PACK:
        shipped = DataSource.read(data)  # None for a pack that is not shipped: said as one that is not here
        entry = available_packs().get(shipped.pack) if shipped is not None else None
        if entry is None:
            raise InsideError(f"The shipped images {data} are not here (pretrained/data/ holds "
                              f"{', '.join(map(pack_source, available_packs())) or 'none'}); check out the "
                              "repository again, or choose the sample photos (--data samples) or folder:PATH.")
        return ProbeData(data, entry.about, min(entry.held_out, int(PROBE_IMAGES.high)))
    return ProbeData(data, data, int(PROBE_IMAGES.high))


def _own_split(training_data: str | None, val_size: int | None) -> ProbeData | None:
    source = DataSource.read(training_data)
    if source is None or source.kind is not SourceKind.FOLDER or not Path(source.path).is_dir():
        return None
    count = val_size if val_size is not None else 5000  # §4.2's 5k of the 50k (data.split_train_val)
    return ProbeData(training_data, f"the {count:,}-image validation split its training run held out "
                                    f"({training_data})", min(count, int(PROBE_IMAGES.high)))


def load_probe(subject: Subject, data: str | None = None, images: int = DEFAULT_IMAGES, *,
               progress: Progress | None = None) -> Probe:
    """``images`` images of ``data`` (None: the subject's default, see the module doc), or all it
    has when it has fewer; ``images`` within ``settings.PROBE_IMAGES`` (the CLI's ``--images`` too)."""
    try:
        images = PROBE_IMAGES.check(images, "the number of images")
    except LimitError as error:
        raise InsideError(str(error)) from None
    if data is None or data == "default":
        data = probe_data(None, subject.training_data, subject.val_size).data
        if source_kind(data) is SourceKind.FOLDER:
            return _own_probe(subject, images, progress)
    if data == SAMPLES:
        return _sample_probe(subject, images)
    if source_kind(data) is SourceKind.PACK:
        return _pack_probe(subject, probe_data(data), images, progress)
    try:
        loaded = load_data(data, image_size=subject.image_size, seed=0)
    except DataError as error:
        raise InsideError(str(error)) from error
    report(progress, 1.0)
    return _probe_from(subject, f"{loaded.name}, validation split (seed 0)", loaded.val_images,
                       loaded.val_labels, loaded.classes, images)


def _own_probe(subject: Subject, images: int, progress: Progress | None) -> Probe:
    try:
        loaded = load_data(subject.training_data, image_size=subject.image_size, seed=subject.split_seed,
                           val_size=subject.val_size)
    except DataError as error:
        raise InsideError(f"{subject.name}'s training data cannot be read ({error}); choose the shipped "
                          f"images ({pack_source(EVAL_PACK)}).") from error
    report(progress, 1.0)
    held = int(loaded.val_images.shape[0])
    source = (f"{'the' if images >= held else f'the first {images:,} of the'} {held:,} images of the validation "
              f"split {subject.name}'s training run held out ({loaded.name}, seed {subject.split_seed})")
    return _probe_from(subject, source, loaded.val_images, loaded.val_labels, loaded.classes, images)


def balanced(labels: torch.Tensor, images: int) -> torch.Tensor:
    """Indices of ``images`` of ``labels``, as even over the classes as they allow: each class's
    first ones, in order (a pack is ordered by class, so its first N would be one or two classes)."""
    classes = labels.unique().tolist()
    wanted = {label: images // len(classes) + (i < images % len(classes)) for i, label in enumerate(classes)}
    taken: dict[int, int] = {}
    chosen = []
    for index, label in enumerate(labels.tolist()):
        if taken.get(label, 0) < wanted[label]:
            taken[label] = taken.get(label, 0) + 1
            chosen.append(index)
    return torch.tensor(chosen, dtype=torch.int64)


def _pack_probe(subject: Subject, chosen: ProbeData, images: int, progress: Progress | None) -> Probe:
    try:
        loaded = load_pack(DataSource.parse(chosen.data).pack, image_size=subject.image_size,
                           progress=(lambda done, total: report(progress, done / total)) if progress else None)
    except DataError as error:
        raise InsideError(str(error)) from error
    held = int(loaded.val_images.shape[0])
    picked = balanced(loaded.val_labels, min(images, held))
    counts = torch.bincount(loaded.val_labels[picked]).tolist()
    low, high = min(c for c in counts if c), max(counts)
    per_class = f"{low:,}" if low == high else f"{low:,}–{high:,}"
    if chosen.data == pack_source(EVAL_PACK):
        source = (f"{'the' if picked.numel() == held else f'{picked.numel():,} of the'} {held:,} CIFAR-10 "
                  f"validation images shipped with the app ({per_class} a class), never trained on by the "
                  "shipped models")
    else:
        source = f"{picked.numel():,} of the {held:,} held-out images of {chosen.about} ({per_class} a class)"
    return _probe_from(subject, source, loaded.val_images[picked], loaded.val_labels[picked], loaded.classes,
                       images)


def _sample_probe(subject: Subject, images: int) -> Probe:
    paths = sample_images()
    square = checkpoint_model_input(subject.image_size)  # the centred square, shrunk (CIFAR's photos are tight crops)
    pixels = torch.stack([square(read_image_file(path)) for path in paths.values()])
    classes = tuple(paths)
    return _probe_from(subject, f"the {len(paths)} sample photos in explorer/samples", pixels,
                       torch.arange(len(classes)), classes, images)


def _probe_from(subject: Subject, source: str, pixels: torch.Tensor, labels: torch.Tensor,
                classes: tuple[str, ...], images: int) -> Probe:
    if pixels.shape[0] == 0:
        raise InsideError(f"{source} holds no images.")
    pixels, labels = pixels[:images], labels[:images]
    known = set(subject.classes)
    mapped = None
    if all(name in known for name in classes):  # the same classes, or some of them
        to_model = torch.tensor([subject.classes.index(name) for name in classes])
        mapped = to_model[labels]
    return Probe(source=source, images=normalize(pixels, subject.mean, subject.std), labels=mapped,
                 classes=tuple(classes))


def require_labels(subject: Subject, probe: Probe) -> torch.Tensor:
    """The probe's labels in the model's class indices, or a clear error when its classes
    are not the model's (an error rate against other classes means nothing)."""
    if probe.labels is None:
        other = [name for name in probe.classes if name not in subject.classes]
        raise InsideError(
            f"{probe.source} has classes {subject.name} was not trained on ({', '.join(other[:5])}"
            f"{', …' if len(other) > 5 else ''}); this view measures errors, so it needs images of the "
            f"model's own classes ({', '.join(subject.classes[:10])}{', …' if len(subject.classes) > 10 else ''}).")
    return probe.labels


def batches(images: torch.Tensor, device: torch.device, batch_size: int | None = None):
    """``images`` in slices of ``batch_size`` (default :data:`BATCH_SIZE`), moved to ``device``."""
    batch_size = batch_size or BATCH_SIZE
    for start in range(0, images.shape[0], batch_size):
        yield start, images[start:start + batch_size].to(device)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def probe_evaluation(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Evaluation:
    """:func:`explorer.training.evaluate.evaluate` on a probe's images, which are normalised
    already: :data:`BATCH_SIZE` of them at a time, moved to the model's device."""
    device = model_device(model)
    return evaluate(model, images, labels, BATCH_SIZE, prepare=lambda batch: batch.to(device))
