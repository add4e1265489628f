"""Linux's /proc, read the one way the browser benchmarks need it (classroom_load.py and
lab_live_cost.py): a process's or thread's CPU seconds, nice value, name, memory and
children. Imported from beside them (``python benchmarks/x.py`` puts this folder on the path)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")

# Indices into stat_fields(): the fields after the name, as proc(5) numbers them minus 3.
_UTIME, _STIME, _CUTIME, _CSTIME, _NICE = 11, 12, 13, 14, 16


def read_stat(stat_path: Path) -> tuple[str, list[str]]:
    """A /proc/.../stat in one read: the command name (comm, which may hold spaces and
    brackets) and the fields after it ([0] is the state). Raises OSError when the process or
    thread has just ended."""
    text = stat_path.read_text()
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def stat_fields(stat_path: Path) -> list[str]:
    return read_stat(stat_path)[1]


def cpu_s(fields: list[str], *, reaped_children: bool = False) -> float:
    """User + system CPU seconds of ``stat_fields``; with ``reaped_children`` also those of
    its ended children it has waited for (a tab's renderer reaped by Chromium's zygote, an
    ended worker by the server), whose time would otherwise vanish with them."""
    used = int(fields[_UTIME]) + int(fields[_STIME])
    if reaped_children:
        used += int(fields[_CUTIME]) + int(fields[_CSTIME])
    return used / TICKS


def nice(fields: list[str]) -> int:
    return int(fields[_NICE])


def rss_mib_and_threads(pid: int) -> tuple[float, int]:
    """(RSS in MiB, threads) of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def children(pid: int) -> set[int]:
    """The direct child processes of every thread of ``pid``."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.update(int(child) for child in task.read_text().split())
    return found


def processes() -> list[Path]:
    """Every process's /proc folder (some may end before they are read)."""
    return [path for path in Path("/proc").iterdir() if path.name.isdigit()]
