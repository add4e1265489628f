"""How long a queued job waits (explorer.server.scheduler), in seconds (explorer.words says them)."""

from __future__ import annotations

import heapq


def start_estimates(remaining_s: list[float | None], waiting: int, mean_run_s: float | None) -> list[float | None]:
    """Seconds until each of ``waiting`` queued jobs starts: a slot frees when its job ends
    (``remaining_s``: each slot's time left, 0 for a free one) and every queued job then
    holds it for ``mean_run_s``. None from the first start that depends on an unknown time."""
    if not remaining_s or any(r is None for r in remaining_s):
        return [None] * waiting
    free_at = sorted(max(0.0, r) for r in remaining_s)
    starts: list[float | None] = []
    for _ in range(waiting):
        start = heapq.heappop(free_at)
        starts.append(start)
        if mean_run_s is None:  # when this job's slot frees again is not known
            return starts + [None] * (waiting - len(starts))
        heapq.heappush(free_at, start + mean_run_s)
    return starts


def remaining_s(running: list, mean_run_s: float | None, now: float) -> list[float | None]:
    """Each running ticket's time left: its own estimate, else the mean run length less what it
    has run, and at most what the server's time limit leaves it (which alone bounds a job that
    has not estimated yet, issue 37). None where nothing is known."""
    remaining = []
    for ticket in running:
        own = ticket.eta_s
        if own is None and mean_run_s is not None:
            own = mean_run_s - (now - ticket.started_at)
        known = [s for s in (own, ticket.time_left_s) if s is not None]
        remaining.append(min(known) if known else None)
    return remaining


def announced(seconds: float | None) -> int | None:
    """A wait as it is re-announced to a waiting job: when it moves by 5 s."""
    return None if seconds is None else int(seconds // 5)
