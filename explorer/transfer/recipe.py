"""The fine-tuning recipe as data (:mod:`explorer.transfer.finetune` runs it): what to start from,
what to train, for how long, and the checks that reject settings which cannot run. The
config is saved inside every fine-tuned checkpoint's manifest entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from explorer import settings
from explorer.data import Augmentation, DataError, SourceKind, check_training_source, source_kind
from explorer.models.heads import HEADS
from explorer.store.checkpoints import CheckpointError, dataset_tag, read_manifest


class TrainPart(StrEnum):
    """What learns while fine-tuning; the rest of the backbone stays as it was trained. The
    value is what a saved config, the CLI's ``--train`` and its output spell."""

    HEAD = "head"  # the new head only: the backbone is frozen, so its features can be cached
    LAST_STAGE = "last stage"  # the backbone's last stage (conv5_x, or CIFAR's third stage) and the head
    ALL = "all"  # every layer


TRAIN_CHOICES = tuple(part.value for part in TrainPart)  # ("head", "last stage", "all")
NO_AUGMENTATION = Augmentation(pad=0, flip=False)


@dataclass(frozen=True)
class FinetuneConfig:
    backbone: str  # a shipped checkpoint ("resnet20-cifar10") or an ImageNet ResNet with weights
    # As for training: pack:cifar10-demo (6,000 real CIFAR-10 images shipped with the app, the
    # default where no CIFAR-10 folder is; `finetune` and the Transfer page pick the full set when
    # it is here), cifar10, folder:PATH, synthetic[:N]. Not pack:cifar10-eval: no training images.
    data: str = "pack:cifar10-demo"
    upsample: int = 1  # input side = data_size × upsample (7: CIFAR's 32 -> ImageNet's 224)
    train: TrainPart = TrainPart.HEAD  # a plain string (a saved config's, a test's) is read as its TrainPart
    head: str = "linear"  # "linear" or "seed" (BN-Dense-Dropout, see explorer.models.heads)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-2  # Adam, for the head; trainable backbone layers get a hundredth of it
    cache_features: bool = True  # only possible for "head" without augmentation
    augmentation: Augmentation = NO_AUGMENTATION
    train_limit: int | None = None  # use only this many training images (a quicker class demo)
    val_size: int | None = None  # None: the data set's default split (45k/5k for CIFAR-10; a pack's own)
    data_size: int = 32  # side the data set is decoded at
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train in TRAIN_CHOICES:  # anything else is refused, with its spelling, by check_finetune_config
            object.__setattr__(self, "train", TrainPart(self.train))

    @property
    def input_size(self) -> int:
        return self.data_size * self.upsample

    @property
    def uses_cached_features(self) -> bool:
        return self.cache_features and self.train is TrainPart.HEAD and self.augmentation == NO_AUGMENTATION


def cache_explanation(config: FinetuneConfig) -> str:
    """Why features are, or are not, cached: shown next to the progress bar."""
    if config.uses_cached_features:
        return ("Backbone frozen: its features are computed once, then only the head trains on them "
                "(each epoch costs a fraction of a second instead of a full pass through the backbone).")
    if not config.cache_features:
        return "Feature caching is off: every step runs the whole backbone."
    if config.train is not TrainPart.HEAD:
        return f"Training {config.train}: the backbone changes, so its features cannot be cached."
    return "Augmentation changes every image at every step, so features cannot be cached."


def check_finetune_config(config: FinetuneConfig) -> None:
    """A ValueError (:class:`~explorer.settings.LimitError` for a number out of its declared
    range, shared with ``finetune``'s flags and the Transfer page) with a readable message for
    settings that cannot run."""
    settings.FINETUNE_EPOCHS.check(config.epochs, "epochs")
    settings.BATCH_SIZE.check(config.batch_size, "batch_size")
    settings.UPSAMPLE.check(config.upsample, "upsample")
    settings.IMAGE_SIZE.check(config.data_size, "the image size (data_size)")
    settings.FINETUNE_INPUT.check(config.input_size, f"the backbone's input side ({config.data_size} × {config.upsample})")
    settings.LEARNING_RATE.check(config.lr)
    settings.SEED.check(config.seed)
    settings.ERASING_P.check(config.augmentation.erasing_p)
    if config.train_limit is not None:
        settings.TRAIN_IMAGES.check(config.train_limit, "train_limit")
    if config.val_size is not None:
        settings.VAL_SIZE.check(config.val_size, "val_size")
    if config.train not in TRAIN_CHOICES:
        raise ValueError(f"train must be one of {', '.join(TRAIN_CHOICES)}, got {config.train!r}.")
    if config.head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {config.head!r}.")
    if config.data:  # the page leaves it empty until a data set is chosen; then Start is disabled
        check_training_source(config.data)  # the evaluation pack has no training images
        if config.val_size is not None and source_kind(config.data) is SourceKind.PACK:
            raise DataError(f"{config.data} has its own held-out images; val_size must be left unset for it.")


def seen_images_note(backbone: str, data: str) -> str | None:
    """A note when ``backbone`` is a shipped CIFAR-10 checkpoint and ``data`` is CIFAR-10 too:
    the checkpoint trained on the 45k part of the §4.2 split, and the demo pack was drawn from
    that part (its 300 held-out images included), so fine-tuning on it measures what the
    features already know, not how they carry over to new images. None otherwise."""
    try:
        entry = read_manifest().get(backbone)
    except CheckpointError:
        return None
    kind = source_kind(data)
    cifar = kind is SourceKind.PACK or dataset_tag(data) == "cifar10"
    if entry is None or not cifar or dataset_tag(str(entry.config.get("data", ""))) != "cifar10":
        return None
    which = ("all of these images among them, the 300 held out too" if kind is SourceKind.PACK else
             "these images among them (the 5,000 held out excepted)")
    return (f"{backbone} was trained on CIFAR-10's 45,000 training images, {which}: its accuracy here shows what "
            "its features already know, not how they carry over to new images. For transfer, pick an ImageNet "
            "backbone, your own folder or zip, or the synthetic set.")
