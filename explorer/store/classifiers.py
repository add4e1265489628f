"""Trained classifiers: the project's CIFAR-10 checkpoints, the user's fine-tuned models and
torchvision's ImageNet weights.

A name becomes a classifier in a straight line. :func:`resolve_classifier` finds where its
weights are (a shipped checkpoint, a fine-tuned one, torchvision's file, or none: random
weights) and reads everything that goes with them, the preprocessing the model was trained
with, its class names and a fingerprint of its files, from where the weights came from: the
checkpoint manifest (``pretrained/manifest.json``, written by ``explorer train --save-dir``)
or the torchvision weights' metadata. :meth:`ClassifierSource.load` then builds the model
and loads the checked weights. Nothing here is typed by hand.

Classifiers are meant to be cached and shared (the app serves several sessions from one
process), so the model is in eval mode with frozen parameters and nobody trains it. Every
forward pass through a shared model takes :attr:`Classifier.lock`: Grad-CAM's hooks would
otherwise record another session's activations (captum then fails, or worse, explains the
wrong image), and the gradient-norm pass swaps parameters in for its duration.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from explorer.data import CIFAR10_MEAN, CIFAR10_STD, folder_pixels, normalize, upsample
from explorer.data.images import to_uint8_tensor
from explorer.models import ModelSpec, get_model_spec, list_models, model_names
from explorer.settings import pretrained_dir
from explorer.store.checkpoints import (
    CheckpointEntry,
    CheckpointError,
    best_first,
    dataset_tag,
    describe_entry,
    finetuned_dir,
    load_entry,
    read_manifest,
)
from explorer.store.recent import RecentResults, input_key
from explorer.store.weights import (
    WeightsError,
    find_weights,
    get_instructions,
    load_weights_file,
    require_weights,
)


class ClassifierError(ValueError):
    """A classifier that does not exist or cannot be loaded; the message says what to do."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes a model's input, exactly as in the model's training: the uint8
    picture the net sees, then a per-channel normalisation. Resolved in one place, from the
    checkpoint's manifest entry (:func:`entry_preprocessing`) or from torchvision's weights
    (:func:`weights_preprocessing`), for the classifiers and the "Why shortcuts work" views alike."""

    input_size: int  # pixels of the square the model sees
    mean: tuple[float, float, float]  # the normalisation after ``model_input``, per channel in [0, 1]
    std: tuple[float, float, float]
    model_input: Callable[[Image.Image], torch.Tensor]  # RGB image -> uint8 (3, H, W), what the net sees


def entry_preprocessing(entry: CheckpointEntry) -> Preprocessing:
    """A manifest entry's preprocessing, as its training config records it; CheckpointError
    when the entry lacks it."""
    try:
        if entry.kind == "finetuned":  # the folder data set's resize, then the upsampling (explorer.transfer.finetune)
            recorded = entry.config["preprocessing"]
            size = recorded["input_size"]
            return Preprocessing(size, tuple(recorded["mean"]), tuple(recorded["std"]),
                                 finetuned_model_input(recorded["data_size"], size))
        size = entry.config["image_size"]  # trained from scratch with CIFAR-10's normalisation (§4.2)
        return Preprocessing(size, CIFAR10_MEAN, CIFAR10_STD, checkpoint_model_input(size))
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"The manifest entry of {entry.key!r} lacks its preprocessing ({error}).") from error


def weights_preprocessing(spec: ModelSpec) -> Preprocessing:
    """torchvision's own resize, centre crop and normalisation for ``spec``'s ImageNet weights."""
    transforms = spec.weights.transforms()
    return Preprocessing(transforms.crop_size[0], tuple(transforms.mean), tuple(transforms.std),
                         functools.partial(imagenet_model_input, transforms))


# Where a classifier's weights come from: the project's manifest (pretrained/), the user's
# fine-tuned models (pretrained/finetuned/), torchvision's ImageNet file, or nowhere.
SOURCE_KINDS = ("checkpoint", "finetuned", "imagenet", "untrained")


@dataclass(frozen=True)
class ClassifierSource:
    """Everything about a classifier but its weights, resolved from its name once."""
    name: str  # a manifest key ("resnet20-cifar10") or an ImageNet registry name ("resnet50")
    kind: str  # one of SOURCE_KINDS
    model_name: str  # the architecture in the registry
    classes: tuple[str, ...]
    preprocessing: Preprocessing  # how a photo becomes what the model sees, as in its training
    about: str  # one line for captions: what was trained on what, and how well it did
    fingerprint: str  # changes when the files behind the name change, so a cache reloads a retrained model
    entry: CheckpointEntry | None = None  # checkpoint, finetuned: the manifest entry
    folder: Path | None = None  # and the folder of its manifest
    weights: Path | None = None  # imagenet: torchvision's file

    @property
    def trained(self) -> bool:
        return self.kind != "untrained"

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    @property
    def model_input(self) -> Callable[[Image.Image], torch.Tensor]:
        return self.preprocessing.model_input

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.preprocessing.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.preprocessing.std

    def photo_caveat(self) -> str | None:
        """What a student should know before trusting this model on their own photo, or None.

        A classifier cannot say "none of these": given a photo of a person or a flower, a
        CIFAR-10 net still picks one of its ten classes, often with high confidence (Grace
        Hopper came out "dog 90.9%"). Its confidence is not a test of whether the photo is one
        it knows, so the caveat is shown for every photo, not only for low scores."""
        if self.input_size > 64 or len(self.classes) > 100:
            return None
        return (f"{self.name} knows only {len(self.classes)} classes ({', '.join(self.classes)}), seen as "
                f"{self.input_size}×{self.input_size}-pixel pictures. On a photo of anything else it still "
                "picks one of them, often with high confidence. For everyday photos, use an ImageNet ResNet "
                "(1,000 classes): `python -m explorer weights download resnet50`.")

    def load(self, device: torch.device | str = "cpu") -> Classifier:
        """Build the model and load the weights, checked (the manifest's sha256, a strict
        load); in eval mode with frozen parameters, so it can be shared."""
        if self.entry is not None:
            model = load_entry(self.entry, self.folder)
        else:
            model = get_model_spec(self.model_name).builder()
            if self.weights is not None:
                try:
                    load_weights_file(model, self.weights)
                except WeightsError as error:
                    raise ClassifierError(str(error)) from error
        return Classifier(self, model.to(device).eval().requires_grad_(False))


def _from_source(name: str) -> property:
    return property(lambda classifier: getattr(classifier.source, name), doc=f"The source's ``{name}``.")


@dataclass(eq=False)
class Classifier:
    """A loaded classifier: its source and its frozen model, with the lock every forward
    pass through the (shared) model takes, and the results it gave for recent inputs (the
    model is frozen, so they stay right)."""
    source: ClassifierSource
    model: nn.Module
    lock: threading.Lock = field(default_factory=threading.Lock)
    probabilities_of: RecentResults = field(default_factory=lambda: RecentResults(512))  # input_key -> row
    explanations: RecentResults = field(default_factory=lambda: RecentResults(32))  # gradcam.explain's

    name = _from_source("name")
    model_name = _from_source("model_name")
    classes = _from_source("classes")
    input_size = _from_source("input_size")
    model_input = _from_source("model_input")
    mean = _from_source("mean")
    std = _from_source("std")
    about = _from_source("about")
    trained = _from_source("trained")  # False: an ImageNet architecture with random weights

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to_model(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> the normalised float batch the model was trained on."""
        return normalize(batch, self.mean, self.std)

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The normalised batch for ``images``, on the model's device."""
        batch = torch.stack([self.model_input(image) for image in images]).to(self.device)
        return self.to_model(batch)

    @torch.no_grad()
    def probabilities(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Softmax over the classes, one row per image (on the CPU). Only the inputs not seen
        recently go through the model, in one batch."""
        inputs = [self.model_input(image) for image in images]
        keys = [input_key(pixels) for pixels in inputs]
        rows = {key: self.probabilities_of.get(key) for key in keys}
        missing = list({key: pixels for key, pixels in zip(keys, inputs) if rows[key] is None}.items())
        if missing:
            with self.lock:  # another session's Grad-CAM hooks would catch this forward pass
                # Sessions that asked at the same moment queued here: the first one answered the rest.
                rows.update({key: self.probabilities_of.get(key) for key, _ in missing})
                missing = [(key, pixels) for key, pixels in missing if rows[key] is None]
                if missing:
                    batch = self.to_model(torch.stack([pixels for _, pixels in missing]).to(self.device))
                    computed = torch.softmax(self.model(batch).float(), dim=1).cpu()
                    for (key, _), row in zip(missing, computed):
                        rows[key] = row
                        self.probabilities_of.put(key, row)
        return torch.stack([rows[key] for key in keys])

    def predict(self, images: Sequence[Image.Image], topk: int = 5) -> list[list[Prediction]]:
        """The ``topk`` most probable classes of each image, most probable first."""
        if topk < 1:
            raise ClassifierError(f"topk must be at least 1, got {topk}.")
        values, indices = self.probabilities(images).topk(min(topk, len(self.classes)), dim=1)
        return [[Prediction(self.classes[i], p) for p, i in zip(row_p.tolist(), row_i.tolist())]
                for row_p, row_i in zip(values, indices)]


def resolve_classifier(name: str, *, allow_untrained: bool = False) -> ClassifierSource:
    """Where ``name``'s classifier comes from, tried in this order: a key of the project's
    manifest (or a CIFAR architecture with exactly one checkpoint there: "resnet20"), a key
    of the fine-tuned models' manifest, an ImageNet model whose weights are on this machine
    (with ``allow_untrained``, also one whose weights are missing: random weights).
    Anything else is a ClassifierError that says what to do."""
    shipped = read_manifest()
    trained = [entry for entry in shipped.values() if entry.model == name and entry.kind == "trained"]
    if name not in shipped and len(trained) == 1:
        name = trained[0].key
    if name in shipped:
        return _entry_source(shipped[name], pretrained_dir())
    finetuned = read_manifest(finetuned_dir())
    if name in finetuned:
        return _entry_source(finetuned[name], finetuned_dir())
    if name in model_names("cifar"):
        listed = ", ".join(entry.key for entry in trained) or "none yet"
        raise ClassifierError(
            f"{name} has no single trained checkpoint (trained: {listed}). Pick a checkpoint, or train "
            f"one: python -m explorer train --models {name} --preset paper --save-dir pretrained")
    try:
        spec = get_model_spec(name)
    except ValueError as error:
        known = ", ".join(classifier_names()) or "none"
        raise ClassifierError(f"{error} Trained classifiers here: {known}.") from error
    return _weights_source(spec, allow_untrained=allow_untrained)


def load_classifier(name: str, device: torch.device | str = "cpu", *, allow_untrained: bool = False) -> Classifier:
    """``name``'s classifier (see :func:`resolve_classifier`), loaded on ``device``."""
    return resolve_classifier(name, allow_untrained=allow_untrained).load(device)


def _entry_source(entry: CheckpointEntry, folder: Path) -> ClassifierSource:
    """A manifest entry's classifier, with the preprocessing its training config records."""
    preprocessing = entry_preprocessing(entry)
    try:
        about = describe_entry(entry)
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"The manifest entry of {entry.key!r} lacks its preprocessing ({error}).") from error
    return ClassifierSource(
        name=entry.key, kind="finetuned" if entry.kind == "finetuned" else "checkpoint", model_name=entry.model,
        classes=tuple(entry.classes), preprocessing=preprocessing, about=about, fingerprint=entry.sha256,
        entry=entry, folder=folder)


