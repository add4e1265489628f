"""The one entry point of the loading half: :func:`load_data` turns a source name into tensors.

It checks the arguments, dispatches on the source's kind to :mod:`~explorer.data.synthetic`,
:mod:`~explorer.data.cifar10` or :mod:`~explorer.data.folder` (each returns uint8 images,
int64 labels and class names), and splits the result into an
:class:`~explorer.data.dataset.InMemoryData` ready to be moved to the device.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from explorer.data.cifar10 import load_cifar10
from explorer.data.dataset import DataError, InMemoryData, ProgressCallback, split_train_val
from explorer.data.folder import check_folder, load_folder
from explorer.data.synthetic import SYNTHETIC_DEFAULT_SIZE, make_synthetic, parse_synthetic_count

_VALID_SOURCES = (
    '"synthetic" (12,000 generated images), "synthetic:N" (N generated images), '
    '"cifar10" (torchvision\'s CIFAR-10 training set) or "folder:PATH" '
    "(an ImageFolder tree PATH/<class>/<image>.jpg)"
)


def default_cache_dir() -> Path:
    """Where downloads and decoded folders are kept (``$EXPLORER_CACHE_DIR`` overrides it)."""
    return Path(os.environ.get("EXPLORER_CACHE_DIR", Path.home() / ".cache" / "resnet-explorer"))


def load_data(
    source: str,
    *,
    image_size: int = 32,
    val_size: int | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> InMemoryData:
    """Decode ``source`` into uint8 tensors and split off a validation set.

    Args:
        source: ``"synthetic"`` or ``"synthetic:N"`` (generated, see :func:`make_synthetic`),
            ``"cifar10"`` (torchvision's CIFAR-10 *training* set, downloaded on first use), or
            ``"folder:PATH"`` (an ImageFolder tree ``PATH/<class>/<image>``, with extensions
            jpg, jpeg, png, bmp, webp or gif; hidden files and other files are ignored).
        image_size: side of the square images, in pixels. Folder images of another size are
            resized (bilinear, aspect ratio not kept); CIFAR-10 is resized on the fly if this
            is not 32; synthetic images are generated at this size.
        val_size: images held out for validation. By default 5,000 when there are at least
            50,000 images (the paper's 45k/5k split of the CIFAR-10 training set, §4.2), else
            a tenth of them (at least one). ``0`` trains on everything.
        seed: seeds the train/validation split and the synthetic images. The split is a
            permutation of the images in a fixed order (sorted by file path for folders), so
            it does not depend on the order the file system lists files in.
        cache_dir: where ``cifar10`` is downloaded (``cache_dir/"cifar10"``) and decoded
            folders are cached (``cache_dir/"folders"``); default :func:`default_cache_dir`.
        progress: called as ``progress(done, total)`` while images are decoded, about every
            thousand images, and once with ``done == total`` at the end.

    Returns:
        An :class:`InMemoryData` on the CPU; move it with ``.to(device)``.

    Raises:
        DataError: for an unknown source, a folder that is missing, empty, has a single class
            or contains an unreadable image, CIFAR-10 that cannot be downloaded, or a
            ``val_size`` that leaves no training images.
    """
    _check_arguments(source, image_size, val_size)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name, images, labels, classes = _load_source(source, image_size, seed, cache_root, progress)
    return split_train_val(name, classes, images, labels, val_size=val_size, seed=seed)


def _check_arguments(source: str, image_size: int, val_size: int | None) -> None:
    if not isinstance(source, str):
        raise DataError(f"The data source must be a string: {_VALID_SOURCES}; got {source!r}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {image_size!r}.")
    # Checked before loading too, so a typo does not cost a minute of decoding first.
    if val_size is not None and (isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0):
        raise DataError(
            f"val_size must be a whole number of images >= 0 (or None for the default), got {val_size!r}."
        )


def _load_source(
    source: str, image_size: int, seed: int, cache_root: Path, progress: ProgressCallback | None
) -> tuple[str, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """The data set's canonical name, then its images, labels and class names, unsplit."""
    kind, colon, argument = source.partition(":")
    kind = kind.strip().lower()
    if kind == "synthetic":
        count = parse_synthetic_count(argument) if argument.strip() else SYNTHETIC_DEFAULT_SIZE
        name = "synthetic" if count == SYNTHETIC_DEFAULT_SIZE else f"synthetic:{count}"
        return (name, *make_synthetic(count, image_size=image_size, seed=seed, progress=progress))
    if kind == "cifar10" and not argument:
        return ("cifar10", *load_cifar10(cache_root / "cifar10", image_size, progress))
    if kind == "folder" and colon:
        root = check_folder(argument)
        return (f"folder:{root}", *load_folder(root, image_size, cache_root / "folders", progress))
    raise DataError(f"Unknown data source {source!r}. Use {_VALID_SOURCES}.")
