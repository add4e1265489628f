"""The one entry point of the loading half: :func:`load_data` turns a source name into tensors.

It parses the source (:class:`~explorer.data.sources.DataSource`), checks the other arguments,
dispatches on the source's kind to :mod:`~explorer.data.synthetic`,
:mod:`~explorer.data.cifar10` or :mod:`~explorer.data.folder` (each returns uint8 images,
int64 labels and class names), and splits the result into an
:class:`~explorer.data.dataset.InMemoryData` ready to be moved to the device. A shipped pack
(:mod:`~explorer.data.packs`, ``"pack:NAME"``) comes already split: its held-out images are
the pack's own, so it is returned as it is, only put in a seeded order.
"""

from __future__ import annotations

from pathlib import Path

import torch

from explorer.data.cifar10 import load_cifar10
from explorer.data.dataset import DataError, InMemoryData, ProgressCallback, SourceKind, split_train_val
from explorer.data.folder import check_folder, load_folder
from explorer.data.packs import PACK_SPECS, load_pack, pack_source
from explorer.data.sources import DataSource
from explorer.data.synthetic import SYNTHETIC_CLASSES, make_synthetic
from explorer.settings import cache_dir


def default_cache_dir() -> Path:
    """Where downloads and decoded folders are kept (``$EXPLORER_CACHE_DIR`` overrides it)."""
    return cache_dir()


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
        source: ``"pack:NAME"`` (real CIFAR-10 images shipped with the app, see
            :mod:`explorer.data.packs`: ``cifar10-demo`` or ``cifar10-eval``),
            ``"synthetic"`` or ``"synthetic:N"`` (generated, see :func:`make_synthetic`),
            ``"cifar10"`` (torchvision's CIFAR-10 *training* set, downloaded on first use), or
            ``"folder:PATH"`` (an ImageFolder tree ``PATH/<class>/<image>``, with extensions
            jpg, jpeg, png, bmp, webp or gif; hidden files and other files are ignored).
        image_size: side of the square images, in pixels. Folder images of another size are
            resized (bilinear, aspect ratio not kept); CIFAR-10 is resized on the fly if this
            is not 32; synthetic images are generated at this size.
        val_size: images held out for validation. By default 5,000 when there are at least
            50,000 images (the paper's 45k/5k split of the CIFAR-10 training set, §4.2), else
            a tenth of them (at least one). ``0`` trains on everything. A pack has its own
            held-out part, drawn where no shipped checkpoint trained (or, for the demo pack,
            apart from its training part): ``val_size`` must be None for it, since any other
            split would mix the two.
        seed: seeds the train/validation split and the synthetic images (for a pack, only
            the order of each part, which ``train_limit`` and ``val_limit`` then cut). The split is a
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
            ``val_size`` that leaves no training images (or any ``val_size`` for a pack).
    """
    parsed = _check_arguments(source, image_size, val_size)
    if parsed.kind is SourceKind.PACK:
        return _load_pack(parsed, image_size, val_size, seed, progress)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name, images, labels, classes = _load_source(parsed, image_size, seed, cache_root, progress)
    return split_train_val(name, classes, images, labels, val_size=val_size, seed=seed)


def check_source(source: str) -> str:
    """``source`` if it names a source :func:`load_data` knows, with a ``synthetic:N`` count in
    its declared range; DataError otherwise (:meth:`DataSource.parse`). Reads nothing and
    allocates nothing, so a command can refuse a typo (or ``synthetic:1000000000000``) before it
    loads a model."""
    DataSource.parse(source)
    return source


def check_training_source(source: str) -> str:
    """:func:`check_source`, and refuse a source that holds no training images: the
    evaluation pack is only ever evaluated on (its images are the 5k that every shipped
    checkpoint held out, §4.2), so a run or a fine-tune on it is refused before it starts."""
    parsed = DataSource.parse(source)
    if parsed.kind is SourceKind.PACK and PACK_SPECS[parsed.pack].per_class == 0:
        trainable = ", ".join(pack_source(n) for n, s in PACK_SPECS.items() if s.per_class)
        raise DataError(f"{source} has no training images: it holds {PACK_SPECS[parsed.pack].about}, to evaluate "
                        f"models on. Train on {trainable} (real CIFAR-10 images shipped with the app), a CIFAR-10 "
                        "folder, or 'synthetic'.")
    return source


def describe_source(source: str) -> str:
    """What ``source`` is, in the words a page or a command prints before using it, e.g.
    "6,000 CIFAR-10 training images of 3 classes (+300 held out), shipped with the app"
    (a pack's own ``about``). Reads nothing: a folder is named, not counted."""
    parsed = DataSource.parse(source)
    if parsed.kind is SourceKind.PACK:
        return PACK_SPECS[parsed.pack].about
    if parsed.kind is SourceKind.SYNTHETIC:
        return f"the synthetic set: {parsed.count:,} generated images of {SYNTHETIC_CLASSES} patterns (not photos)"
    if parsed.kind is SourceKind.CIFAR10:
        return "CIFAR-10's 50,000 training images (torchvision's download)"
    return f"the image folder {parsed.path}"


def _load_pack(source: DataSource, image_size: int, val_size: int | None, seed: int,
               progress: ProgressCallback | None) -> InMemoryData:
    """A pack as it ships: its own training and held-out parts, never re-split (which would
    put held-out images into training). Each part is put in a seeded order, because a pack
    is stored by class and ``train_limit`` / ``val_limit`` take the first images."""
    if val_size is not None:
        raise DataError(f"{source} has its own held-out images ({PACK_SPECS[source.pack].about}); val_size "
                        f"cannot change them: leave it unset (got {val_size!r}).")
    data = load_pack(source.pack, image_size=image_size, progress=progress)
    generator = torch.Generator().manual_seed(seed)
    train = torch.randperm(len(data.train_labels), generator=generator)
    held = torch.randperm(len(data.val_labels), generator=generator)
    return InMemoryData(name=data.name, classes=data.classes,
                        train_images=data.train_images[train], train_labels=data.train_labels[train],
                        val_images=data.val_images[held], val_labels=data.val_labels[held])


def _check_arguments(source: str, image_size: int, val_size: int | None) -> DataSource:
    parsed = DataSource.parse(source)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {image_size!r}.")
    # Checked before loading too, so a typo does not cost a minute of decoding first.
    if val_size is not None and (isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0):
        raise DataError(
            f"val_size must be a whole number of images >= 0 (or None for the default), got {val_size!r}."
        )
    return parsed


def _load_source(
    source: DataSource, image_size: int, seed: int, cache_root: Path, progress: ProgressCallback | None
) -> tuple[str, torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """The data set's canonical name, then its images, labels and class names, unsplit."""
    if source.kind is SourceKind.SYNTHETIC:
        name = str(DataSource.of_synthetic(source.count))  # "synthetic" for the default size
        return (name, *make_synthetic(source.count, image_size=image_size, seed=seed, progress=progress))
    if source.kind is SourceKind.CIFAR10:
        return ("cifar10", *load_cifar10(cache_root / "cifar10", image_size, progress))
    root = check_folder(source.path)
    return (str(DataSource.of_folder(root)), *load_folder(root, image_size, cache_root / "folders", progress))
