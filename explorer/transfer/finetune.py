"""Transfer learning: a trained ResNet's features, a new head, a new data set.

The usual notebook takes an ImageNet ResNet-50 without its head, upsamples CIFAR-10 to
224×224, adds a head and trains. Done here:

* **fast**: with the backbone frozen, its features do not change, so they are computed once
  and the head trains on the cached feature vectors (seconds, not minutes per epoch);
* **correct**: the loss is cross-entropy on logits with class indices (not a binary or
  squared loss on one-hot softmax outputs); the backbone keeps its own normalisation; and a
  photo classified afterwards goes through exactly the training preprocessing
  (:func:`explorer.store.classifiers.finetuned_model_input`);
* **safe**: the result is safetensors plus a manifest entry (backbone, head, classes,
  preprocessing, validation accuracy), never a pickled model.

The backbone is loaded fresh for every run (never the app's cached, shared copy), then its
``fc`` is replaced by the new head so all module names stay those of the backbone.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from explorer.data import Augmentation, InMemoryData, augment, denormalize, normalize, random_erase, upsample
from explorer.data.images import read_image_file, sample_images, to_uint8_tensor
from explorer.files import free_name
from explorer.models import get_model_spec, list_models, stage_ends
from explorer.models.heads import build_head, feature_width
from explorer.store.checkpoints import (
    CheckpointEntry,
    NameTakenError,
    dataset_tag,
    finetuned_dir,
    read_manifest,
    save_checkpoint,
)
from explorer.store.classifiers import classifier_names, load_classifier
from explorer.store.weights import find_weights
from explorer.training.evaluate import eta_s, evaluate, safe_name
from explorer.transfer.recipe import (
    NO_AUGMENTATION,
    TRAIN_CHOICES,
    FinetuneConfig,
    TrainPart,
    cache_explanation,
    check_finetune_config,
)

__all__ = ["NO_AUGMENTATION", "TRAIN_CHOICES", "FinetuneConfig", "FinetuneResult", "FinetuneStep", "Finetuning",
           "TrainPart", "backbone_names", "cache_explanation", "check_finetune_config", "default_backbone_name", "default_upsample",
           "check_save_name", "erasing_preview", "erasing_preview_of_samples", "finetune", "save_finetuned",
           "suggested_key"]

_FEATURE_CHUNK = 128  # images per backbone forward pass when caching or evaluating (256 was slower on a 2-core CPU)


def backbone_names() -> list[str]:
    """Models that can be fine-tuned here: ImageNet ResNets with weights (best ImageNet
    accuracy first), then the project's checkpoints (best validation error first)."""
    imagenet = sorted((spec for spec in list_models("imagenet")
                       if spec.block != "vgg" and spec.weights is not None and find_weights(spec) is not None),
                      key=lambda spec: -(spec.imagenet_top1 or 0))
    shipped = [name for name in classifier_names() if name in read_manifest()]
    return [spec.name for spec in imagenet] + shipped


def default_backbone_name() -> str | None:
    """The best registered model with weights here; offline, a shipped CIFAR model."""
    names = backbone_names()
    return names[0] if names else None


def default_upsample(backbone: str) -> int:
    """How much to enlarge the 32×32 images for ``backbone``: 7 for an ImageNet model, whose
    training crops were 224×224 = 32 × 7 (§3.4), 1 for the project's own CIFAR-10
    checkpoints, trained at 32×32 (§4.2). The page and ``finetune`` both start from this."""
    return 1 if backbone in read_manifest() else 7


@dataclass(frozen=True)
class FinetuneStep:
    phase: str  # "features" (computing the cache) or "training"
    done: int  # images (features) or steps (training) done in this phase
    total: int
    phase_elapsed_s: float
    epoch: float = 0.0
    train_accuracy: float | None = None  # over the current epoch so far
    val_accuracy: float | None = None  # at the end of each epoch
    loss: float | None = None
    chance: float | None = None  # with the validation accuracy: 1 / classes, what guessing scores

    @property
    def eta_s(self) -> float | None:
        return eta_s(self.phase_elapsed_s, self.done, self.total)

    def history_row(self) -> dict:
        """The epoch's line of the history (the chart's points), once it is validated."""
        return {"epoch": round(self.epoch), "train_accuracy": self.train_accuracy,
                "val_accuracy": self.val_accuracy, "chance": self.chance}


