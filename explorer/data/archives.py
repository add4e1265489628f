"""A zip of class folders, uploaded by a user, unpacked safely into a folder data set.

The archive comes from a browser, so every entry is checked before a single byte is
written: names that climb out of the folder (``../x.jpg``, absolute paths, drive letters),
links, encrypted entries and layouts that are not ``class/image.jpg`` are refused with a
message that says what to fix. A "zip bomb" expands a few kilobytes into gigabytes, so the
budgets of :mod:`explorer.settings` are checked on the archive's directory first, for the
archive as a whole (no entry is exempt, however small: 300 entries of 1 MiB of zeros are a
339 KB zip that expands 900-fold):

- at most :data:`~explorer.settings.ZIP_ENTRIES` entries;
- at most :data:`~explorer.settings.ZIP_BYTES` uncompressed (and no more than the session may
  keep on disk, :data:`~explorer.settings.SESSION_DISK`);
- the uncompressed total at most :data:`~explorer.settings.ZIP_RATIO` times the zip's own size.

Then each image goes through the image gate (:func:`explorer.data.images.open_image`: format from
its content, pixel and decoded-byte caps) before it is written, so an EPS named ``.jpg`` or a
PNG declaring 169 megapixels is refused at upload, by name. Only image files are extracted;
everything else is listed as ignored. The sizes the directory declares are also enforced while
extracting (:func:`_copy_at_most`), so a lying header cannot write more.
"""

from __future__ import annotations

import io
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from explorer import settings
from explorer.data import IMAGE_EXTENSIONS
from explorer.data.images import ImageError, ImageLimits, open_image

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


@dataclass(frozen=True)
class ZipLimits:
    """The budgets one archive must fit, read once from :mod:`explorer.settings`."""

    entries: int
    total_bytes: int  # uncompressed; the smaller of ZIP_BYTES and SESSION_DISK
    ratio: int

    @classmethod
    def current(cls) -> ZipLimits:
        return cls(settings.ZIP_ENTRIES.value(), min(settings.ZIP_BYTES.bytes(), settings.SESSION_DISK.bytes()),
                   settings.ZIP_RATIO.value())


def _megabytes(n: float) -> str:
    return f"{n / 1024**2:,.1f} MB"


def _listed_files(archive: zipfile.ZipFile, archive_bytes: int,
                  caps: ZipLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every entry to consider, each name checked; refuses archives too big, too many or
    too compressed to unpack, judged over the whole archive from its directory."""
    infos = archive.infolist()
    if len(infos) > caps.entries:
        raise ArchiveError(f"The zip has {len(infos):,} entries, more than the {caps.entries:,} allowed "
                           f"({settings.ZIP_ENTRIES.env}).")
    declared = sum(info.file_size for info in infos)  # every entry, skipped ones too: all are read by zipfile
    if declared > caps.total_bytes:
        raise ArchiveError(f"The zip expands to {_megabytes(declared)}, more than the {_megabytes(caps.total_bytes)} "
                           f"a session may unpack ({settings.ZIP_BYTES.env}, {settings.SESSION_DISK.env}). "
                           "Upload fewer or smaller images.")
    if declared > caps.ratio * max(archive_bytes, 1):
        raise ArchiveError(f"The zip's {archive_bytes:,} bytes expand to {_megabytes(declared)}, "
                           f"{declared / max(archive_bytes, 1):,.0f} times its size; at most {caps.ratio}× is "
                           f"allowed ({settings.ZIP_RATIO.env}), since photos barely compress. The zip looks like a "
                           "zip bomb and is refused.")
    files = []
    for info in infos:
        path = _checked_name(info)
        if info.is_dir() or info.filename.startswith(_SKIPPED_PREFIXES) or _is_hidden(path.parts):
            continue
        files.append((info, path))
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


def _copy_at_most(source, limit: int) -> bytes:
    """Read ``source`` whole, but never more than ``limit`` bytes (``ArchiveError`` past it)."""
    data = source.read(limit + 1)
    if len(data) > limit:
        raise ArchiveError("An entry holds more bytes than the zip's directory declares; the zip is refused.")
    return data


def _extract(archive: zipfile.ZipFile, layout: dict[str, tuple[str, ...]], parent: Path) -> Path:
    """Check each image with the image gate and write it into a new folder under ``parent``;
    on any failure remove the folder whole."""
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="upload-", dir=parent)).resolve()
    caps = ImageLimits.current()
    try:
        for name, parts in layout.items():
            target = (root / Path(*parts)).resolve()
            if root not in target.parents:  # cannot happen after the checks above; never write outside
                raise ArchiveError(f"The entry {name!r} would be written outside the upload folder.")
            info = archive.getinfo(name)
            if info.file_size > caps.file_bytes:
                raise ArchiveError(f"The entry {name!r} is {_megabytes(info.file_size)}, larger than the "
                                   f"{_megabytes(caps.file_bytes)} allowed for one image ({settings.IMAGE_FILE.env}).")
            with archive.open(info) as source:
                data = _copy_at_most(source, info.file_size)
            # The header half of the gate (about 30 µs a CIFAR JPEG): the pixels are decoded when
            # the data set is loaded, through the same gate (explorer.data.decoder).
            with open_image(data, repr(name), caps, aspect=False):
                pass
            target.parent.mkdir(exist_ok=True)
            # A plain write, not files.atomic_write: the folder is new and private to this call
            # and is removed whole on any failure, and an fsync per file would make a
            # 50,000-image zip take minutes.
            target.write_bytes(data)
    except ImageError as error:
        shutil.rmtree(root, ignore_errors=True)
        raise ArchiveError(f"The entry {error} Nothing was extracted.") from error
    except (OSError, zipfile.BadZipFile, ArchiveError, EOFError) as error:
        shutil.rmtree(root, ignore_errors=True)
        if isinstance(error, ArchiveError):
            raise
        raise ArchiveError(f"The zip could not be extracted ({error}); it may be damaged.") from error
    return root


def unpack_class_zip(data: bytes, parent: Path, caps: ZipLimits | None = None) -> UnpackedArchive:
    """Check ``data`` (a zip of ``class/image`` entries, optionally inside one top folder) and
    extract its images into a new folder under ``parent``. Raises :class:`ArchiveError`,
    having written nothing, when the archive is unusable or over a budget (``caps``, by
    default :meth:`ZipLimits.current`)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"This is not a zip file ({error}). Upload a .zip of one folder per class.") from error
    with archive:
        files = _listed_files(archive, len(data), caps or ZipLimits.current())
        images = [(info, path) for info, path in files if path.suffix.lower() in IMAGE_EXTENSIONS]
        ignored = tuple(info.filename for info, path in files if path.suffix.lower() not in IMAGE_EXTENSIONS)
        if not images:
            raise ArchiveError("The zip holds no images (" + ", ".join(IMAGE_EXTENSIONS) + ")"
                               + (f"; it has {', '.join(ignored[:3])}" if ignored else "") + ".")
        layout = _class_layout(images)
        root = _extract(archive, layout, parent)
    classes = tuple(sorted({parts[0] for parts in layout.values()}))
    return UnpackedArchive(root, classes, len(images), ignored)
