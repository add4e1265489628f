"""Datasets as in-memory tensors, and augmentation done on the device, in batches.

The paper's CIFAR-10 experiments (He et al. 2015, §4.2) train small nets on 32×32 images for
tens of thousands of steps. At that size, decoding images and running per-image transforms
on the CPU is slower than the network itself, so this module follows airbench's approach:

1. **Decode once.** :func:`load_data` turns a source into uint8 tensors ``(N, 3, H, W)``
   (50,000 CIFAR images are 150 MB) plus int64 labels, and splits them into a training and a
   validation set. Decoded folders are cached on disk, so the second load takes well under
   a second.
2. **Keep them on the device.** :meth:`InMemoryData.to` moves all four tensors at once; the
   training loop then draws batches by indexing, with no ``DataLoader`` and no worker processes.
3. **Augment whole batches.** :func:`augment` does the paper's padding, random crop and flip
   for a whole batch with a few tensor operations, then normalises to float32.

Three kinds of source are understood (see :func:`load_data`): ``"synthetic"`` (generated in
a fraction of a second, for tests and for trying the app without any data), ``"cifar10"``
(torchvision's copy of the real data set) and ``"folder:PATH"`` (any ImageFolder tree).

User mistakes (a missing folder, a corrupt image, an unknown source) raise :class:`DataError`,
whose message says what is wrong and what to do about it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # per-channel mean of the 50k CIFAR-10 training images, in [0, 1]
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # and their standard deviation (over all pixels)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")  # compared lower-cased

SYNTHETIC_DEFAULT_SIZE = 12_000  # images in "synthetic"; enough for a few epochs of a ResNet-20
SYNTHETIC_CLASSES = 10

# A cache file written by a different version of the decoding code must not be reused: bump
# this whenever the decoded pixels could change (resize filter, colour conversion, ...).
_CACHE_FORMAT = "resnet-explorer-folder-v1"
_PROGRESS_EVERY = 1000  # images between progress callbacks while decoding
_DECODE_CHUNK = 256  # files per thread-pool task: large enough to amortise the task overhead


class DataError(ValueError):
    """A data source that cannot be loaded; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------------------------