@dataclass
class FinetuneResult:
    model: nn.Module  # the backbone with the trained head as its fc, eval mode
    model_name: str  # the backbone's architecture
    backbone_build: dict
    classes: list[str]
    val_accuracy: float | None
    preprocessing: dict
    epochs_done: int
    steps: int
    wall_time_s: float
    device: str
    history: list[dict] = field(default_factory=list)  # per epoch: train and validation accuracy


@dataclass
class _Run:
    """What one fine-tuning run trains, and how far it has got."""

    forward: nn.Module  # the head alone (on cached features), or the backbone with the head as its fc
    optimizer: torch.optim.Optimizer
    train_modules: list[nn.Module]  # switched to train mode for each epoch; the rest stays in eval mode
    train_x: torch.Tensor  # cached feature vectors, or uint8 images
    val_x: torch.Tensor
    train_input: Callable[[torch.Tensor], torch.Tensor]  # train_x[batch] -> forward's input (augmented)
    val_input: Callable[[torch.Tensor], torch.Tensor]  # val_x[slice] -> forward's input
    step: int = 0  # optimiser steps done
    total_steps: int = 0
    phase_started: float = 0.0


class Finetuning:
    """One fine-tuning run: iterate :meth:`steps` for progress; then read :attr:`result`."""

    def __init__(self, config: FinetuneConfig, data: InMemoryData, device: torch.device | str = "cpu"):
        check_finetune_config(config)
        if data.image_size != config.data_size:
            raise ValueError(f"The data set is {data.image_size}×{data.image_size}, the config says "
                             f"{config.data_size}: load it with image_size={config.data_size}.")
        self.config = config
        self.data = data
        self.device = torch.device(device)
        self.result: FinetuneResult | None = None

    def steps(self, stop: threading.Event | None = None) -> Iterator[FinetuneStep]:
        """Load a fresh copy of the backbone, cache its features if it stays frozen, train for
        ``config.epochs`` epochs, then set :attr:`result`. ``stop`` ends the run between two
        batches; the epochs finished before it are kept (a stop while caching leaves no result)."""
        config = self.config
        started = time.perf_counter()
        torch.manual_seed(config.seed)  # the head's initialisation
        classifier = load_classifier(config.backbone, device=self.device)  # a private copy: we train it
        head = build_head(config.head, feature_width(classifier.model), len(self.data.classes)).to(self.device)
        train_images, train_labels = self.data.train_images, self.data.train_labels
        if config.train_limit is not None:  # the split is already shuffled: the first N are a random subset
            train_images, train_labels = train_images[:config.train_limit], train_labels[:config.train_limit]
        if len(self.data.val_labels) == 0:
            raise ValueError("Fine-tuning needs validation images to report an accuracy: set val_size above 0.")
        if config.uses_cached_features:
            everything = torch.cat([train_images, self.data.val_images])
            features = yield from self._cache_features(classifier, everything, stop)
            if features is None:
                return
            run = _Run(head, torch.optim.Adam(head.parameters(), lr=config.lr), [head],
                       features[:len(train_labels)], features[len(train_labels):], nn.Identity(), nn.Identity())
        else:
            run = self._backbone_with_head(classifier, head, train_images)
        history = yield from self._train(run, train_labels, stop)
        self.result = self._result(classifier, head, run, history, started)

    def _prepare(self, classifier, images: torch.Tensor) -> torch.Tensor:
        """uint8 images as the backbone was trained on them: upsampled, then its own normalisation."""
        return normalize(upsample(images.to(self.device), self.config.input_size), classifier.mean, classifier.std)

    def _cache_features(self, classifier, images: torch.Tensor,
                        stop: threading.Event | None) -> Generator[FinetuneStep, None, torch.Tensor | None]:
        """The frozen backbone's feature vectors (N, width) of ``images``, reporting progress;
        None if stopped first. Its ``fc`` becomes the identity until the head replaces it."""
        model = classifier.model
        model.fc = nn.Identity()
        model.eval()
        phase_started = time.perf_counter()
        features = []
        for start in range(0, len(images), _FEATURE_CHUNK):
            if stop is not None and stop.is_set():
                return None
            with torch.no_grad():
                features.append(model(self._prepare(classifier, images[start:start + _FEATURE_CHUNK])))
            yield FinetuneStep("features", min(start + _FEATURE_CHUNK, len(images)), len(images),
                               time.perf_counter() - phase_started)
        return torch.cat(features)

    def _backbone_with_head(self, classifier, head: nn.Module, train_images: torch.Tensor) -> _Run:
        """The backbone with ``head`` as its fc, ``config.train`` deciding what else learns."""
        config, model = self.config, classifier.model
        model.fc = head
        model.requires_grad_(False)
        head.requires_grad_(True)
        backbone_parameters: list[nn.Parameter] = []
        train_modules: list[nn.Module] = [head]
        if config.train is TrainPart.ALL:
            train_modules = [model]
            backbone_parameters = [p for name, p in model.named_parameters() if not name.startswith("fc.")]
        elif config.train is TrainPart.LAST_STAGE:
            last = model.get_submodule(stage_ends(model, get_model_spec(classifier.model_name))[-1][1])
            train_modules = [last, head]
            backbone_parameters = list(last.parameters())
        for parameter in backbone_parameters:
            parameter.requires_grad_(True)
        groups = [{"params": list(head.parameters()), "lr": config.lr}]
        if backbone_parameters:
            # Small steps for pretrained layers, so fine-tuning adjusts rather than erases what they learnt.
            groups.append({"params": backbone_parameters, "lr": config.lr / 100})
        augmentation = replace(config.augmentation, pad=config.augmentation.pad * config.upsample)  # data-set pixels

        def train_input(images: torch.Tensor) -> torch.Tensor:
            upsampled = upsample(images.to(self.device), config.input_size)
            return augment(upsampled, augmentation, mean=classifier.mean, std=classifier.std)

        return _Run(model, torch.optim.Adam(groups), train_modules, train_images, self.data.val_images,
                    train_input, lambda images: self._prepare(classifier, images))

    def _train(self, run: _Run, labels: torch.Tensor,
               stop: threading.Event | None) -> Generator[FinetuneStep, None, list[dict]]:
        """``config.epochs`` epochs in a seeded order, a validation pass after each; returns
        the history (per finished epoch: train and validation accuracy)."""
        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        run.total_steps = math.ceil(len(labels) / config.batch_size) * config.epochs
        run.phase_started = time.perf_counter()
        history: list[dict] = []
        for epoch in range(config.epochs):
            for module in run.train_modules:
                module.train()
            order = torch.randperm(len(labels), generator=generator)
            correct, seen, loss = yield from self._epoch(run, labels, order, epoch, stop)
            if stop is not None and stop.is_set() and seen < len(labels):
                break
            wrong = evaluate(run.forward, run.val_x, self.data.val_labels, _FEATURE_CHUNK,
                             prepare=run.val_input).wrong
            val_accuracy = (len(run.val_x) - wrong) / len(run.val_x)
            validated = FinetuneStep("training", run.step, run.total_steps, time.perf_counter() - run.phase_started,
                                     epoch + 1.0, correct / seen, val_accuracy, loss.item(),
                                     chance=1 / len(self.data.classes))
            history.append(validated.history_row())
            yield validated
        return history

    def _epoch(self, run: _Run, labels: torch.Tensor, order: torch.Tensor, epoch: int,
               stop: threading.Event | None) -> Generator[FinetuneStep, None, tuple]:
        """One pass over ``order``; returns (correct, seen, the last loss)."""
        batch_size = self.config.batch_size
        correct = seen = 0
        loss = None
        for start in range(0, len(order), batch_size):
            if stop is not None and stop.is_set():
                break
            index = order[start:start + batch_size]
            if len(index) == 1 and len(order) > 1:
                continue  # a last batch of one image: BatchNorm (the seed head's) cannot train on it
            batch_labels = labels[index].to(self.device)
            logits = run.forward(run.train_input(run.train_x[index]))
            loss = F.cross_entropy(logits, batch_labels)  # logits + class indices: softmax inside
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            run.step += 1
            correct += (logits.argmax(1) == batch_labels).sum().item()
            seen += len(index)
            yield FinetuneStep("training", run.step, run.total_steps, time.perf_counter() - run.phase_started,
                               epoch + seen / len(labels), correct / seen, None, loss.item())
        return correct, seen, loss

    def _result(self, classifier, head: nn.Module, run: _Run, history: list[dict], started: float) -> FinetuneResult:
        config, model = self.config, classifier.model
        model.fc = head
        model.eval().requires_grad_(False)
        entry = read_manifest().get(config.backbone)
        return FinetuneResult(
            model=model, model_name=classifier.model_name,
            backbone_build=dict(entry.build) if entry is not None else {},
            classes=list(self.data.classes), val_accuracy=history[-1]["val_accuracy"] if history else None,
            preprocessing={"data_size": config.data_size, "input_size": config.input_size,
                           "mean": list(classifier.mean), "std": list(classifier.std)},
            epochs_done=len(history), steps=run.step, wall_time_s=time.perf_counter() - started,
            device=str(self.device), history=history)


