"""Trained classifiers: the project's CIFAR-10 checkpoints and torchvision's ImageNet weights.

A :class:`Classifier` bundles a trained model with the preprocessing it was trained with
and its class names, all read from where the weights came from: the checkpoint manifest
(``pretrained/manifest.json``, written by ``explorer train --save-dir``) or the torchvision
weights' metadata. Nothing here is typed by hand.

Classifiers are meant to be cached and shared (the app serves several sessions from one
process), so the model is in eval mode with frozen parameters and nobody trains it. Every
forward pass through a shared model takes :attr:`Classifier.lock`: Grad-CAM's hooks would
otherwise record another session's activations (captum then fails, or worse, explains the
wrong image), and the gradient-norm pass swaps parameters in for its duration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from explorer.checkpoints import (CheckpointEntry, CheckpointError, best_first, dataset_tag, finetuned_dir, load_checkpoint,
                                  read_manifest)
from explorer.data import CIFAR10_MEAN, CIFAR10_STD, folder_pixels, normalize, upsample
from explorer.images import to_uint8_tensor
from explorer.models import get_model_spec, list_models, model_names
from explorer.weights import WeightsError, find_weights, get_instructions, load_pretrained


class ClassifierError(ValueError):
    """A classifier that does not exist or cannot be loaded; the message says what to do."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float


