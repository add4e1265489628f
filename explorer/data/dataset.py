"""The meeting point of the two halves of :mod:`explorer.data`: a decoded data set in memory.

Every source (:mod:`~explorer.data.synthetic`, :mod:`~explorer.data.cifar10`,
:mod:`~explorer.data.folder`) returns the same three things, uint8 images ``(N, 3, H, W)``,
int64 labels ``(N,)`` and the class names; :func:`split_train_val` shuffles them into an
:class:`InMemoryData`. That object is all the training side sees: it is moved to the device
once (:meth:`InMemoryData.to`) and batches drawn from it go through
:mod:`~explorer.data.augmentation` there.

Also here, because every part of the package uses them: :class:`DataError` (a source that
cannot be loaded, with a message that says what to do), the progress callback type, and
:class:`SourceKind` (what comes before the colon of a source's text; the packs name their own
sources with it, and :mod:`~explorer.data.sources` parses the rest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import torch

ProgressCallback = Callable[[int, int], None]  # progress(done, total), in images


class DataError(ValueError):
    """A data source that cannot be loaded; the message says what is wrong and what to do."""


class SourceKind(StrEnum):
    """The kinds of data source, spelt as a source's text spells them before its colon."""

    PACK = "pack"  # "pack:NAME": real CIFAR-10 images shipped with the app (explorer.data.packs)
    SYNTHETIC = "synthetic"  # "synthetic" or "synthetic:N": generated patterns (explorer.data.synthetic)
    CIFAR10 = "cifar10"  # torchvision's CIFAR-10 training set (explorer.data.cifar10)
    FOLDER = "folder"  # "folder:PATH": an ImageFolder tree PATH/<class>/<image> (explorer.data.folder)


def report_progress(progress: ProgressCallback | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` if there is a callback."""
    if progress is not None:
        progress(done, total)


@dataclass(frozen=True)
class InMemoryData:
    """A decoded data set, split into training and validation images.

    Images are kept as uint8 ``(N, 3, H, W)`` tensors: a quarter of the memory of float32,
    and what :func:`~explorer.data.augmentation.augment` expects. Labels are int64 ``(N,)``
    indices into ``classes``.
    """

    name: str  # the source it came from: "synthetic", "cifar10", "folder:/abs/path"
    classes: tuple[str, ...]  # class names; label i means classes[i]
    train_images: torch.Tensor  # uint8 (N, 3, H, W)
    train_labels: torch.Tensor  # int64 (N,)
    val_images: torch.Tensor  # uint8 (M, 3, H, W); M may be 0
    val_labels: torch.Tensor  # int64 (M,)

    def __post_init__(self) -> None:
        for split in ("train", "val"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(
                    f"{split}_images must be a uint8 tensor of shape (N, 3, H, W), "
                    f"got {images.dtype} {tuple(images.shape)}."
                )
            if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise ValueError(
                    f"{split}_labels must be an int64 tensor of shape ({images.shape[0]},), "
                    f"got {labels.dtype} {tuple(labels.shape)}."
                )
        if self.train_images.shape[1:] != self.val_images.shape[1:]:
            raise ValueError(
                f"Training and validation images differ in shape: "
                f"{tuple(self.train_images.shape[1:])} vs {tuple(self.val_images.shape[1:])}."
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        """Height of the images (they are square)."""
        return int(self.train_images.shape[-2])

    def restricted(self, classes: Sequence[str] | None = None, train_limit: int | None = None) -> InMemoryData:
        """Only the images of ``classes`` (relabelled 0…k−1 in that order), and only the
        first ``train_limit`` training images (the split is shuffled: a random subset)."""
        data = self if classes is None else self._only_classes(classes)
        if train_limit is not None:
            if train_limit < 1:
                raise ValueError(f"The training-image limit must be at least 1, got {train_limit}.")
            data = replace(data, train_images=data.train_images[:train_limit],
                           train_labels=data.train_labels[:train_limit])
        return data

    def _only_classes(self, classes: Sequence[str]) -> InMemoryData:
        unknown = [name for name in classes if name not in self.classes]
        if unknown or len(set(classes)) < 2:
            raise ValueError(f"Pick at least two of the data set's classes ({', '.join(self.classes)}); "
                             f"{'unknown: ' + ', '.join(unknown) if unknown else 'got ' + ', '.join(classes)}.")
        old_to_new = torch.full((len(self.classes),), -1, dtype=torch.int64)
        for new, name in enumerate(classes):
            old_to_new[self.classes.index(name)] = new

        def keep(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mapped = old_to_new.to(labels.device)[labels]
            chosen = mapped >= 0
            return images[chosen], mapped[chosen]

        train_images, train_labels = keep(self.train_images, self.train_labels)
        val_images, val_labels = keep(self.val_images, self.val_labels)
        return replace(self, classes=tuple(classes), train_images=train_images, train_labels=train_labels,
                       val_images=val_images, val_labels=val_labels)

    def to(self, device: torch.device | str) -> InMemoryData:
        """A copy with all four tensors on ``device`` (tensors already there are not copied)."""
        device = torch.device(device)
        return replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            val_images=self.val_images.to(device),
            val_labels=self.val_labels.to(device),
        )


def split_train_val(
    name: str,
    classes: tuple[str, ...],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    val_size: int | None,
    seed: int,
) -> InMemoryData:
    """Shuffle a decoded source with ``seed`` and hold out ``val_size`` images for validation
    (by default the paper's 5k of 50k, §4.2, or a tenth of a smaller set)."""
    count = images.shape[0]
    if val_size is None:
        # §4.2: "45k/5k train/val split" of the 50k CIFAR-10 training images.
        val_size = 5000 if count >= 50_000 else max(1, count // 10)
    if isinstance(val_size, bool) or not isinstance(val_size, int):
        raise DataError(f"val_size must be a whole number of images, got {val_size!r}.")
    if val_size < 0 or val_size >= count:
        raise DataError(
            f"val_size={val_size} does not fit {name!r}, which has {count} images: use a value "
            f"from 0 to {count - 1}, so that at least one image is left for training."
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(count, generator=generator)
    val_index, train_index = order[:val_size], order[val_size:]
    return InMemoryData(
        name=name,
        classes=tuple(classes),
        train_images=images[train_index],
        train_labels=labels[train_index],
        val_images=images[val_index],
        val_labels=labels[val_index],
    )
