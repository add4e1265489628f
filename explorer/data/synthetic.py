"""The ``"synthetic"`` source: textured images generated in a fraction of a second.

It lets the tests, and anyone without a download, train a real network on a task that takes a
few hundred SGD steps to learn and rewards depth (see :func:`make_synthetic`). Like every
source it returns uint8 images ``(N, 3, S, S)``, int64 labels and class names, which
:func:`~explorer.data.loading.load_data` splits into an
:class:`~explorer.data.dataset.InMemoryData`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from explorer.data.dataset import DataError, ProgressCallback, report_progress
from explorer.settings import SYNTHETIC_IMAGES, LimitError

SYNTHETIC_DEFAULT_SIZE = 12_000  # images in "synthetic"; enough for a few epochs of a ResNet-20
SYNTHETIC_CLASSES = 10

_POOL_SIZE = 24  # atoms shared by all classes
_ATOMS_PER_CLASS = 3
_DISTRACTORS = 1  # atoms per image drawn from the whole pool, carrying no class information
_RENDER_CHUNK = 2048  # images rendered per batched matrix product


def parse_synthetic_count(argument: str) -> int:
    """The ``N`` of ``"synthetic:N"``, within ``settings.SYNTHETIC_IMAGES``: at least one image
    per class, and few enough that one request cannot take the server's memory
    (``synthetic:3000000`` would be a 9.2 GB tensor). Checked before anything is allocated."""
    try:
        return SYNTHETIC_IMAGES.parse(argument, what=f"The N of 'synthetic:{argument.strip()[:20]}'")
    except LimitError as error:
        raise DataError(f"{error} For example 'synthetic:2000'.") from None


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

    Each class is defined by three *atoms* drawn from a shared pool of 24: coloured, oriented
    waves (Gabor-like patches, see :class:`_AtomPool`). Because the pool is shared, classes
    overlap: telling them apart means recognising a *combination* of waves, not one colour.
    Each image gets a random subset of its class's atoms, one distractor atom from the whole
    pool, a random background, contrast and pixel noise (see :class:`_ImageDraws`). The waves
    are low-frequency: one period spans 9 to 32 pixels, far more than a 3×3 kernel sees, and
    a stack of 3×3 convolutions widens its view by only 2 pixels per layer (before striding),
    so recognising a wave's direction and frequency takes depth.

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
    # The order of the random draws below fixes every pixel: changing it changes the data set.
    generator = torch.Generator().manual_seed(seed)
    pool = _AtomPool.draw(generator)
    class_atoms = _distinct_subsets(_POOL_SIZE, _ATOMS_PER_CLASS, SYNTHETIC_CLASSES, generator)  # (C, A)
    labels = torch.arange(count) % SYNTHETIC_CLASSES
    # One permutation so the classes are not in a repeating pattern in the returned order.
    labels = labels[torch.randperm(count, generator=generator)]
    draws = _ImageDraws.draw(class_atoms[labels], generator)

    coords = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size  # pixel centres in [0, 1]
    images = torch.empty((count, 3, image_size, image_size), dtype=torch.uint8)
    for start in range(0, count, _RENDER_CHUNK):
        stop = min(start + _RENDER_CHUNK, count)
        images[start:stop] = _render(pool, draws, slice(start, stop), coords, generator)
        report_progress(progress, stop, count)
    classes = tuple(f"pattern{i}" for i in range(SYNTHETIC_CLASSES))
    return images, labels, classes


def _uniform(generator: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    return torch.empty(shape).uniform_(low, high, generator=generator)


@dataclass(frozen=True)
class _AtomPool:
    """The waves classes are made of: a random spatial frequency of 1-3.5 cycles per image in a
    random direction, a random colour, and the width of the Gaussian patch that carries it.

    Colours are random unit directions with half of their grey component removed, so that most
    atoms change the hue more than the brightness. A wave averages out over its patch, so no
    atom shifts an image's mean colour much: the class is in the pattern, not in a colour histogram.
    """

    frequency: torch.Tensor  # (P, 2) cycles per image, along x and y
    colour: torch.Tensor  # (P, 3) unit vectors
    width: torch.Tensor  # (P,) standard deviation of the Gaussian envelope, in image widths

    @classmethod
    def draw(cls, generator: torch.Generator) -> _AtomPool:
        angle = _uniform(generator, 0.0, math.pi, _POOL_SIZE)
        radius = _uniform(generator, 1.0, 3.5, _POOL_SIZE)
        frequency = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=1)
        colour = torch.randn((_POOL_SIZE, 3), generator=generator)
        colour = colour - 0.5 * colour.mean(dim=1, keepdim=True)
        colour = colour / colour.norm(dim=1, keepdim=True)
        width = _uniform(generator, 0.25, 0.45, _POOL_SIZE)
        return cls(frequency, colour, width)


@dataclass(frozen=True)
class _ImageDraws:
    """Every per-image random choice except the pixel noise, drawn up front for all N images.

    Each image has K = 3 + 1 slots: its class's atoms, each kept with probability 0.7 (but at
    least two, or an image would carry almost no sign of its class), with random amplitudes,
    phases (the wave shifts) and centres (the patch moves); then one fainter distractor atom.
    """

    atom: torch.Tensor  # (N, K) indices into the pool
    amplitude: torch.Tensor  # (N, K); 0 for a dropped class atom
    phase: torch.Tensor  # (N, K) radians
    centre: torch.Tensor  # (N, K, 2) patch centre (x, y) in [0, 1]
    background: torch.Tensor  # (N, 3) background colour in [0, 1], which also sets the brightness
    contrast: torch.Tensor  # (N,)

    @classmethod
    def draw(cls, own_atoms: torch.Tensor, generator: torch.Generator) -> _ImageDraws:
        """``own_atoms``: ``(N, 3)`` the atoms of each image's class."""
        count = own_atoms.shape[0]
        distractor = torch.randint(0, _POOL_SIZE, (count, _DISTRACTORS), generator=generator)
        atom = torch.cat((own_atoms, distractor), dim=1)
        score = torch.rand((count, _ATOMS_PER_CLASS), generator=generator)
        keep = (score < 0.7) | (score.argsort(dim=1).argsort(dim=1) < 2)  # the two lowest always stay
        own_amplitude = _uniform(generator, 0.6, 1.0, count, _ATOMS_PER_CLASS) * keep
        distractor_amplitude = _uniform(generator, 0.3, 0.7, count, _DISTRACTORS)
        slots = _ATOMS_PER_CLASS + _DISTRACTORS
        return cls(
            atom=atom,
            amplitude=torch.cat((own_amplitude, distractor_amplitude), dim=1),
            phase=_uniform(generator, 0.0, 2 * math.pi, count, slots),
            centre=_uniform(generator, 0.15, 0.85, count, slots, 2),
            background=_uniform(generator, 0.4, 0.6, count, 3),
            contrast=_uniform(generator, 0.5, 1.2, count),
        )


