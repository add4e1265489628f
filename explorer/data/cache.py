"""The decoded-tensor disk cache: a folder decoded once is loaded in well under a second next time.

Decoding 50,000 small JPEGs takes tens of seconds on two cores (:mod:`~explorer.data.decoder`);
reading the same pixels back from one safetensors file takes a fraction of one. Each
``(folder, image size)`` has one slot file under ``cache_dir/"folders"``, overwritten when the
folder changes, so stale copies of a 150 MB data set do not pile up. Inside the file, a content
key (:func:`cache_key`, a hash of the scanner's file list with sizes and modification times)
says which version of the folder it holds; any mismatch or damage means "decode again".
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from explorer.data.scanner import ImageFile
from explorer.files import atomic_write

# A cache file written by a different version of the decoding code must not be reused: bump
# this whenever the decoded pixels could change (resize filter, colour conversion, ...).
CACHE_FORMAT = "resnet-explorer-folder-v1"

Decoded = tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]  # images, labels, class names


def cache_slot(cache_folder: Path, root: Path, image_size: int) -> Path:
    """The one cache file for ``root`` decoded at ``image_size``."""
    slot = hashlib.sha256(f"{root}|{image_size}".encode()).hexdigest()[:24]
    return cache_folder / f"{slot}.safetensors"


def cache_key(root: Path, image_size: int, files: list[ImageFile]) -> str:
    """A hash that changes when any file is added, removed, rewritten or touched."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_FORMAT, str(root), image_size]).encode())
    for f in files:
        digest.update(f"\n{f.relative}\0{f.size}\0{f.mtime_ns}".encode())
    return digest.hexdigest()


def read_cache(path: Path, key: str, count: int, image_size: int) -> Decoded | None:
    """The cached tensors if ``path`` holds a sound cache for ``key``, else ``None``.

    Any failure (missing, truncated or foreign file) means "not cached": the folder is decoded
    again and the file rewritten, so a broken cache can never stop the app from loading data.
    """
    if not path.is_file():
        return None
    try:
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


def write_cache(
    path: Path, key: str, images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], root: Path
) -> None:
    """Save the decoded folder; atomically, so a crash or a second process never leaves half a file."""
    metadata = {"format": CACHE_FORMAT, "key": key, "classes": json.dumps(list(classes)), "root": str(root)}
    tensors = {"images": images.contiguous(), "labels": labels.contiguous()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda temporary: save_file(tensors, temporary, metadata=metadata))
    except OSError as error:
        # The data is loaded; only the next load will be slower. Not worth failing for.
        # stacklevel 5: write_cache <- load_folder <- _load_source <- load_data <- its caller.
        warnings.warn(f"Could not cache the decoded images in {path.parent} ({error}).", stacklevel=5)
