"""How busy other processes keep this machine's cores, for the scheduler's thread share.

On a laptop the browser showing the lab shares the two cores with the server. A training job
with a team of two torch threads runs about twice as fast as with one while nothing else
runs, but when another process takes a core, OpenMP's second thread spin-waits for it and
the job crawls (benchmarks/scheduler_threads.py: 0.2× at load 12). So a lone job takes every
core only while the others are quiet, measured here from Linux's ``/proc/stat`` (all cores'
busy time) less this process's own CPU time. Elsewhere the answer is unknown (None).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_s() -> float | None:
    """CPU seconds all cores have been busy since boot (None without /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    return (user + nice + system + irq + softirq + steal) / _TICKS


def process_busy_s() -> float:
    """CPU seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


class OtherLoad:
    """Cores other processes kept busy over the last ``window_s`` seconds or more: ``cores()``
    updates at most once a window and returns the latest reading (None until one exists)."""

    def __init__(self, window_s: float = 3.0, *, clock: Callable[[], float] = time.monotonic,
                 machine: Callable[[], float | None] = machine_busy_s,
                 process: Callable[[], float] = process_busy_s):
        self.window_s = window_s
        self._clock, self._machine, self._process = clock, machine, process
        self._last: tuple[float, float, float] | None = None
        self._cores: float | None = None

    def cores(self) -> float | None:
        now = self._clock()
        if self._last is not None and now - self._last[0] < self.window_s:
            return self._cores  # called between training steps: read /proc only once a window
        machine = self._machine()
        if machine is None:
            return None
        if self._last is None:
            self._last = (now, machine, self._process())
        else:
            then, machine_then, process_then = self._last
            process = self._process()
            self._cores = max(0.0, (machine - machine_then) - (process - process_then)) / (now - then)
            self._last = (now, machine, process)
        return self._cores