def _render(
    pool: _AtomPool, draws: _ImageDraws, rows: slice, coords: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The uint8 images ``(B, 3, S, S)`` for the images ``rows`` of ``draws``.

    A Gabor patch is separable once its wave is split with cos(a + b) = cos a cos b - sin a sin b:
      cos(2π(fx·x + fy·y) + φ) · e(x) · e(y) = [cos(2π fy·y + φ) e(y)] [cos(2π fx·x) e(x)]
                                             - [sin(2π fy·y + φ) e(y)] [sin(2π fx·x) e(x)],
    so a whole image is a batched (3H × 2K) @ (2K × W) matrix product of 1-D profiles, which
    is what makes 12,000 images take a fraction of a second.
    """
    index = draws.atom[rows]  # (B, K)
    f, c = pool.frequency[index], draws.centre[rows]  # (B, K, 2) each
    sigma = pool.width[index][..., None]  # (B, K, 1)
    along_x = 2 * math.pi * f[..., 0, None] * coords  # (B, K, W)
    along_y = 2 * math.pi * f[..., 1, None] * coords + draws.phase[rows, :, None]  # (B, K, H)
    envelope_x = torch.exp(-((coords - c[..., 0, None]) ** 2) / (2 * sigma**2))
    envelope_y = torch.exp(-((coords - c[..., 1, None]) ** 2) / (2 * sigma**2))
    # (B, 2K, W) and (B, 2K, H): the cos and the sin halves of every atom's profile.
    right = torch.cat((torch.cos(along_x), torch.sin(along_x)), dim=1) * envelope_x.repeat(1, 2, 1)
    left = torch.cat((torch.cos(along_y), -torch.sin(along_y)), dim=1) * envelope_y.repeat(1, 2, 1)
    weight = (draws.amplitude[rows, :, None] * pool.colour[index]).repeat(1, 2, 1)  # (B, 2K, 3)
    left = (weight[:, :, :, None] * left[:, :, None, :]).flatten(2).transpose(1, 2)  # (B, 3H, 2K)
    size = coords.shape[0]
    pattern = torch.bmm(left, right).view(index.shape[0], 3, size, size)
    # pixel = background + contrast · pattern + noise, in [0, 1] before the uint8 conversion
    scale = (0.3 * 255) * draws.contrast[rows, None, None, None]
    pixels = pattern.mul_(scale).add_(255 * draws.background[rows, :, None, None])
    pixels.add_(torch.randn(pixels.shape, generator=generator), alpha=0.05 * 255)
    return pixels.round_().clamp_(0, 255).to(torch.uint8)


def _distinct_subsets(pool: int, size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` different random ``size``-subsets of ``range(pool)``, as a ``(count, size)`` tensor."""
    chosen: list[tuple[int, ...]] = []
    while len(chosen) < count:
        subset = tuple(sorted(torch.randperm(pool, generator=generator)[:size].tolist()))
        if subset not in chosen:
            chosen.append(subset)
    return torch.tensor(chosen)
