"""Augmentation on the device, in batches: the second half of :mod:`explorer.data`.

The sources leave a data set as uint8 tensors in an :class:`~explorer.data.dataset.InMemoryData`
that the training loop moves to the device once. Each step then indexes a uint8 batch
``(B, 3, H, W)`` out of it and calls :func:`augment` here, which does the paper's padding,
random crop and flip (He et al. 2015, §4.2) for the whole batch with a few tensor operations,
on the batch's device, and normalises it to float32; this is airbench's approach, and why
there is no ``DataLoader`` and no worker process. :func:`normalize` alone prepares validation
batches, :func:`upsample` feeds CIFAR images to ImageNet-sized networks in transfer learning,
and :func:`denormalize` turns a normalised batch back into pixels for the preview.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # per-channel mean of the 50k CIFAR-10 training images, in [0, 1]
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # and their standard deviation (over all pixels)


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
