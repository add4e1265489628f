"""The folder scanner: which classes and image files an ImageFolder tree holds, without opening one.

:func:`scan_folder` only lists directories and stats files, so it takes a fraction of a second
even for 50,000 images. Its result feeds both halves of loading a folder
(:mod:`~explorer.data.folder`): the file list, sizes and modification times make the key of the
decoded-tensor cache (:mod:`~explorer.data.cache`), and the same sorted list is what the
decoder pool (:mod:`~explorer.data.decoder`) reads when the cache misses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from explorer.data.dataset import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")  # compared lower-cased


@dataclass(frozen=True)
class ImageFile:
    """One image found by :func:`scan_folder`: enough to notice that it changed, without reading it."""

    relative: str  # POSIX path relative to the root, e.g. "cat/0001.jpg"; sorting key
    size: int  # bytes
    mtime_ns: int


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


def has_loose_images(root: Path) -> bool:
    """Whether images lie directly in ``root``, not in class sub-folders (a common mistake)."""
    with os.scandir(root) as entries:
        return any(e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file() for e in entries)


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
