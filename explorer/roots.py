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

DATA_ROOTS_ENV = "EXPLORER_DATA_ROOTS"
FOLDER_PREFIX = "folder:"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


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
    if not roots:
        return (f"this server allows no data folders (its administrator can name some in {DATA_ROOTS_ENV}); "
                "upload a zip of class folders instead")
    return (f"the data folders this server allows are {', '.join(str(r) for r in roots)} "
            f"(set by {DATA_ROOTS_ENV}); pick a folder inside one of them or upload a zip of class folders")


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


def check_folder_source(source: str, roots: Sequence[Path]) -> Path:
    """The resolved folder of ``source`` (``"folder:PATH"``) if it lies inside one of
    ``roots`` (from :func:`data_roots`), else a :class:`RootsError` naming the allowed roots.

    A relative path is taken from the server's working folder. Whether a folder outside the
    roots exists is never said, so the check cannot be used to probe the server's disk."""
    kind, colon, text = source.partition(":")
    if kind.strip().lower() != "folder" or not colon:  # spelled as explorer.data's loader reads it
        raise RootsError(f"{source[:60]!r} is not a folder source ('folder:PATH').")
    text = text.strip()
    if not text:
        raise RootsError(f"'folder:' needs a path; {_allowed(roots)}.")
    if "\x00" in text or ".." in PurePath(text).parts:
        raise RootsError(f"The folder {text!r} climbs with '..', which the app does not accept; "
                         f"write the folder's full path. {_allowed(roots).capitalize()}.")
    resolved = (Path.cwd() / text).resolve()  # an absolute text replaces the working folder
    roots = [Path(root).resolve() for root in roots]
    if not _inside(resolved, roots):
        raise RootsError(f"The folder {text!r} is outside the allowed data folders: {_allowed(roots)}.")
    if not resolved.is_dir():
        raise RootsError(f"The folder {text!r} does not exist (or is a file). It needs one sub-folder of "
                         "images per class (PATH/<class>/<image>.jpg).")
    link = _link_out_of_roots(resolved, roots)
    if link is not None:
        raise RootsError(f"The folder {text!r} holds a link ({link.relative_to(resolved)}) that points outside "
                         f"the allowed data folders: {_allowed(roots)}.")
    return resolved


def check_app_source(source: str, roots: Sequence[Path]) -> str:
    """A data source typed into the app, ready for :func:`explorer.data.load_data`: a folder
    source checked by :func:`check_folder_source` and rewritten to its resolved path; every
    other source (``synthetic``, ``cifar10``, a typo) unchanged, for the loader to judge."""
    if source.partition(":")[0].strip().lower() == "folder":
        return f"{FOLDER_PREFIX}{check_folder_source(source, roots)}"
    return source
