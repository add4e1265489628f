"""A folder of precomputed results beside its ``manifest.json``: ``pretrained/inside/`` (Fig. 7,
branch ratios, lesions) and ``pretrained/landscapes/`` (loss surfaces) are both one.

The manifest holds one section of entries (what was computed, on which data, by which command)
and whatever else a person wrote there (a ``"note"``). Entries are added under the folder's
lock, so several ``--save-dir`` commands at once all keep theirs, and a file named by an entry
is read only if it is a plain file of the folder: a shipped manifest never leads a reader out of it.
"""

from __future__ import annotations

import json
from pathlib import Path

from explorer.files import atomic_write, locked

MANIFEST = "manifest.json"


def add_entry(folder: Path, section: str, key: str, entry: dict) -> None:
    """Put ``entry`` under ``key`` in the manifest's ``section``, keeping every other entry and key."""
    path = folder / MANIFEST
    with locked(path):
        raw = json.loads(path.read_text()) if path.is_file() else {}
        entries = {**raw.get(section, {}), key: entry}
        atomic_write(path, json.dumps({**raw, section: dict(sorted(entries.items()))}, indent=1) + "\n")


def entries(folder: Path, section: str) -> dict[str, dict]:
    """The manifest's ``section`` (empty when the folder has no manifest)."""
    path = folder / MANIFEST
    return json.loads(path.read_text())[section] if path.is_file() else {}


def entry_file(folder: Path, entry: dict) -> Path:
    """The file an entry names, refused (ValueError) unless it is a plain file name in ``folder``."""
    file = str(entry["file"])
    if Path(file).name != file or file in ("", ".", "..") or (folder / file).is_symlink():
        raise ValueError(f"its file {file[:80]!r} is not a plain file name in {folder}")
    return folder / file
