"""The ``"folder:PATH"`` source: any ImageFolder tree ``PATH/<class>/<image>``.

Loading a folder chains the three folder modules: the scanner (:mod:`~explorer.data.scanner`)
lists the files; their list keys the disk cache (:mod:`~explorer.data.cache`); on a miss the
decoder pool (:mod:`~explorer.data.decoder`) decodes them and the result is cached. Like every
source it returns uint8 images, int64 labels and class names for
:func:`~explorer.data.loading.load_data` to split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from explorer.data.cache import Decoded, cache_key, cache_slot, read_cache, write_cache
from explorer.data.dataset import DataError, ProgressCallback, report_progress
from explorer.data.decoder import decode_all
from explorer.data.scanner import IMAGE_EXTENSIONS, ImageFile, has_loose_images, scan_folder


def check_folder(argument: str) -> Path:
    """The absolute path named after ``"folder:"``, or a :class:`DataError` saying what is wrong."""
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


def load_folder(
    root: Path, image_size: int, cache_folder: Path, progress: ProgressCallback | None
) -> Decoded:
    """Images, labels and class names of the tree at ``root``, from the cache when it is current."""
    classes, files = scan_folder(root)
    _check_found(root, classes, files)

    key = cache_key(root, image_size, files)
    cache_file = cache_slot(cache_folder, root, image_size)
    cached = read_cache(cache_file, key, len(files), image_size)
    if cached is not None:
        report_progress(progress, len(files), len(files))
        return cached

    class_index = {name: i for i, name in enumerate(classes)}
    labels = torch.tensor([class_index[f.relative.split("/", 1)[0]] for f in files], dtype=torch.int64)
    images = decode_all(root, [f.relative for f in files], image_size, progress)
    write_cache(cache_file, key, images, labels, classes, root)
    return images, labels, classes


def _check_found(root: Path, classes: tuple[str, ...], files: list[ImageFile]) -> None:
    """A :class:`DataError` unless the scan found images of at least two classes."""
    if not files:
        hint = " The images lie directly in the folder: move them into one sub-folder per class."
        hint = hint if has_loose_images(root) else ""
        raise DataError(
            f"No images found in {root}. Expected one sub-folder per class with "
            f"{', '.join(IMAGE_EXTENSIONS)} files inside (PATH/<class>/<image>.jpg).{hint}"
        )
    if len(classes) < 2:
        raise DataError(
            f"Classification needs at least two classes, found only {classes[0]!r} in {root}. "
            f"Add a sub-folder of images for each other class."
        )