def finetune(config: FinetuneConfig, data: InMemoryData, device: torch.device | str = "cpu") -> FinetuneResult:
    """Run to the end without progress reports (tests, scripts)."""
    run = Finetuning(config, data, device)
    for _ in run.steps():
        pass
    return run.result


def suggested_key(config: FinetuneConfig, folder=None) -> str:
    """A name for the save box: backbone-head-data, versioned (``-2``, ``-3``, …) past the
    names already taken, so the suggested name never replaces an earlier save."""
    taken = {*read_manifest(), *read_manifest(folder or finetuned_dir())}
    return free_name(safe_name(f"{config.backbone}-{config.head}-{dataset_tag(config.data)}"), taken)


def check_save_name(key: str, folder=None) -> str:
    """``key`` as a file name (:func:`safe_name`) if no checkpoint has it yet, shipped or saved
    in ``folder`` (default pretrained/finetuned/); else :class:`NameTakenError`, naming the
    first free ``key-2``, ``key-3``…. The CLI asks this before training, not after."""
    key = safe_name(key)
    if not key:
        raise ValueError("Give the model a name (letters, digits, - or _).")
    folder = folder or finetuned_dir()
    shipped, saved = read_manifest(), read_manifest(folder)
    if key in shipped or key in saved:
        where = "the name of a shipped checkpoint" if key in shipped else f"already saved in {folder}"
        raise NameTakenError(key, where, free_name(key, {*shipped, *saved}))
    return key


