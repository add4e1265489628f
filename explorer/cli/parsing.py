"""What every command shares: the user-facing error, the parser that reports in one line, flags
checked against the declared ranges of :mod:`explorer.settings`, JSON that is always valid, and
the plain-text table."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from explorer.settings import LimitError, Range


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in the CLI's one shape: ``error: …`` on one line of
    stderr and exit status 2 (argparse's own prints the usage first). ``--help`` is unchanged.
    Sub-commands' parsers are of this class too (``add_subparsers`` uses the parser's type)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message.rstrip('.')} (see {self.prog} --help)\n")


def ranged(limit: Range, what: str | None = None) -> Callable[[str], int | float]:
    """An argparse ``type=`` that parses a flag with ``limit``: ``--val-every 0`` is refused
    while parsing, with the range in the message, before anything loads."""

    def parse(text: str):
        try:
            return limit.parse(text, what)
        except LimitError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = limit.what  # what argparse would name in a message of its own
    return parse


def ranged_list(limit: Range, count: Range) -> Callable[[str], tuple]:
    """An argparse ``type=`` for comma-separated numbers (``--milestones 16000,24000``), each
    checked with ``limit``, at most ``count.high`` of them."""

    def parse(text: str) -> tuple:
        parts = [part for part in text.split(",") if part.strip()]
        try:
            count.check(len(parts))
            return tuple(limit.parse(part) for part in parts)
        except LimitError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = count.what
    return parse


def writable_file(path: Path, flag: str) -> Path:
    """``path`` if a file may be written there; CommandError if it names a folder or sits in
    something that is not one. Checked before a run, so a mistake costs no training."""
    if path.is_dir():
        raise CommandError(f"{flag} {path} is a folder; give a file name, e.g. {path / 'run.json'}.")
    return _under_a_folder(path, flag)


def _under_a_folder(path: Path, flag: str) -> Path:
    """``path`` if its nearest existing parent is a folder (a file there would make every write fail)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CommandError(f"{flag} {path}: {parent} is a file, not a folder.")
            break
    return path


def folder_option(path: Path, flag: str, *, must_exist: bool = False) -> Path:
    """``path`` if it is (or may become) a folder; CommandError if it, or a parent of it, is a file."""
    if path.exists() and not path.is_dir():
        raise CommandError(f"{flag} {path} is a file; give a folder.")
    if must_exist and not path.is_dir():
        raise CommandError(f"{flag} {path} does not exist; create it first (mkdir -p {path}) or give another folder.")
    return _under_a_folder(path, flag)


def finite(value):
    """``value`` with every float that is NaN or infinite replaced by None (JSON's null),
    through dicts, lists and tuples: JSON has no NaN or Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def print_json(value, **kwargs) -> None:
    """Print ``value`` as JSON that every parser reads: NaN and infinities become null
    (:func:`finite`), and ``allow_nan=False`` guarantees none is left. Every ``--json`` goes here."""
    print(json.dumps(finite(value), allow_nan=False, **kwargs))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """``rows`` under ``headers`` in left-aligned columns, a dashed rule under the headers."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def one_line(message: object) -> str:
    """A message as one line: errors from the core may hold newlines (several failures)."""
    return " ".join(str(message).split()) or "failed"


__all__ = ["CommandError", "Parser", "finite", "folder_option", "one_line", "print_json", "ranged", "ranged_list",
           "table", "writable_file"]
