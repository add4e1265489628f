"""How many jobs the server runs at once, and how many torch threads each gets (the reasons
and measurements are in explorer.server.scheduler's docstring)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from explorer.settings import MAX_JOBS_ENV


def usable_cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's limit included)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_max_jobs(cores: int | None = None) -> int:
    """``(cores - 1) // 2``, at least 1: one core stays for the interactive pages, and each job
    gets two (a small net cannot keep more than about two cores busy in one convolution,
    explorer.training.recipe's ``EngineSwitches.model_threads``). 2 cores: 1 job; 8 cores: 3; 16 cores: 7."""
    cores = cores or usable_cores()
    return max(1, (cores - 1) // 2)


def max_jobs_from_env(environ: Mapping[str, str] = os.environ, cores: int | None = None) -> int:
    """``$EXPLORER_MAX_JOBS`` (a whole number ≥ 1), else :func:`default_max_jobs`."""
    text = environ.get(MAX_JOBS_ENV, "").strip()
    if not text:
        return default_max_jobs(cores)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{MAX_JOBS_ENV} must be a whole number of at least 1, got {text!r}.")
    return int(text)


def threads_per_job(running: int, cores: int) -> int:
    """torch intra-op threads for each of ``running`` jobs: the cores but one, shared out,
    at least 1 (on 2 cores: 1, whatever runs; on 16 cores with 3 jobs: 5)."""
    return max(1, (cores - 1) // max(1, running))