# The in-memory data set
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InMemoryData:
    """A decoded data set, split into training and validation images.

    Images are kept as uint8 ``(N, 3, H, W)`` tensors: a quarter of the memory of float32,
    and what :func:`augment` expects. Labels are int64 ``(N,)`` indices into ``classes``.
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
        data = self
        if classes is not None:
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
            data = replace(self, classes=tuple(classes), train_images=train_images, train_labels=train_labels,
                           val_images=val_images, val_labels=val_labels)
        if train_limit is not None:
            if train_limit < 1:
                raise ValueError(f"The training-image limit must be at least 1, got {train_limit}.")
            data = replace(data, train_images=data.train_images[:train_limit],
                           train_labels=data.train_labels[:train_limit])
        return data

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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

ProgressCallback = Callable[[int, int], None]

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
    if not isinstance(source, str):
        raise DataError(f"The data source must be a string: {_VALID_SOURCES}; got {source!r}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {image_size!r}.")
    # Checked before loading too, so a typo does not cost a minute of decoding first.
    if val_size is not None and (isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0):
        raise DataError(
            f"val_size must be a whole number of images >= 0 (or None for the default), got {val_size!r}."
        )
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    kind, colon, argument = source.partition(":")
    kind = kind.strip().lower()
    if kind == "synthetic":
        count = _parse_synthetic_count(argument) if argument.strip() else SYNTHETIC_DEFAULT_SIZE
        name = "synthetic" if count == SYNTHETIC_DEFAULT_SIZE else f"synthetic:{count}"
        images, labels, classes = make_synthetic(count, image_size=image_size, seed=seed, progress=progress)
    elif kind == "cifar10" and not argument:
        name = "cifar10"
        images, labels, classes = _load_cifar10(cache_root / "cifar10", image_size, progress)
    elif kind == "folder" and colon:
        root = _check_folder(argument)
        name = f"folder:{root}"
        images, labels, classes = _load_folder(root, image_size, cache_root / "folders", progress)
    else:
        raise DataError(f"Unknown data source {source!r}. Use {_VALID_SOURCES}.")

    return _split(name, classes, images, labels, val_size=val_size, seed=seed)


def _split(
    name: str,
    classes: tuple[str, ...],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    val_size: int | None,
    seed: int,
) -> InMemoryData:
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


def _report(progress: ProgressCallback | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _resize_tensor(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 ``(N, 3, h, w)`` resized to ``image_size``², bilinear with antialiasing, in chunks."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    out = torch.empty((images.shape[0], 3, image_size, image_size), dtype=torch.uint8)
    for start in range(0, images.shape[0], 1024):  # bounded float32 working memory
        chunk = images[start : start + 1024].float()
        resized = F.interpolate(chunk, size=(image_size, image_size), mode="bilinear", antialias=True)
        out[start : start + 1024] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


# --------------------------------------------------------------------------------------------
# synthetic
# --------------------------------------------------------------------------------------------


def _parse_synthetic_count(argument: str) -> int:
    try:
        count = int(argument.strip().replace("_", ""))
    except ValueError:
        count = -1
    if count < SYNTHETIC_CLASSES:
        raise DataError(
            f"'synthetic:{argument}' needs a whole number of images, at least {SYNTHETIC_CLASSES} "
            f"(one per class), for example 'synthetic:2000'."
        )
    return count


def make_synthetic(
    count: int = SYNTHETIC_DEFAULT_SIZE,
    *,
    image_size: int = 32,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Generate ``count`` RGB images of 10 texture classes, deterministically from ``seed``.

    The point is a data set that needs no download yet behaves like a real one: it should take
    a few hundred SGD steps to learn, and a deeper net should do better than a shallow one.

    Each class is defined by three *atoms* drawn from a shared pool of 24. An atom is a
    coloured, oriented wave (a Gabor-like patch): a random spatial frequency of 1-3.5 cycles
    per image, a random direction and a random colour. Because the pool is shared, classes
    overlap: telling them apart means recognising a *combination* of waves, not one colour.
    Each image then gets:

    - a random subset of its class's atoms (each kept with probability 0.7, at least two),
      with random amplitudes, phases (the wave shifts) and centres (the patch moves);
    - one *distractor* atom from the whole pool, which carries no information about the class;
    - a random background colour (which also sets the brightness), a random contrast, and
      Gaussian pixel noise.

    The waves are low-frequency: one period spans 9 to 32 pixels, far more than a 3×3 kernel
    sees, and a stack of 3×3 convolutions widens its view by only 2 pixels per layer (before
    striding), so recognising a wave's direction and frequency takes depth.

    Measured on the CPU with SGD (lr 0.1, momentum 0.9, weight decay 1e-4), batch 128, §4.2's
    augmentation, 10,800 training images: a ResNet-20 had 59% validation error after 100
    steps, 27% after 200, 17% after 300 and about 10% after 500-700; a two-layer CNN (16 and
    32 channels) had 66% after 50 steps, 30% after 300 and still 21% after 800. A
    nearest-class-mean classifier on the raw pixels is at chance.

    Returns:
        uint8 images ``(count, 3, image_size, image_size)``, int64 labels ``(count,)`` (in a
        random order; every class has ``count // 10`` or one more images) and the class names
        ``("pattern0", ..., "pattern9")``.
    """
    if count < 1:
        raise DataError(f"The synthetic data set needs at least one image, got {count}.")
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return torch.empty(shape).uniform_(low, high, generator=generator)

    # The pool of atoms: frequency vectors in cycles per image, and random unit colour
    # directions with half of their grey component removed, so that most atoms change the hue
    # more than the brightness. A wave averages out over its patch, so no atom shifts an
    # image's mean colour much: the class is in the pattern, not in a colour histogram.
    pool_size, atoms_per_class, distractors = 24, 3, 1
    angle = uniform(0.0, math.pi, pool_size)
    radius = uniform(1.0, 3.5, pool_size)
    frequency = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=1)  # (P, 2)
    colour = torch.randn((pool_size, 3), generator=generator)
    colour = colour - 0.5 * colour.mean(dim=1, keepdim=True)
    colour = colour / colour.norm(dim=1, keepdim=True)
    width = uniform(0.25, 0.45, pool_size)  # Gaussian envelope, in image widths

    class_atoms = _distinct_subsets(pool_size, atoms_per_class, SYNTHETIC_CLASSES, generator)  # (C, A)

    labels = torch.arange(count) % SYNTHETIC_CLASSES
    # One permutation so the classes are not in a repeating pattern in the returned order.
    labels = labels[torch.randperm(count, generator=generator)]

    # Per-image random choices, drawn up front; only the pixel noise is drawn chunk by chunk.
    slots = atoms_per_class + distractors
    atom = torch.cat(
        (class_atoms[labels], torch.randint(0, pool_size, (count, distractors), generator=generator)), dim=1
    )  # (N, K) indices into the pool
    score = torch.rand((count, atoms_per_class), generator=generator)
    # Each atom kept with probability 0.7, but always the two with the lowest scores: with
    # fewer than two, an image would carry almost no sign of its class.
    keep = (score < 0.7) | (score.argsort(dim=1).argsort(dim=1) < 2)
    amplitude = torch.cat(
        (uniform(0.6, 1.0, count, atoms_per_class) * keep, uniform(0.3, 0.7, count, distractors)), dim=1
    )  # (N, K); distractors are fainter than the class's own atoms
    phase = uniform(0.0, 2 * math.pi, count, slots)
    centre = uniform(0.15, 0.85, count, slots, 2)
    background = uniform(0.4, 0.6, count, 3)
    contrast = uniform(0.5, 1.2, count)

    # A Gabor patch is separable once its wave is split with cos(a + b) = cos a cos b - sin a sin b:
    #   cos(2π(fx·x + fy·y) + φ) · e(x) · e(y) = [cos(2π fy·y + φ) e(y)] [cos(2π fx·x) e(x)]
    #                                          - [sin(2π fy·y + φ) e(y)] [sin(2π fx·x) e(x)],
    # so a whole image is a batched (3H × 2K) @ (2K × W) matrix product of 1-D profiles, which
    # is what makes 12,000 images take a fraction of a second.
    coords = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size  # pixel centres in [0, 1]
    images = torch.empty((count, 3, image_size, image_size), dtype=torch.uint8)
    chunk = 2048
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        index = atom[start:stop]  # (B, K)
        f, c = frequency[index], centre[start:stop]  # (B, K, 2) each
        sigma = width[index][..., None]  # (B, K, 1)
        along_x = 2 * math.pi * f[..., 0, None] * coords  # (B, K, W)
        along_y = 2 * math.pi * f[..., 1, None] * coords + phase[start:stop, :, None]  # (B, K, H)
        envelope_x = torch.exp(-((coords - c[..., 0, None]) ** 2) / (2 * sigma**2))
        envelope_y = torch.exp(-((coords - c[..., 1, None]) ** 2) / (2 * sigma**2))
        # (B, 2K, W) and (B, 2K, H): the cos and the sin halves of every atom's profile.
        right = torch.cat((torch.cos(along_x), torch.sin(along_x)), dim=1) * envelope_x.repeat(1, 2, 1)
        left = torch.cat((torch.cos(along_y), -torch.sin(along_y)), dim=1) * envelope_y.repeat(1, 2, 1)
        weight = (amplitude[start:stop, :, None] * colour[index]).repeat(1, 2, 1)  # (B, 2K, 3)
        left = (weight[:, :, :, None] * left[:, :, None, :]).flatten(2).transpose(1, 2)  # (B, 3H, 2K)
        pattern = torch.bmm(left, right).view(stop - start, 3, image_size, image_size)
        # pixel = background + contrast · pattern + noise, in [0, 1] before the uint8 conversion
        scale = (0.3 * 255) * contrast[start:stop, None, None, None]
        pixels = pattern.mul_(scale).add_(255 * background[start:stop, :, None, None])
        pixels.add_(torch.randn(pixels.shape, generator=generator), alpha=0.05 * 255)
        images[start:stop] = pixels.round_().clamp_(0, 255).to(torch.uint8)
        _report(progress, stop, count)
    classes = tuple(f"pattern{i}" for i in range(SYNTHETIC_CLASSES))
    return images, labels, classes


