"""Numbers in words for a projector: how a page, the CLI or a progress line says a duration.

A foundation module (explorer.settings' layer): the class server's queue, the "Why shortcuts
work" progress lines and the architecture page's estimates all say a time the same way."""

from __future__ import annotations


def spoken_duration(seconds: float) -> str:
    """A wait or a time left as a class reads it off a projector: "40 s", "12 min", "1 h 31 min"
    (a queue on a busy server can be an hour long: "4,226 s" is not read at a glance,
    "70 min" is)."""
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
