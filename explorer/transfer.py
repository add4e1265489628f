"""Transfer learning: a trained ResNet's features, a new head, a new data set.

The usual notebook takes an ImageNet ResNet-50 without its head, upsamples CIFAR-10 to
224×224, adds a head and trains. Done here:

* **fast**: with the backbone frozen, its features do not change, so they are computed once
  and the head trains on the cached feature vectors (seconds, not minutes per epoch);
* **correct**: the loss is cross-entropy on logits with class indices (not a binary or
  squared loss on one-hot softmax outputs); the backbone keeps its own normalisation; and a
  photo classified afterwards goes through exactly the training preprocessing
  (:func:`explorer.classify.finetuned_model_input`);
* **safe**: the result is safetensors plus a manifest entry (backbone, head, classes,
  preprocessing, validation accuracy), never a pickled model.

The backbone is loaded fresh for every run (never the app's cached, shared copy), then its
``fc`` is replaced by the new head so all module names stay those of the backbone.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from explorer.attribution import stage_ends
from explorer.checkpoints import CheckpointEntry, dataset_tag, finetuned_dir, read_manifest, save_checkpoint
from explorer.classify import classifier_names, load_classifier
from explorer.data import Augmentation, InMemoryData, augment, denormalize, normalize, random_erase, upsample
from explorer.models import get_model_spec, list_models
from explorer.models.heads import HEADS, build_head, feature_width
from explorer.weights import find_weights

TRAIN_CHOICES = ("head", "last stage", "all")
NO_AUGMENTATION = Augmentation(pad=0, flip=False)
_FEATURE_CHUNK = 128  # images per backbone forward pass when caching or evaluating (256 was slower on a 2-core CPU)


@dataclass(frozen=True)
class FinetuneConfig:
    backbone: str  # a shipped checkpoint ("resnet20-cifar10") or an ImageNet ResNet with weights
    data: str = "synthetic"  # as for training: synthetic[:N], cifar10, folder:PATH
    upsample: int = 1  # input side = data_size × upsample (7: CIFAR's 32 -> ImageNet's 224)
    train: str = "head"  # "head" (backbone frozen), "last stage" (and the head), "all"
    head: str = "linear"  # "linear" or "seed" (BN-Dense-Dropout, see explorer.models.heads)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-2  # Adam, for the head; trainable backbone layers get a hundredth of it
    cache_features: bool = True  # only possible for "head" without augmentation
    augmentation: Augmentation = NO_AUGMENTATION
    train_limit: int | None = None  # use only this many training images (a quicker class demo)
    val_size: int | None = None  # None: the data set's default split (45k/5k for CIFAR-10)
    data_size: int = 32  # side the data set is decoded at
    seed: int = 0

    @property
    def input_size(self) -> int:
        return self.data_size * self.upsample

    @property
    def uses_cached_features(self) -> bool:
        return self.cache_features and self.train == "head" and self.augmentation == NO_AUGMENTATION


def cache_explanation(config: FinetuneConfig) -> str:
    """Why features are, or are not, cached: shown next to the progress bar."""
    if config.uses_cached_features:
        return ("Backbone frozen: its features are computed once, then only the head trains on them "
                "(each epoch costs a fraction of a second instead of a full pass through the backbone).")
    if not config.cache_features:
        return "Feature caching is off: every step runs the whole backbone."
    if config.train != "head":
        return f"Training {config.train}: the backbone changes, so its features cannot be cached."
    return "Augmentation changes every image at every step, so features cannot be cached."


def check_finetune_config(config: FinetuneConfig) -> None:
    """A ValueError with a readable message for settings that cannot run."""
    whole = {"epochs": config.epochs, "batch_size": config.batch_size, "upsample": config.upsample,
             "data_size": config.data_size}
    for name, value in whole.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
    if config.upsample > 8:
        raise ValueError(f"upsample {config.upsample} would feed {config.input_size}×{config.input_size} images; "
                         "7 (CIFAR's 32 -> ImageNet's 224) is the most that helps.")
    if config.train not in TRAIN_CHOICES:
        raise ValueError(f"train must be one of {', '.join(TRAIN_CHOICES)}, got {config.train!r}.")
    if config.head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {config.head!r}.")
    if not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"The learning rate must be a positive number, got {config.lr!r}.")
    if config.train_limit is not None and config.train_limit < 1:
        raise ValueError(f"train_limit must be at least 1 image (or None for all), got {config.train_limit!r}.")


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

    @property
    def eta_s(self) -> float | None:
        return self.phase_elapsed_s / self.done * (self.total - self.done) if self.done else None


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
        config, device = self.config, self.device
        started = time.perf_counter()
        torch.manual_seed(config.seed)  # the head's initialisation
        classifier = load_classifier(config.backbone, device=device)  # a private copy: we train it
        model = classifier.model
        width = feature_width(model)
        mean, std = classifier.mean, classifier.std
        head = build_head(config.head, width, len(self.data.classes)).to(device)

        train_images, train_labels = self.data.train_images, self.data.train_labels
        if config.train_limit is not None:  # the split is already shuffled: the first N are a random subset
            train_images, train_labels = train_images[:config.train_limit], train_labels[:config.train_limit]
        if len(self.data.val_labels) == 0:
            raise ValueError("Fine-tuning needs validation images to report an accuracy: set val_size above 0.")

        def prepare(images: torch.Tensor) -> torch.Tensor:
            return normalize(upsample(images.to(device), config.input_size), mean, std)

        history: list[dict] = []
        val_accuracy = None
        steps_per_epoch = math.ceil(len(train_labels) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        generator = torch.Generator().manual_seed(config.seed)

        if config.uses_cached_features:
            model.fc = nn.Identity()
            model.eval()
            phase_started = time.perf_counter()
            features = []
            everything = torch.cat([train_images, self.data.val_images])
            for start in range(0, len(everything), _FEATURE_CHUNK):
                if stop is not None and stop.is_set():
                    return
                with torch.no_grad():
                    features.append(model(prepare(everything[start:start + _FEATURE_CHUNK])))
                yield FinetuneStep("features", min(start + _FEATURE_CHUNK, len(everything)), len(everything),
                                   time.perf_counter() - phase_started)
            features = torch.cat(features)
            train_x, val_x = features[:len(train_labels)], features[len(train_labels):]
            forward = head
            optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
            modules_in_train_mode = [head]
        else:
            model.fc = head
            model.requires_grad_(False)
            head.requires_grad_(True)
            backbone_parameters: list[nn.Parameter] = []
            modules_in_train_mode: list[nn.Module] = [head]
            if config.train == "all":
                modules_in_train_mode = [model]
                backbone_parameters = [p for name, p in model.named_parameters() if not name.startswith("fc.")]
            elif config.train == "last stage":
                last = model.get_submodule(stage_ends(model, get_model_spec(classifier.model_name))[-1][1])
                modules_in_train_mode = [last, head]
                backbone_parameters = list(last.parameters())
            for parameter in backbone_parameters:
                parameter.requires_grad_(True)
            groups = [{"params": list(head.parameters()), "lr": config.lr}]
            if backbone_parameters:
                # Small steps for pretrained layers, so fine-tuning adjusts rather than erases what they learnt.
                groups.append({"params": backbone_parameters, "lr": config.lr / 100})
            optimizer = torch.optim.Adam(groups)
            forward = model
            train_x, val_x = train_images, self.data.val_images

        def scale(augmentation: Augmentation) -> Augmentation:  # padding is in data-set pixels
            return replace(augmentation, pad=augmentation.pad * config.upsample)

        def batch_inputs(x: torch.Tensor) -> torch.Tensor:
            if config.uses_cached_features:
                return x
            upsampled = upsample(x.to(device), config.input_size)
            return augment(upsampled, scale(config.augmentation), mean=mean, std=std)

        def evaluate() -> float:
            for module in modules_in_train_mode:
                module.eval()
            correct = 0
            with torch.no_grad():
                for start in range(0, len(val_x), _FEATURE_CHUNK):
                    chunk = val_x[start:start + _FEATURE_CHUNK]
                    inputs = chunk if config.uses_cached_features else prepare(chunk)
                    predicted = forward(inputs).argmax(1).cpu()
                    correct += (predicted == self.data.val_labels[start:start + _FEATURE_CHUNK]).sum().item()
            return correct / len(val_x)

        phase_started, step = time.perf_counter(), 0
        for epoch in range(config.epochs):
            for module in modules_in_train_mode:
                module.train()
            order = torch.randperm(len(train_labels), generator=generator)
            correct = seen = 0
            for start in range(0, len(order), config.batch_size):
                if stop is not None and stop.is_set():
                    break
                index = order[start:start + config.batch_size]
                if len(index) == 1 and len(order) > 1:
                    continue  # a last batch of one image: BatchNorm (the seed head's) cannot train on it
                labels = train_labels[index].to(device)
                logits = forward(batch_inputs(train_x[index]))
                loss = F.cross_entropy(logits, labels)  # logits + class indices: softmax inside
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                correct += (logits.argmax(1) == labels).sum().item()
                seen += len(index)
                yield FinetuneStep("training", step, total_steps, time.perf_counter() - phase_started,
                                   epoch + seen / len(train_labels), correct / seen, None, loss.item())
            if stop is not None and stop.is_set() and seen < len(train_labels):
                break
            val_accuracy = evaluate()
            history.append({"epoch": epoch + 1, "train_accuracy": correct / seen, "val_accuracy": val_accuracy})
            yield FinetuneStep("training", step, total_steps, time.perf_counter() - phase_started,
                               epoch + 1.0, correct / seen, val_accuracy, loss.item())

        model.fc = head
        model.eval().requires_grad_(False)
        entry = read_manifest().get(config.backbone)
        self.result = FinetuneResult(
            model=model, model_name=classifier.model_name,
            backbone_build=dict(entry.build) if entry is not None else {},
            classes=list(self.data.classes), val_accuracy=val_accuracy,
            preprocessing={"data_size": config.data_size, "input_size": config.input_size,
                           "mean": list(mean), "std": list(std)},
            epochs_done=len(history), steps=step, wall_time_s=time.perf_counter() - started,
            device=str(device), history=history)


def finetune(config: FinetuneConfig, data: InMemoryData, device: torch.device | str = "cpu") -> FinetuneResult:
    """Run to the end without progress reports (tests, scripts)."""
    run = Finetuning(config, data, device)
    for _ in run.steps():
        pass
    return run.result


def suggested_key(config: FinetuneConfig) -> str:
    return safe_key(f"{config.backbone}-{config.head}-{dataset_tag(config.data)}")


def safe_key(name: str) -> str:
    """A manifest key and file name: letters, digits, dot, dash and underscore only."""
    key = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.strip()).strip("-.")
    if not key:
        raise ValueError("Give the model a name (letters, digits, - or _).")
    return key[:80]


def save_finetuned(result: FinetuneResult, config: FinetuneConfig, key: str, folder=None) -> CheckpointEntry:
    """safetensors + a manifest entry in ``folder`` (default: pretrained/finetuned/, where the
    registry, the inspect page and ``classify`` find it)."""
    if result.epochs_done == 0:
        raise ValueError("Nothing to save: the run stopped before its first epoch ended.")
    key = safe_key(key)
    if key in read_manifest():
        raise ValueError(f"{key!r} is the name of a shipped checkpoint: choose another name.")
    return save_checkpoint(
        result.model, key=key, model_name=result.model_name, kind="finetuned",
        build={"backbone_build": result.backbone_build, "head": config.head, "num_classes": len(result.classes)},
        classes=result.classes, val_error=None if result.val_accuracy is None else 1 - result.val_accuracy,
        config={**asdict(config), "preprocessing": result.preprocessing, "history": result.history},
        steps=result.steps, wall_time_s=result.wall_time_s, device=result.device,
        folder=folder or finetuned_dir())


def erasing_preview(images: torch.Tensor, augmentation: Augmentation) -> torch.Tensor:
    """What random erasing does to a uint8 batch, as the network is fed it, back in uint8."""
    return denormalize(random_erase(normalize(images), augmentation))


def erasing_preview_of_samples(augmentation: Augmentation) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """The shipped sample photos before and after :func:`erasing_preview` (names, before, after)."""
    from explorer.images import read_image_file, sample_images, to_uint8_tensor

    samples = sample_images()
    originals = torch.stack([to_uint8_tensor(read_image_file(path)) for path in samples.values()])
    return list(samples), originals, erasing_preview(originals, augmentation)
