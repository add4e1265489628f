"""The fine-tuning recipe as data (:mod:`explorer.transfer` runs it): what to start from,
what to train, for how long, and the checks that reject settings which cannot run. The
config is saved inside every fine-tuned checkpoint's manifest entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from explorer.data import Augmentation
from explorer.models.heads import HEADS

TRAIN_CHOICES = ("head", "last stage", "all")
NO_AUGMENTATION = Augmentation(pad=0, flip=False)


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
