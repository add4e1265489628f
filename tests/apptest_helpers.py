"""Shared test plumbing: open the app, switch to a page, fail on any exception; the best
shipped checkpoint, read from the manifest."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "explorer" / "app.py")


def open_page(page: str, query_params: dict[str, str] | None = None) -> AppTest:
    """Run the app, switch to ``page`` (a path relative to explorer/), opened with the link's
    ``query_params`` if given, and assert no exception."""
    at = AppTest.from_file(APP, default_timeout=120)  # a cold torch import outlasts the default 3 s
    at.run()
    at.switch_page(page)
    for key, value in (query_params or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def best_shipped_checkpoint(pretrained_dir: Path) -> str:
    """The manifest's checkpoint with the lowest validation error, computed here from the raw
    entries (not by the library's default-model rule, which the tests check against it)."""
    from explorer.store.checkpoints import read_manifest

    entries = read_manifest(pretrained_dir)
    return min(entries, key=lambda key: entries[key].val_error)
