"""The one entry point of the loading half: :func:`load_data` turns a source name into tensors.

It checks the arguments, dispatches on the source's kind to :mod:`~explorer.data.synthetic`,
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
from explorer.data.dataset import DataError, InMemoryData, ProgressCallback, split_train_val
from explorer.data.folder import check_folder, load_folder
from explorer.data.packs import PACK_SPECS, load_pack, pack_source
from explorer.settings import cache_dir
from explorer.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_DEFAULT_SIZE, make_synthetic, parse_synthetic_count

_VALID_SOURCES = (
    '"pack:cifar10-demo" or "pack:cifar10-eval" (real CIFAR-10 images shipped with the app), '
    '"synthetic" (12,000 generated images), "synthetic:N" (N generated images), '
    '"cifar10" (torchvision\'s CIFAR-10 training set) or "folder:PATH" '
    "(an ImageFolder tree PATH/<class>/<image>.jpg)"
)


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
    _check_arguments(source, image_size, val_size)
    if _kind(source) == "pack":
        return _load_pack(source, image_size, val_size, seed, progress)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name, images, labels, classes = _load_source(source, image_size, seed, cache_root, progress)
    return split_train_val(name, classes, images, labels, val_size=val_size, seed=seed)


def check_source(source: str) -> str:
    """``source`` if it names a source :func:`load_data` knows, with a ``synthetic:N`` count in
    its declared range; DataError otherwise. Reads nothing and allocates nothing, so a command
    can refuse a typo (or ``synthetic:1000000000000``) before it loads a model."""
    if not isinstance(source, str):
        raise DataError(f"The data source must be a string: {_VALID_SOURCES}; got {source!r}.")
    kind, colon, argument = source.partition(":")
    kind = kind.strip().lower()
    if kind == "synthetic":
        if argument.strip():
            parse_synthetic_count(argument)
        return source
    if kind == "pack":
        _pack_name(source)
        return source
    if (kind == "cifar10" and not argument) or (kind == "folder" and colon):
        return source
    raise DataError(f"Unknown data source {source[:80]!r}. Use {_VALID_SOURCES}.")


def check_training_source(source: str) -> str:
    """:func:`check_source`, and refuse a source that holds no training images: the
    evaluation pack is only ever evaluated on (its images are the 5k that every shipped
    checkpoint held out, §4.2), so a run or a fine-tune on it is refused before it starts."""
    check_source(source)
    if _kind(source) == "pack":
        spec = PACK_SPECS[_pack_name(source)]
        if spec.per_class == 0:
            trainable = ", ".join(pack_source(n) for n, s in PACK_SPECS.items() if s.per_class)
            raise DataError(f"{source} has no training images: it holds {spec.about}, to evaluate models on. "
                            f"Train on {trainable} (real CIFAR-10 images shipped with the app), a CIFAR-10 "
                            "folder, or 'synthetic'.")
    return source


def describe_source(source: str) -> str:
    """What ``source`` is, in the words a page or a command prints before using it, e.g.
    "6,000 CIFAR-10 training images of 3 classes (+300 held out), shipped with the app"
    (a pack's own ``about``). Reads nothing: a folder is named, not counted."""
    kind, _, argument = source.partition(":")
    kind = kind.strip().lower()
    if kind == "pack":
        return PACK_SPECS[_pack_name(source)].about
    if kind == "synthetic":
        count = parse_synthetic_count(argument) if argument.strip() else SYNTHETIC_DEFAULT_SIZE
        return f"the synthetic set: {count:,} generated images of {SYNTHETIC_CLASSES} patterns (not photos)"
    if kind == "cifar10":
        return "CIFAR-10's 50,000 training images (torchvision's download)"
    return f"the image folder {argument.strip()}"


def _kind(source: str) -> str:
    return source.partition(":")[0].strip().lower()


def _pack_name(source: str) -> str:
    """The NAME of ``"pack:NAME"``, if it is a shipped pack (PACK_SPECS, so nothing is read)."""
    name = source.partition(":")[2].strip()
    if name not in PACK_SPECS:
        shipped = ", ".join(pack_source(n) for n in PACK_SPECS)
        raise DataError(f"No shipped data set {name[:40]!r}: the shipped ones are {shipped}.")
    return name


def _load_pack(source: str, image_size: int, val_size: int | None, seed: int,
               progress: ProgressCallback | None) -> InMemoryData:
    """A pack as it ships: its own training and held-out parts, never re-split (which would
    put held-out images into training). Each part is put in a seeded order, because a pack
    is stored by class and ``train_limit`` / ``val_limit`` take the first images."""
    name = _pack_name(source)
    if val_size is not None:
        raise DataError(f"{source} has its own held-out images ({PACK_SPECS[name].about}); val_size "
                        f"cannot change them: leave it unset (got {val_size!r}).")
    data = load_pack(name, image_size=image_size, progress=progress)
    generator = torch.Generator().manual_seed(seed)
    train = torch.randperm(len(data.train_labels), generator=generator)
    held = torch.randperm(len(data.val_labels), generator=generator)
    return InMemoryData(name=data.name, classes=data.classes,
                        train_images=data.train_images[train], train_labels=data.train_labels[train],
                        val_images=data.val_images[held], val_labels=data.val_labels[held])


def _check_arguments(source: str, image_size: int, val_size: int | None) -> None:
    check_source(source)
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
    raise DataError(f"Unknown data source {source[:80]!r}. Use {_VALID_SOURCES}.")