def _weights_source(spec: ModelSpec, *, allow_untrained: bool) -> ClassifierSource:
    """An ImageNet model with torchvision's weights (or, with ``allow_untrained`` and no
    file here, random ones) and torchvision's own resize, crop and normalisation."""
    if spec.weights is None:
        raise ClassifierError(f"{spec.name} has no published ImageNet weights, so it cannot classify.")
    try:
        path = find_weights(spec) if allow_untrained else require_weights(spec)
    except WeightsError as error:
        raise ClassifierError(str(error)) from error
    if path is not None:
        about = (f"{spec.name} with torchvision's ImageNet weights ({spec.weights.name}): "
                 f"{100 - spec.imagenet_top1:.2f}% top-1 error on ImageNet's validation set")
    else:
        about = (f"{spec.name} UNTRAINED: random weights, so its predictions mean nothing "
                 f"(ImageNet weights are not on this machine: {get_instructions(spec)})")
    return ClassifierSource(
        name=spec.name, kind="untrained" if path is None else "imagenet", model_name=spec.name,
        classes=tuple(spec.weights.meta["categories"]), preprocessing=weights_preprocessing(spec), about=about,
        fingerprint="random weights" if path is None else str(path), weights=path)


# --- what each model sees ---------------------------------------------------------------


def checkpoint_model_input(image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    """CIFAR-style input: the largest centred square, shrunk to ``image_size`` pixels.

    CIFAR-10's photos are tight 32×32 crops of one object, so a photo is cropped square
    (not squashed) before it is shrunk; antialiasing keeps the small image faithful.
    """
    def model_input(image: Image.Image) -> torch.Tensor:
        pixels = to_uint8_tensor(image)
        side = min(pixels.shape[-2:])
        square = TF.center_crop(pixels, [side, side])
        return TF.resize(square, [image_size, image_size], antialias=True)
    return model_input


def imagenet_model_input(preprocess, image: Image.Image) -> torch.Tensor:
    """torchvision's resize and centre crop, kept as uint8 so the UI can show it."""
    pixels = TF.resize(to_uint8_tensor(image), preprocess.resize_size, antialias=True,
                       interpolation=preprocess.interpolation)
    return TF.center_crop(pixels, preprocess.crop_size)


def finetuned_model_input(data_size: int, input_size: int) -> Callable[[Image.Image], torch.Tensor]:
    """A fine-tuned model's input, made exactly as in training: the photo resized like the
    folder it was trained on (``data_size``², bilinear), then upsampled to ``input_size``."""
    def model_input(image: Image.Image) -> torch.Tensor:
        pixels = torch.from_numpy(folder_pixels(image.convert("RGB"), data_size).copy()).permute(2, 0, 1)
        return upsample(pixels.unsqueeze(0), input_size)[0]
    return model_input


# --- what can classify here ---------------------------------------------------------------


def imagenet_classifier_names() -> list[str]:
    """The ImageNet models whose weights are on this machine, in registry order."""
    return [name for name in model_names("imagenet") if find_weights(get_model_spec(name)) is not None]


def classifier_names() -> list[str]:
    """What can classify on this machine: the project's checkpoints, best validation error
    first, then the ImageNet models whose weights are present, then the user's fine-tuned
    models (pretrained/finetuned/), newest first."""
    shipped = read_manifest()
    checkpoints = [entry.key for entry in sorted(shipped.values(), key=best_first)]
    finetuned = [key for key in reversed(read_manifest(finetuned_dir())) if key not in shipped]
    return checkpoints + imagenet_classifier_names() + finetuned


def untrained_classifier_names() -> list[str]:
    """ImageNet models with published weights that are not on this machine: they can still
    show feature maps and gradients, with random weights and a clear "untrained" label."""
    return [spec.name for spec in list_models("imagenet")
            if spec.weights is not None and find_weights(spec) is None]


def default_classifier_name() -> str | None:
    """The checkpoint with the lowest validation error (shipped, so it works offline and
    out of the box), else the first ImageNet model with weights; None if nothing is trained."""
    names = classifier_names()
    return names[0] if names else None


def classifier_choices(*, checkpoints: bool = True) -> dict[str, str]:
    """name -> label for a model picker: the trained classifiers (:func:`classifier_names`,
    so the best shipped checkpoint is the default), then the ImageNet models whose weights
    are missing. ``checkpoints=False`` leaves the manifests out, for when one is broken."""
    entries = {**read_manifest(finetuned_dir()), **read_manifest()} if checkpoints else {}
    names = classifier_names() if checkpoints else imagenet_classifier_names()
    choices = {name: describe_entry(entries[name], "choice") if name in entries else f"{name} (ImageNet weights)"
               for name in names}
    choices.update((name, f"{name} (untrained: no ImageNet weights here)") for name in untrained_classifier_names())
    return choices


def residual_twin(name: str) -> str | None:
    """The checkpoint of the same depth trained on the same data, with shortcuts if ``name``
    has none and without if it has: resnet20-cifar10 <-> plain20-cifar10 (§4.2's pairs)."""
    try:
        entries = read_manifest()
    except CheckpointError:  # a broken manifest: no twin, the caller shows its own model only
        return None
    entry = entries.get(name)
    if entry is None:
        return None
    twin = get_model_spec(entry.model).twin
    tag = dataset_tag(entry.config["data"])
    candidates = sorted((e for e in entries.values() if e.model == twin and dataset_tag(e.config["data"]) == tag),
                        key=best_first)
    return candidates[0].key if candidates and twin is not None else None


def missing_classifier_message() -> str:
    return ("No trained classifier here: pretrained/manifest.json lists no checkpoint and no ImageNet "
            "weights are present. Train one with `python -m explorer train --models resnet20 --preset "
            f"paper --save-dir pretrained`, or get ImageNet weights: {get_instructions(get_model_spec('resnet18'))}")