def save_finetuned(result: FinetuneResult, config: FinetuneConfig, key: str, folder=None) -> CheckpointEntry:
    """safetensors + a manifest entry in ``folder`` (default: pretrained/finetuned/, where the
    registry, the inspect page and ``classify`` find it).

    A name already taken (a shipped checkpoint, or an earlier fine-tuned save) is refused with
    :class:`NameTakenError`, which names a free one: a save never silently replaces another,
    and the caller still holds ``result`` to save it under another name. (The check is made
    again under the manifest's lock, so two sessions saving one name at once cannot both win.)"""
    if result.epochs_done == 0:
        raise ValueError("Nothing to save: the run stopped before its first epoch ended.")
    folder = folder or finetuned_dir()
    key = check_save_name(key, folder)
    return save_checkpoint(
        result.model, key=key, model_name=result.model_name, kind="finetuned",
        build={"backbone_build": result.backbone_build, "head": config.head, "num_classes": len(result.classes)},
        classes=result.classes, val_error=None if result.val_accuracy is None else 1 - result.val_accuracy,
        config={**asdict(config), "preprocessing": result.preprocessing, "history": result.history},
        steps=result.steps, wall_time_s=result.wall_time_s, device=result.device,
        folder=folder, replace=False)


def erasing_preview(images: torch.Tensor, augmentation: Augmentation) -> torch.Tensor:
    """What random erasing does to a uint8 batch, as the network is fed it, back in uint8."""
    return denormalize(random_erase(normalize(images), augmentation))


def erasing_preview_of_samples(augmentation: Augmentation) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """The shipped sample photos before and after :func:`erasing_preview` (names, before, after)."""
    samples = sample_images()
    originals = torch.stack([to_uint8_tensor(read_image_file(path)) for path in samples.values()])
    return list(samples), originals, erasing_preview(originals, augmentation)