@dataclass(eq=False)
class Classifier:
    name: str  # a manifest key ("resnet20-cifar10") or an ImageNet registry name ("resnet50")
    model_name: str  # the architecture in the registry
    model: nn.Module
    classes: list[str]
    input_size: int  # pixels of the square the model sees
    model_input: Callable[[Image.Image], torch.Tensor]  # RGB image -> uint8 (3, H, W), what the net sees
    to_model: Callable[[torch.Tensor], torch.Tensor]  # uint8 batch -> the normalised float batch
    about: str  # one line for captions: what was trained on what, and how well it did
    mean: tuple[float, float, float]  # the normalisation ``to_model`` applies, per channel in [0, 1]
    std: tuple[float, float, float]
    trained: bool = True  # False: an ImageNet architecture with random weights (no weights here)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The normalised batch for ``images``, on the model's device."""
        batch = torch.stack([self.model_input(image) for image in images]).to(self.device)
        return self.to_model(batch)

    @torch.no_grad()
    def probabilities(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Softmax over the classes, one row per image (on the CPU)."""
        batch = self.prepare(images)
        with self.lock:  # another session's Grad-CAM hooks would catch this forward pass
            return torch.softmax(self.model(batch).float(), dim=1).cpu()

    def predict(self, images: Sequence[Image.Image], topk: int = 5) -> list[list[Prediction]]:
        """The ``topk`` most probable classes of each image, most probable first."""
        if topk < 1:
            raise ClassifierError(f"topk must be at least 1, got {topk}.")
        values, indices = self.probabilities(images).topk(min(topk, len(self.classes)), dim=1)
        return [[Prediction(self.classes[i], p) for p, i in zip(row_p.tolist(), row_i.tolist())]
                for row_p, row_i in zip(values, indices)]


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


def classifier_names() -> list[str]:
    """What can classify on this machine: the project's checkpoints, best validation error
    first, then the ImageNet models whose weights are present, then the user's fine-tuned
    models (pretrained/finetuned/), newest first."""
    checkpoints = sorted(read_manifest().values(), key=best_first)
    imagenet = [name for name in model_names("imagenet") if find_weights(get_model_spec(name)) is not None]
    finetuned = [key for key in reversed(read_manifest(finetuned_dir())) if key not in read_manifest()]
    return [entry.key for entry in checkpoints] + imagenet + finetuned


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


def load_classifier(name: str, device: torch.device | str = "cpu", *, allow_untrained: bool = False) -> Classifier:
    """A checkpoint key, a CIFAR architecture with one checkpoint ("resnet20"), or an
    ImageNet model whose weights are on this machine (with ``allow_untrained``, also one
    whose weights are missing: random weights, ``trained=False``)."""
    entries = read_manifest()
    matches = [entry for entry in entries.values() if entry.model == name and entry.kind == "trained"]
    if name not in entries and len(matches) == 1:
        name = matches[0].key
    if name in entries:
        model, entry = load_checkpoint(name)
        return _frozen(Classifier(
            name=name, model_name=entry.model, model=model.to(device), classes=list(entry.classes),
            input_size=entry.config["image_size"],
            model_input=checkpoint_model_input(entry.config["image_size"]), to_model=normalize,
            about=describe_checkpoint(entry), mean=CIFAR10_MEAN, std=CIFAR10_STD,
        ))
    if name in read_manifest(finetuned_dir()):
        model, entry = load_checkpoint(name, finetuned_dir())
        preprocessing = entry.config["preprocessing"]
        mean, std = tuple(preprocessing["mean"]), tuple(preprocessing["std"])
        return _frozen(Classifier(
            name=name, model_name=entry.model, model=model.to(device), classes=list(entry.classes),
            input_size=preprocessing["input_size"],
            model_input=finetuned_model_input(preprocessing["data_size"], preprocessing["input_size"]),
            to_model=lambda batch: normalize(batch, mean, std), about=describe_finetuned(entry), mean=mean, std=std,
        ))
    if name in model_names("cifar"):
        trained = ", ".join(e.key for e in matches) or "none yet"
        raise ClassifierError(
            f"{name} has no single trained checkpoint (trained: {trained}). Pick a checkpoint, or train "
            f"one: python -m explorer train --models {name} --preset paper --save-dir pretrained")
    try:
        spec = get_model_spec(name)
    except ValueError as error:
        known = ", ".join(classifier_names()) or "none"
        raise ClassifierError(f"{error} Trained classifiers here: {known}.") from error
    if spec.weights is None:
        raise ClassifierError(f"{name} has no published ImageNet weights, so it cannot classify.")
    model = spec.builder()
    trained = not allow_untrained or find_weights(spec) is not None
    if trained:
        try:
            load_pretrained(model, name)
        except WeightsError as error:
            raise ClassifierError(str(error)) from error
        about = (f"{name} with torchvision's ImageNet weights ({spec.weights.name}): "
                 f"{100 - spec.imagenet_top1:.2f}% top-1 error on ImageNet's validation set")
    else:
        about = (f"{name} UNTRAINED: random weights, so its predictions mean nothing "
                 f"(ImageNet weights are not on this machine: {get_instructions(spec)})")
    preprocess = spec.weights.transforms()  # torchvision's own resize, crop and normalisation
    size = preprocess.crop_size[0]
    return _frozen(Classifier(
        name=name, model_name=name, model=model.to(device), classes=list(spec.weights.meta["categories"]),
        input_size=size, model_input=lambda image: imagenet_model_input(preprocess, image),
        to_model=lambda batch: normalize(batch, preprocess.mean, preprocess.std), about=about, trained=trained,
        mean=tuple(preprocess.mean), std=tuple(preprocess.std),
    ))


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


def _frozen(classifier: Classifier) -> Classifier:
    classifier.model.eval().requires_grad_(False)
    return classifier


def describe_finetuned(entry: CheckpointEntry) -> str:
    """One line from a fine-tuned model's manifest entry."""
    config = entry.config
    accuracy = "no validation accuracy recorded" if entry.val_error is None else (
        f"{100 * (1 - entry.val_error):.1f}% validation accuracy")
    return (f"{entry.model} backbone ({config['backbone']}) with a {entry.build['head']} head, fine-tuned "
            f"({config['train']}) on {dataset_tag(config['data'])} ({len(entry.classes)} classes, "
            f"{config['epochs']} epochs, {entry.wall_time_s:.0f} s on {entry.device}): {accuracy}")


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
    twin = entry.model.replace("resnet", "plain") if entry.model.startswith("resnet") else entry.model.replace("plain", "resnet")
    tag = dataset_tag(entry.config["data"])
    candidates = sorted((e for e in entries.values() if e.model == twin and dataset_tag(e.config["data"]) == tag),
                        key=best_first)
    return candidates[0].key if candidates and twin != entry.model else None


def describe_checkpoint(entry: CheckpointEntry) -> str:
    """One line from the manifest: architecture, data, training and the measured error."""
    error = "no validation error recorded" if entry.val_error is None else (
        f"{100 * entry.val_error:.2f}% validation error")
    return (f"{entry.model} trained by this project on {dataset_tag(entry.config['data'])} "
            f"({len(entry.classes)} classes, {entry.steps:,} steps, {entry.wall_time_s / 60:.0f} min "
            f"on {entry.device}): {error}")


def missing_classifier_message() -> str:
    return ("No trained classifier here: pretrained/manifest.json lists no checkpoint and no ImageNet "
            "weights are present. Train one with `python -m explorer train --models resnet20 --preset "
            f"paper --save-dir pretrained`, or get ImageNet weights: {get_instructions(get_model_spec('resnet18'))}")
