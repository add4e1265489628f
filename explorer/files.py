"""One way to write a file: whole or not at all, with the same permissions everywhere, and a
lock where several processes update the same file.

Every file the project writes (checkpoints, the manifest, run records, training states,
precomputed views, the data cache) goes through :func:`atomic_write`: the bytes go to a
temporary file in the same folder, are flushed to disk, get the mode of an ordinary file and
then replace the target in one ``os.replace``, so a reader sees the old file or the new one,
never half of one, and a crash leaves no partial file behind. (``NamedTemporaryFile`` alone
would leave the result private, 0600.)

A file that several processes read, change and write back (``pretrained/manifest.json``, when
a class fine-tunes and saves at the same moment) is updated inside :func:`locked`, an
inter-process ``fcntl.flock`` on a lock file beside it: without it, 16 simultaneous saves kept
between 5 and 16 of their entries.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

FILE_MODE = 0o644  # an ordinary file: the owner writes, everyone reads (what `open` gives under umask 022)

try:  # POSIX; on Windows the lock is a no-op (the class server runs on Linux or macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


Payload = bytes | str | Callable[[str], object]


def _write_temporary(folder: Path, name: str, data: Payload, mode: int) -> str:
    """A complete, flushed temporary file in ``folder`` holding ``data``, with ``mode``; its path."""
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        if callable(data):  # a library that writes to a path (safetensors): no copy of the bytes in memory
            os.close(descriptor)
            data(temporary)
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        else:
            payload = data.encode("utf-8") if isinstance(data, str) else data
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(temporary, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return temporary


def atomic_write(path: str | Path, data: Payload, *, mode: int = FILE_MODE) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, ``os.replace``) with ``mode``.

    ``data`` is bytes, a ``str`` (written as UTF-8), or a function that writes the file at the
    path it is given (``lambda tmp: save_file(tensors, tmp)``), so a large tensor is never
    copied into one more ``bytes``. The folder must exist; ``path`` naming a folder raises
    ``IsADirectoryError`` before anything is written. Returns ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name.")
    temporary = _write_temporary(path.parent, path.name, data, mode)
    try:
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def create_new(path: str | Path, data: Payload, *, mode: int = FILE_MODE) -> Path:
    """Like :func:`atomic_write`, but only if ``path`` does not exist yet: ``FileExistsError``
    otherwise, and the existing file is left alone. Two processes creating the same name at
    the same instant cannot both succeed (``os.link`` of the complete temporary file is the
    atomic test-and-create; ``O_EXCL`` would expose an empty file until it is written)."""
    path = Path(path)
    temporary = _write_temporary(path.parent, path.name, data, mode)
    try:
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: claim the name, then fill it at once
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
            os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    return path


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock for ``path`` (on ``path`` + ``.lock``) while the
    caller reads, changes and writes it back. Threads of one process are serialised too:
    each ``open`` gets its own lock on Linux and macOS."""
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    with open(lock_path, "a+b") as handle:
        with contextlib.suppress(OSError):
            os.chmod(lock_path, FILE_MODE)
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def free_name(name: str, taken) -> str:
    """``name`` if it is not in ``taken``, else the first free ``name-2``, ``name-3``, … (a
    save that must not replace another, offered a name that replaces nothing)."""
    number = 1
    while (candidate := name if number == 1 else f"{name}-{number}") in taken:
        number += 1
    return candidate
