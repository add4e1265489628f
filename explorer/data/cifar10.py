"""The ``"cifar10"`` source: torchvision's copy of the CIFAR-10 training set (He et al. 2015, §4.2).

torchvision stores the 50,000 images already decoded, so this source needs no decoder and no
cache: it converts the arrays to uint8 ``(N, 3, 32, 32)`` tensors, resizes them if another
size was asked for, and hands them to :func:`~explorer.data.loading.load_data` to be split.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from explorer.data.dataset import DataError, ProgressCallback, report_progress


def load_cifar10(
    root: Path, image_size: int, progress: ProgressCallback | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Images, labels and class names of CIFAR-10's training set, downloaded into ``root``
    on first use."""
    import torchvision  # imported here: only this source needs it, and it takes a while to import

    try:
        dataset = torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError
        raise DataError(
            f"CIFAR-10 is not on this machine and could not be downloaded ({_reason(error)}). "
            f"Either put torchvision's extracted copy at {root / 'cifar-10-batches-py'} (or set "
            "EXPLORER_CACHE_DIR), or use 'folder:PATH' with an ImageFolder tree PATH/<class>/<image>. "
            "Offline, the CIFAR-10 images shipped with the app ('pack:cifar10-demo', 'pack:cifar10-eval') "
            "work without either."
        ) from error
    # The batches are already decoded: (N, 32, 32, 3) uint8 numpy, no per-image PIL needed.
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()
    images = resize_uint8(images, image_size)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    report_progress(progress, images.shape[0], images.shape[0])
    return images, labels, tuple(dataset.classes)


def _reason(error: Exception) -> str:
    """Why the download failed, in words: "no internet connection", not a raw ``URLError``."""
    reason = getattr(error, "reason", None)
    if isinstance(error, urllib.error.URLError) or isinstance(reason, OSError):
        return "no internet connection"
    if isinstance(error, FileNotFoundError):
        return "its folder is missing"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:120]


def resize_uint8(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 ``(N, 3, h, w)`` resized to ``image_size``², bilinear with antialiasing, in chunks."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    out = torch.empty((images.shape[0], 3, image_size, image_size), dtype=torch.uint8)
    for start in range(0, images.shape[0], 1024):  # bounded float32 working memory
        chunk = images[start : start + 1024].float()
        resized = F.interpolate(chunk, size=(image_size, image_size), mode="bilinear", antialias=True)
        out[start : start + 1024] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out