def _distinct_subsets(pool: int, size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` different random ``size``-subsets of ``range(pool)``, as a ``(count, size)`` tensor."""
    chosen: list[tuple[int, ...]] = []
    while len(chosen) < count:
        subset = tuple(sorted(torch.randperm(pool, generator=generator)[:size].tolist()))
        if subset not in chosen:
            chosen.append(subset)
    return torch.tensor(chosen)


# --------------------------------------------------------------------------------------------
# cifar10
# --------------------------------------------------------------------------------------------


def _load_cifar10(
    root: Path, image_size: int, progress: ProgressCallback | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    import torchvision  # imported here: only this source needs it, and it takes a while to import

    try:
        dataset = torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError
        raise DataError(
            f"Could not load CIFAR-10 ({type(error).__name__}: {error}). torchvision looks for the "
            f"extracted folder {root / 'cifar-10-batches-py'} and downloads it there when it is "
            f"missing, which needs internet. Copy cifar-10-batches-py into {root} (or set "
            f"EXPLORER_CACHE_DIR), or use 'folder:PATH' with an ImageFolder tree "
            f"PATH/<class>/<image>.png instead."
        ) from error
    # The batches are already decoded: (N, 32, 32, 3) uint8 numpy, no per-image PIL needed.
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()
    images = _resize_tensor(images, image_size)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    _report(progress, images.shape[0], images.shape[0])
    return images, labels, tuple(dataset.classes)


# --------------------------------------------------------------------------------------------
# folder:PATH
# --------------------------------------------------------------------------------------------


def _check_folder(argument: str) -> Path:
    if not argument.strip():
        raise DataError(
            "'folder:' needs a path, for example 'folder:/data/pets' with one sub-folder per class."
        )
    path = Path(argument.strip()).expanduser()
    if not path.exists():
        raise DataError(f"The folder {path} does not exist. Check the path after 'folder:'.")
    if not path.is_dir():
        raise DataError(
            f"{path} is a file, not a folder. 'folder:PATH' needs a folder with one sub-folder "
            f"of images per class (PATH/<class>/<image>.jpg)."
        )
    return path.resolve()


@dataclass(frozen=True)
class ImageFile:
    """One image found by :func:`scan_folder`: enough to notice that it changed, without reading it."""

    relative: str  # POSIX path relative to the root, e.g. "cat/0001.jpg"; sorting key
    size: int  # bytes
    mtime_ns: int


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _scan_class_folder(folder: str, prefix: str, found: list[ImageFile]) -> None:
    """Append the images under ``folder`` (recursively, like ImageFolder) to ``found``; stat only."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            relative = f"{prefix}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):  # a linked folder could loop back up the tree
                _scan_class_folder(entry.path, relative, found)
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.is_file():
                stat = entry.stat()
                found.append(ImageFile(relative, stat.st_size, stat.st_mtime_ns))


def scan_folder(root: Path) -> tuple[tuple[str, ...], list[ImageFile]]:
    """The classes and image files of an ImageFolder tree, without opening any image.

    Classes are the sorted names of the sub-folders that hold at least one image; files are
    sorted by their path relative to ``root``, so every later step (labels, the split, the
    cache key) is independent of the order the file system lists them in.
    """
    per_class: dict[str, list[ImageFile]] = {}
    try:
        with os.scandir(root) as entries:
            folders = sorted(e.name for e in entries if not _is_hidden(e.name) and e.is_dir())
        for name in folders:
            found: list[ImageFile] = []
            _scan_class_folder(os.path.join(root, name), name, found)
            if found:
                per_class[name] = found
    except OSError as error:
        raise DataError(f"Could not list the folder {root} ({error}). Check its permissions.") from error
    classes = tuple(sorted(per_class))
    files = sorted((f for name in classes for f in per_class[name]), key=lambda f: f.relative)
    return classes, files


def _load_folder(
    root: Path, image_size: int, cache_folder: Path, progress: ProgressCallback | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    classes, files = scan_folder(root)
    if not files:
        with os.scandir(root) as entries:
            loose = any(e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file() for e in entries)
        hint = " The images lie directly in the folder: move them into one sub-folder per class."
        hint = hint if loose else ""
        raise DataError(
            f"No images found in {root}. Expected one sub-folder per class with "
            f"{', '.join(IMAGE_EXTENSIONS)} files inside (PATH/<class>/<image>.jpg).{hint}"
        )
    if len(classes) < 2:
        raise DataError(
            f"Classification needs at least two classes, found only {classes[0]!r} in {root}. "
            f"Add a sub-folder of images for each other class."
        )

    key = _cache_key(root, image_size, files)
    # One file per (folder, size), overwritten when the folder changes, so stale copies of a
    # 150 MB data set do not pile up; the content key is checked inside the file.
    slot = hashlib.sha256(f"{root}|{image_size}".encode()).hexdigest()[:24]
    cache_file = cache_folder / f"{slot}.safetensors"
    cached = _read_cache(cache_file, key, len(files), image_size)
    if cached is not None:
        images, labels, cached_classes = cached
        _report(progress, len(files), len(files))
        return images, labels, cached_classes

    class_index = {name: i for i, name in enumerate(classes)}
    labels = torch.tensor([class_index[f.relative.split("/", 1)[0]] for f in files], dtype=torch.int64)
    images = _decode_all(root, [f.relative for f in files], image_size, progress)
    _write_cache(cache_file, key, images, labels, classes, root)
    return images, labels, classes


def _cache_key(root: Path, image_size: int, files: list[ImageFile]) -> str:
    """A hash that changes when any file is added, removed, rewritten or touched."""
    digest = hashlib.sha256()
    digest.update(json.dumps([_CACHE_FORMAT, str(root), image_size]).encode())
    for f in files:
        digest.update(f"\n{f.relative}\0{f.size}\0{f.mtime_ns}".encode())
    return digest.hexdigest()


def _read_cache(
    path: Path, key: str, count: int, image_size: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]] | None:
    """The cached tensors if ``path`` holds a sound cache for ``key``, else ``None``.

    Any failure (missing, truncated or foreign file) means "not cached": the folder is decoded
    again and the file rewritten, so a broken cache can never stop the app from loading data.
    """
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("key") != key:
                return None
            images = handle.get_tensor("images")
            labels = handle.get_tensor("labels")
        classes = tuple(json.loads(metadata["classes"]))
    except Exception:  # noqa: BLE001 - see the docstring: a bad cache is rebuilt, not reported
        return None
    sound = (
        images.dtype == torch.uint8
        and images.shape == (count, 3, image_size, image_size)
        and labels.dtype == torch.int64
        and labels.shape == (count,)
        and all(isinstance(name, str) for name in classes)
        and int(labels.min()) >= 0
        and int(labels.max()) < len(classes)
    )
    return (images, labels, classes) if sound else None


def _write_cache(
    path: Path, key: str, images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], root: Path
) -> None:
    """Save the decoded folder; atomically, so a crash or a second process never leaves half a file."""
    from safetensors.torch import save_file

    metadata = {"format": _CACHE_FORMAT, "key": key, "classes": json.dumps(list(classes)), "root": str(root)}
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
        os.close(fd)
        tensors = {"images": images.contiguous(), "labels": labels.contiguous()}
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        # The data is loaded; only the next load will be slower. Not worth failing for.
        warnings.warn(f"Could not cache the decoded images in {path.parent} ({error}).", stacklevel=3)
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def folder_pixels(image, image_size: int) -> np.ndarray:
    """An upright RGB PIL image -> uint8 ``(image_size, image_size, 3)``, resized as every
    folder data set is (bilinear, aspect ratio not kept): a photo classified by a model
    fine-tuned on a folder goes through exactly this step too."""
    from PIL import Image

    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def _decode_image(path: str, image_size: int) -> np.ndarray:
    """One file -> uint8 ``(image_size, image_size, 3)``; every failure is a :class:`DataError`."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as opened:
            # Phone photos are often stored sideways with an EXIF "rotate me" flag.
            image = ImageOps.exif_transpose(opened).convert("RGB")
        return folder_pixels(image, image_size)
    except Image.DecompressionBombError as error:
        # Pillow's guard against images built to exhaust memory stays on (MAX_IMAGE_PIXELS).
        raise DataError(
            f"Could not read {path}: it is too large to decode safely ({error}). "
            f"Remove the file or shrink it."
        ) from error
    except Exception as error:  # noqa: BLE001 - Pillow's plugins raise OSError, SyntaxError, ValueError...
        raise DataError(
            f"Could not read {path} ({type(error).__name__}: {error}). Remove or replace the file."
        ) from error


def _decode_all(
    root: Path, relatives: list[str], image_size: int, progress: ProgressCallback | None
) -> torch.Tensor:
    """Decode every file in parallel threads into one uint8 ``(N, 3, S, S)`` tensor."""
    total = len(relatives)
    pixels = np.empty((total, image_size, image_size, 3), dtype=np.uint8)

    def decode_chunk(start: int) -> int:
        stop = min(start + _DECODE_CHUNK, total)
        for i in range(start, stop):
            # Each task writes its own rows of `pixels`, so the threads never share memory.
            pixels[i] = _decode_image(os.path.join(root, relatives[i]), image_size)
        return stop - start

    # Threads, not processes: Pillow releases the GIL while it decodes, and the results land
    # straight in one shared array with nothing to pickle. For CIFAR-sized JPEGs most of the
    # ~200 µs per file is Pillow's Python-level header parsing, which holds the GIL, so more
    # than a few threads only queue for it (measured: 4 threads on 2 cores were 1.5× slower).
    executor = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="decode")
    try:
        pending = {executor.submit(decode_chunk, start) for start in range(0, total, _DECODE_CHUNK)}
        done_count, reported = 0, 0
        _report(progress, 0, total)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done_count += future.result()  # re-raises the first unreadable image
            if done_count - reported >= _PROGRESS_EVERY or (not pending and done_count > reported):
                _report(progress, done_count, total)
                reported = done_count
    finally:
        # On an error, do not wait for the remaining chunks to be decoded only to be discarded.
        executor.shutdown(wait=True, cancel_futures=True)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------------
# Augmentation on the device
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augmentation:
    """The training-time augmentation; the defaults are the paper's CIFAR-10 recipe (§4.2).

    §4.2: "4 pixels are padded on each side, and a 32×32 crop is randomly sampled from the
    padded image or its horizontal flip." Random erasing (Zhong et al. 2017, arXiv:1708.04896)
    is not in the paper; it is here to show how a later regulariser changes training.
    """

    pad: int = 4  # pixels of zero padding on each side before the random crop (§4.2); 0 = no crop
    flip: bool = True  # flip each image left-right with probability 1/2 (§4.2)
    erasing_p: float = 0.0  # probability of erasing one random box per image; 0 = off (the paper)
    erasing_scale: tuple[float, float] = (0.02, 0.33)  # box area, as a fraction of the image
    erasing_ratio: tuple[float, float] = (0.3, 3.3)  # box aspect ratio (height / width)
    erasing_value: float | str = 0.0  # fill after normalisation: 0.0 = the data set mean, or "random"

    def __post_init__(self) -> None:
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0:
            raise ValueError(f"pad must be a whole number of pixels >= 0, got {self.pad!r}.")
        if not 0.0 <= self.erasing_p <= 1.0:
            raise ValueError(f"erasing_p is a probability and must be in [0, 1], got {self.erasing_p!r}.")
        low, high = self.erasing_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(
                f"erasing_scale must be (min, max) with 0 < min <= max <= 1, got {self.erasing_scale!r}."
            )
        low, high = self.erasing_ratio
        if not 0.0 < low <= high:
            raise ValueError(
                f"erasing_ratio must be (min, max) with 0 < min <= max, got {self.erasing_ratio!r}."
            )
        if isinstance(self.erasing_value, str) and self.erasing_value != "random":
            raise ValueError(f"erasing_value must be a number or 'random', got {self.erasing_value!r}.")


def _check_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"Expected a uint8 tensor of shape (B, 3, H, W), got {type(images).__name__}.")
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        got = f"{images.dtype} {tuple(images.shape)}"
        raise ValueError(f"Expected a uint8 batch of shape (B, 3, H, W), got {got}.")


def normalize(images: torch.Tensor, mean: Sequence[float] = CIFAR10_MEAN,
              std: Sequence[float] = CIFAR10_STD) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` in [0, 255] -> float32, per channel ``(x / 255 - mean) / std``.

    The default statistics are CIFAR-10's (:data:`CIFAR10_MEAN`, :data:`CIFAR10_STD`); the
    paper subtracts the per-pixel mean (§4.2), the common modern recipe a per-channel mean
    and std. They are used for every data set trained from scratch here, so a model sees
    inputs on one scale; a fine-tuned backbone keeps the statistics it was trained with.
    """
    _check_batch(images)
    mean = torch.tensor(mean, device=images.device).view(3, 1, 1)
    std = torch.tensor(std, device=images.device).view(3, 1, 1)
    return images.to(torch.float32).div_(255).sub_(mean).div_(std)


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(B, 3, h, w)`` -> uint8 ``(B, 3, size, size)``, bilinear: how transfer learning
    feeds 32×32 CIFAR images to a network made for larger ones (the same at training and
    at test time)."""
    _check_batch(images)
    if images.shape[-2:] == (size, size):
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def augment(
    images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator | None = None,
    mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
) -> torch.Tensor:
    """Augment a uint8 batch ``(B, 3, H, W)`` and normalise it to float32 ``(B, 3, H, W)``.

    Steps, each drawn independently per image:

    1. Pad with ``pad`` zero (black) pixels on each side and cut a random ``H×W`` crop (§4.2),
       i.e. shift the image by up to ``pad`` pixels; pixels shifted in are black, as with
       torchvision's ``RandomCrop(32, padding=4)`` on a uint8 image.
    2. Flip left-right with probability 1/2 (§4.2).
    3. :func:`normalize` with ``mean`` and ``std`` (CIFAR-10's unless a fine-tuned backbone
       brings its own).
    4. If ``erasing_p > 0``: torchvision's ``v2.RandomErasing``, one box per image
       (:func:`random_erase`).

    Steps 1-2 are one gather over the whole batch, on the batch's device, with no Python loop.
    They draw their randomness from ``generator`` (which must live on the batch's device), so
    a seeded generator reproduces them exactly. Random erasing loops over the images (v2 would
    erase the same box in every image of a batch) and uses torch's global generator, so seed
    it with ``torch.manual_seed`` to reproduce it.
    """
    _check_batch(images)
    batch, _, height, width = images.shape
    device = images.device
    pad = augmentation.pad

    if pad > 0 or augmentation.flip:
        # out[b, c, i, j] = padded[b, c, rows[b, i], cols[b, j]]: crop and flip as one gather.
        rows = torch.arange(height, device=device).expand(batch, height)
        cols = torch.arange(width, device=device).expand(batch, width)
        source = images
        if pad > 0:
            source = F.pad(images, (pad, pad, pad, pad))
            dy = torch.randint(0, 2 * pad + 1, (batch, 1), device=device, generator=generator)
            dx = torch.randint(0, 2 * pad + 1, (batch, 1), device=device, generator=generator)
            rows, cols = rows + dy, cols + dx
        if augmentation.flip:
            flipped = torch.rand((batch, 1), device=device, generator=generator) < 0.5
            cols = torch.where(flipped, cols.flip(-1), cols)
        channel = torch.arange(3, device=device).view(1, 3, 1, 1)
        index = torch.arange(batch, device=device).view(batch, 1, 1, 1)
        images = source[index, channel, rows[:, None, :, None], cols[:, None, None, :]]

    return random_erase(normalize(images, mean, std), augmentation)


def random_erase(normalized: torch.Tensor, augmentation: Augmentation) -> torch.Tensor:
    """torchvision's ``v2.RandomErasing`` with the augmentation's knobs, on a normalised
    float batch, in place, one independent box per image (v2 applied to a whole batch would
    erase the same box everywhere). Used in training (lab, fine-tuning) and by the preview."""
    if augmentation.erasing_p <= 0:
        return normalized
    from torchvision.transforms import v2  # only needed when erasing is on

    eraser = v2.RandomErasing(
        p=augmentation.erasing_p,
        scale=augmentation.erasing_scale,
        ratio=augmentation.erasing_ratio,
        value=augmentation.erasing_value,
        inplace=True,  # callers pass a fresh tensor, so erasing in place is safe
    )
    for i in range(normalized.shape[0]):
        eraser(normalized[i])
    return normalized


def denormalize(normalized: torch.Tensor, mean: Sequence[float] = CIFAR10_MEAN,
                std: Sequence[float] = CIFAR10_STD) -> torch.Tensor:
    """The inverse of :func:`normalize`, for showing what a network was fed: uint8, clamped
    (random erasing's noise lies partly outside the image range)."""
    mean = torch.tensor(mean, device=normalized.device).view(3, 1, 1)
    std = torch.tensor(std, device=normalized.device).view(3, 1, 1)
    return (normalized * std + mean).mul_(255).round_().clamp_(0, 255).to(torch.uint8)
