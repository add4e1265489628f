"""The "Why shortcuts work" computations as background jobs (issue 37): on the page thread
they held it, and a core, for as long as they took, outside the server's queue."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence

from explorer.paper.inside.probes import progress_line
from explorer.server.jobs import BackgroundJob
from explorer.server.snapshots import ComputeSnapshot, JobState
from explorer.training.evaluate import eta_s

Progress = Callable[[float], None]  # progress(fraction done of one computation), 0.0 … 1.0
Compute = Callable[[Progress], object]  # compute(progress) -> its result


class _Stopped(Exception):
    """Raised from a computation's progress callback: Stop or the time limit ends it there."""


class ComputeJob(BackgroundJob):
    """Computations one after another in a worker thread, through the scheduler like a
    training run: the "Why shortcuts work" views, one computation per net, which on the page
    thread would hold it (and, unbounded, a core) for as long as they take.

    ``tasks`` are (name, compute) pairs; ``compute(progress)`` returns a result and calls
    ``progress(fraction)`` at its own boundaries (a batch of images, a lesion, a chunk of grid
    points). Stop and the time limit end the job at the next one: the callback raises, and the
    results computed before are kept. A ValueError (an InsideError: a net that cannot be used)
    becomes that name's message and the others go on. ``key`` says what was asked (the page
    compares it with what it shows)."""

    def __init__(self, what: str, tasks: Sequence[tuple[str, Compute]], *, key: Hashable = None,
                 kind: str | None = None):
        super().__init__(f"compute-{what}", key, "cpu", loader=None)
        self.what, self.key = what, key
        self.kind = kind or f"the {what} computation"
        self._tasks = list(tasks)
        self._names = tuple(name for name, _ in self._tasks)
        self._state = self._first_state = JobState.COMPUTING
        self._results: dict[str, object] = {}
        self._errors: dict[str, str] = {}
        self._current = 0.0
        self._line: str | None = None

    def snapshot(self) -> ComputeSnapshot:
        with self._lock:
            return ComputeSnapshot(state=self._state, error=self._error, what=self.what, names=self._names,
                                   results=dict(self._results), errors=dict(self._errors), current=self._current,
                                   line=self._line, queue=self._queue, limit=self._limit())

    def status_text(self) -> str:
        return self.snapshot().progress_text()

    def _work(self) -> None:

        started = time.perf_counter()
        for index, (name, compute) in enumerate(self._tasks):
            first: list[float] = []  # (time, fraction) of this computation's first report

            def progress(fraction: float, index=index, name=name, first=first) -> None:
                now = time.perf_counter()
                if not first:
                    first += [now, fraction]
                done = index + min(1.0, max(0.0, fraction))
                line = progress_line(self.what, name, index + 1, len(self._tasks), fraction, now - first[0], first[1])
                with self._lock:
                    self._current, self._line = done, line
                self._pace(eta_s(now - started, done, len(self._tasks)) if done >= 0.05 else None)
                if self._stop.is_set():
                    raise _Stopped

            if self._stop.is_set():
                break
            try:
                progress(0.0)
                result = compute(progress)
            except _Stopped:
                break
            except ValueError as error:  # this net cannot be used: say why, go on with the others
                with self._lock:
                    self._errors[name] = str(error) or type(error).__name__
            else:
                with self._lock:
                    self._results[name] = result
            with self._lock:
                self._current = index + 1.0
        with self._lock:
            done = len(self._results) + len(self._errors) == len(self._tasks)
            self._state = JobState.FINISHED if done else JobState.STOPPED
            self._line = None

    def _release(self) -> None:
        with self._lock:
            self._tasks = []  # the closures hold the nets and their images
