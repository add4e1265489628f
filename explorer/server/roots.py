"""Which folders the app may read data from: an allow-list of data roots.

On a shared server, a free-text ``folder:PATH`` would let any student train on any image
folder the server can read, and look at it through the random-erasing preview. So the app
(not the CLI, which runs as its user on their own machine) accepts a folder source only
inside an allowed root:

- ``$EXPLORER_DATA_ROOTS``: folders separated by ``os.pathsep`` (``:`` on Linux and macOS);
  when it is unset, the project's ``../shared/data`` if it exists;
- and always the session's own upload folders (an unpacked zip lives there).

:func:`check_folder_source` resolves symbolic links before comparing, refuses any ``..`` in
the path, and refuses a folder that holds a link pointing out of the roots (the folder
scanner follows linked class folders and linked images).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePath

from explorer.data import DataSource, SourceKind, source_kind
from explorer.settings import DATA_ROOTS_ENV, SHARED_DATA

# What Linux and macOS allow (limits.h NAME_MAX and PATH_MAX); longer fails in os.stat.
NAME_MAX, PATH_MAX = 255, 4096


class RootsError(ValueError):
    """A folder source the app does not accept; the message says which folders it does."""


def data_roots(environ: Mapping[str, str] = os.environ, uploads: Iterable[Path | str] = ()) -> tuple[Path, ...]:
    """The allowed roots, resolved, each once: ``$EXPLORER_DATA_ROOTS`` (or the project's
    ``../shared/data`` when the variable is unset) and then ``uploads``, the session's own
    upload folders. Folders that do not exist are left out."""
    configured = environ.get(DATA_ROOTS_ENV)
    if configured is None:
        named = [SHARED_DATA]
    else:
        named = [Path(part) for part in configured.split(os.pathsep) if part.strip()]
    roots: list[Path] = []
    for folder in [*named, *(Path(u) for u in uploads)]:
        resolved = Path(folder).expanduser().resolve()
        if resolved.is_dir() and resolved not in roots:
            roots.append(resolved)
    return tuple(roots)


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _allowed(roots: Sequence[Path]) -> str:
    """The allowed folders in words. ``roots`` are those a user could have named (never the
    session's own upload folder, which the app made), said to be set by the variable only
    when it is set: unset, the root is the project's shared data folder (issue 38)."""
    if not roots:
        return (f"this server allows no data folders (its administrator can name some in {DATA_ROOTS_ENV}); "
                "upload a zip of class folders instead")
    origin = (f"set by {DATA_ROOTS_ENV}" if DATA_ROOTS_ENV in os.environ else
              f"the project's shared data; {DATA_ROOTS_ENV} can name others")
    return (f"the data folders this server allows are {', '.join(str(r) for r in roots)} "
            f"({origin}); pick a folder inside one of them or upload a zip of class folders")


def _named(roots: Sequence[Path], uploads: Iterable[Path | str]) -> list[Path]:
    """``roots`` without the session's upload folders: what a message may list. (Only the
    app's own folders are resolved here, never the typed text: _check_spelling asks no disk.)"""
    made = {Path(u).expanduser().resolve() for u in uploads}
    return [root for root in roots if not made or Path(root).resolve() not in made]


def _link_out_of_roots(folder: Path, roots: Sequence[Path]) -> Path | None:
    """The first link under ``folder`` (class folders and images, recursively, as the folder
    scanner walks them) whose target is outside every root; None if there is none."""
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    if not _inside(Path(entry.path).resolve(), roots):
                        return Path(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
    return None


def _capitalised(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]  # str.capitalize would lower-case the paths and the variable


def _check_spelling(text: str, roots: Sequence[Path]) -> None:
    """Refuse, from the text alone (the disk is not asked, so nothing is revealed about it),
    a path no folder can have: a NUL character, a part longer than the file system allows
    (``os.stat`` would raise ``OSError: File name too long``), or a ``..`` climb."""
    if "\x00" in text:
        raise RootsError("The folder path holds a NUL character (\\x00), which no file or folder name can "
                         f"contain; type the path again. {_capitalised(_allowed(roots))}.")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise RootsError("The folder path holds characters that no file or folder name on this server can "
                         "contain; type the path again.") from None
    parts = PurePath(text).parts
    if ".." in parts:
        raise RootsError(f"The folder {text!r} climbs with '..', which the app does not accept; "
                         f"write the folder's full path. {_capitalised(_allowed(roots))}.")
    too_long = next((part for part in parts if len(os.fsencode(part)) > NAME_MAX), None)
    if too_long is not None:
        raise RootsError(f"The folder path has a part of {len(os.fsencode(too_long)):,} bytes "
                         f"({too_long[:40]!r}…); a file or folder name is at most {NAME_MAX} bytes. "
                         "Check the path.")
    if len(os.fsencode(text)) > PATH_MAX:
        raise RootsError(f"The folder path is {len(os.fsencode(text)):,} bytes long; a path is at most "
                         f"{PATH_MAX:,}. Check the path.")


def check_folder_source(source: str, roots: Sequence[Path], uploads: Iterable[Path | str] = ()) -> Path:
    """The resolved folder of ``source`` (``"folder:PATH"``) if it lies inside one of
    ``roots`` (from :func:`data_roots`), else a :class:`RootsError` naming the allowed roots
    (but not ``uploads``, the session's own upload folders among them).

    A relative path is taken from the server's working folder. Whether a folder outside the
    roots exists is never said, so the check cannot be used to probe the server's disk."""
    if source_kind(source) is not SourceKind.FOLDER:  # read as explorer.data's loader reads it
        raise RootsError(f"{source[:60]!r} is not a folder source ('folder:PATH').")
    text = DataSource.parse(source).path
    named = _named(roots, uploads)
    if not text:
        raise RootsError(f"'folder:' needs a path; {_allowed(named)}.")
    _check_spelling(text, named)
    try:
        resolved = (Path.cwd() / text).resolve()  # an absolute text replaces the working folder
        roots = [Path(root).resolve() for root in roots]
        if not _inside(resolved, roots):
            raise RootsError(f"The folder {text!r} is outside the allowed data folders: {_allowed(named)}.")
        if not resolved.is_dir():
            raise RootsError(f"The folder {text!r} does not exist (or is a file). It needs one sub-folder of "
                             "images per class (PATH/<class>/<image>.jpg).")
        link = _link_out_of_roots(resolved, roots)
    except OSError as error:  # inside a root only: an unreadable sub-folder, a name the disk refuses
        raise RootsError(f"The folder {text!r} cannot be read ({error.strerror or error}). "
                         "Check its permissions, or pick another folder.") from error
    if link is not None:
        raise RootsError(f"The folder {text!r} holds a link ({link.relative_to(resolved)}) that points outside "
                         f"the allowed data folders: {_allowed(named)}.")
    return resolved


def check_app_source(source: str, roots: Sequence[Path], uploads: Iterable[Path | str] = ()) -> str:
    """A data source typed into the app, ready for :func:`explorer.data.load_data`: a folder
    source checked by :func:`check_folder_source` and rewritten to its resolved path; every
    other source (``synthetic``, ``cifar10``, a typo) unchanged, for the loader to judge."""
    if source_kind(source) is SourceKind.FOLDER:
        return str(DataSource.of_folder(check_folder_source(source, roots, uploads)))
    return source
