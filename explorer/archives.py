"""A zip of class folders, uploaded by a user, unpacked safely into a folder data set.

The archive comes from a browser, so every entry is checked before a single byte is
written: names that climb out of the folder (``../x.jpg``, absolute paths, drive letters),
links, encrypted entries, absurd sizes (a "zip bomb" expands a few kilobytes into
gigabytes) and layouts that are not ``class/image.jpg`` are refused with a message that
says what to fix. Only image files are extracted; everything else is listed as ignored.
"""

from __future__ import annotations

import io
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from explorer.data import IMAGE_EXTENSIONS

MAX_ENTRIES = 100_000
MAX_TOTAL_BYTES = 2 * 1024**3  # uncompressed: 2 GB; CIFAR-10 as JPEGs is about 150 MB
MAX_RATIO = 200  # uncompressed / compressed per entry; JPEGs barely compress, bombs by ×1000s
_SKIPPED_PREFIXES = ("__MACOSX/",)  # macOS Finder adds resource forks to every zip it makes


class ArchiveError(ValueError):
    """An upload that is not a usable zip of class folders; nothing was written."""


@dataclass(frozen=True)
class UnpackedArchive:
    root: Path  # the folder data set: root/<class>/<image>
    classes: tuple[str, ...]
    images: int
    ignored: tuple[str, ...]  # entries that are not images (listed to the user)


def _is_hidden(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") for part in parts)


def _checked_name(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if "\\" in name or path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ArchiveError(f"The entry {name!r} points outside the archive's folder: the zip is refused "
                           "and nothing was extracted. Zip the class folders themselves.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"The entry {name!r} is a link; links are refused. Zip the image files themselves.")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"The entry {name!r} is encrypted: upload a zip without a password.")
    return path


def _listed_files(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every entry to consider, each name checked; refuses archives too big or too many to unpack."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ArchiveError(f"The zip has {len(infos):,} entries, more than the {MAX_ENTRIES:,} allowed.")
    files = []
    for info in infos:
        path = _checked_name(info)
        if info.is_dir() or info.filename.startswith(_SKIPPED_PREFIXES) or _is_hidden(path.parts):
            continue
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1024**2:
            raise ArchiveError(f"The entry {info.filename!r} expands {info.file_size // max(info.compress_size, 1):,}×: "
                               "the zip looks like a zip bomb and is refused.")
        files.append((info, path))
    total = sum(info.file_size for info, _ in files)
    if total > MAX_TOTAL_BYTES:
        raise ArchiveError(f"The zip expands to {total / 1024**3:.1f} GB, more than the "
                           f"{MAX_TOTAL_BYTES / 1024**3:.0f} GB allowed.")
    return files


def _class_layout(images: list[tuple[zipfile.ZipInfo, PurePosixPath]]) -> dict[str, tuple[str, ...]]:
    """entry name -> (class, file name), after checking the archive is one folder per class."""
    # Zipping a folder adds it as the top level ("flowers/rose/1.jpg"): look inside it.
    tops = {path.parts[0] for _, path in images}
    strip = 1 if len(tops) == 1 and all(len(path.parts) == 3 for _, path in images) else 0
    layout = {info.filename: path.parts[strip:] for info, path in images}
    for name, parts in layout.items():
        if len(parts) == 1:
            raise ArchiveError(f"{name!r} is not inside a class folder. Put the images in one folder per "
                               "class (cat/1.jpg, dog/2.jpg) and zip those folders.")
        if len(parts) > 2:
            raise ArchiveError(f"{name!r} is nested {len(parts) - 1} folders deep. Put the images directly "
                               "in one folder per class (cat/1.jpg, dog/2.jpg), without sub-folders.")
    classes = {parts[0] for parts in layout.values()}
    if len(classes) < 2:
        raise ArchiveError(f"The zip has a single class ({classes.pop()!r}); classification needs at least "
                           "two class folders.")
    return layout


def _extract(archive: zipfile.ZipFile, layout: dict[str, tuple[str, ...]], parent: Path) -> Path:
    """Write the images into a new folder under ``parent``; on any failure remove it whole."""
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="upload-", dir=parent)).resolve()
    try:
        for name, parts in layout.items():
            target = (root / Path(*parts)).resolve()
            if root not in target.parents:  # cannot happen after the checks above; never write outside
                raise ArchiveError(f"The entry {name!r} would be written outside the upload folder.")
            target.parent.mkdir(exist_ok=True)
            with archive.open(name) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
    except (OSError, zipfile.BadZipFile, ArchiveError, EOFError) as error:
        shutil.rmtree(root, ignore_errors=True)
        if isinstance(error, ArchiveError):
            raise
        raise ArchiveError(f"The zip could not be extracted ({error}); it may be damaged.") from error
    return root


def unpack_class_zip(data: bytes, parent: Path) -> UnpackedArchive:
    """Check ``data`` (a zip of ``class/image`` entries, optionally inside one top folder) and
    extract its images into a new folder under ``parent``. Raises :class:`ArchiveError`,
    having written nothing, when the archive is unusable."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"This is not a zip file ({error}). Upload a .zip of one folder per class.") from error
    with archive:
        files = _listed_files(archive)
        images = [(info, path) for info, path in files if path.suffix.lower() in IMAGE_EXTENSIONS]
        ignored = tuple(info.filename for info, path in files if path.suffix.lower() not in IMAGE_EXTENSIONS)
        if not images:
            raise ArchiveError("The zip holds no images (" + ", ".join(IMAGE_EXTENSIONS) + ")"
                               + (f"; it has {', '.join(ignored[:3])}" if ignored else "") + ".")
        layout = _class_layout(images)
        root = _extract(archive, layout, parent)
    classes = tuple(sorted({parts[0] for parts in layout.values()}))
    return UnpackedArchive(root, classes, len(images), ignored)
