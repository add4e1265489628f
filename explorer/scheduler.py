"""A server-wide limit on heavy work: at most a few training or fine-tuning jobs at once.

One server often serves a whole class. Without a limit, every session that presses Start
gets its own training thread; on two cores thirty of them would each crawl and the pages
would stop answering. So a job asks the :class:`Scheduler` for a slot around its work:

    with scheduler.slot("lab-run", session=session_id, cancelled=stop.is_set,
                        on_position=show) as ticket:
        if ticket is None:       # stopped (or its tab closed) while it waited
            return
        for step in training.steps(stop):
            ticket.pace()        # between steps: follow the current thread share
            ticket.report(eta_s=...)

Waiting jobs queue first in, first out; a waiting job knows its position and an estimate
of its wait (from the running jobs' reported time left and the mean length of past runs),
can be cancelled, and leaves the queue when its session is released.

Threads. ``torch.set_num_threads`` with PyTorch's OpenMP backend sizes the calling
thread's own OpenMP team (``torch.get_num_threads`` answers for the calling thread too) and
stores a process-wide count that every thread *new to torch* copies at its first op (a
Streamlit script run is a new thread). A running job therefore sets it in its own thread to
its share of the cores, ``(cores - 1) // running``: one core stays free for the
interactive work (classify, Grad-CAM, feature maps), which is never scheduled here and never
waits for a slot. A lone job on an otherwise quiet machine takes every core
(explorer.cpu_load: other processes below 0.3 of a core; back to the share above 0.6): on
the 2-core laptop that is the difference between 6.3 and ~12 class-demo steps per second,
and its lower priority still lets an interactive request take a core first. The job's thread also lowers its own OS priority (``nice``, Linux only,
inherited by the threads it starts), so when an interactive request and a training step want
the same core the request wins. Measured (benchmarks/scheduler_threads.py, 2 cores, other
processes keeping the load near 12): ResNet-20 alone trained 0.2× as fast with a team of 2
threads as with the share's 1 (OpenMP's worker spin-waits for a core someone else holds).
benchmarks/classify_latency.py: classify p95 with the demo training in a slot stayed within
1.6× of idle.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

import torch

from explorer.cpu_load import OtherLoad

MAX_JOBS_ENV = "EXPLORER_MAX_JOBS"
TRAINING_NICE = 10  # added to a job thread's nice value: the CFS weight of nice 10 is ~1/10 of nice 0
_RUN_HISTORY = 20  # past run lengths kept for the wait estimate
QUIET_BELOW, BUSY_ABOVE = 0.3, 0.6  # cores other processes use: a lone job takes all cores / its share

PositionCallback = Callable[[int, "float | None"], None]  # (position, estimated wait in s or None)


def usable_cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's limit included)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_max_jobs(cores: int | None = None) -> int:
    """``(cores - 1) // 2``, at least 1: one core stays for the interactive pages, and each job
    gets two (a small net cannot keep more than about two cores busy in one convolution,
    train_config.py's ``model_threads``). 2 cores: 1 job; 8 cores: 3; 16 cores: 7."""
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


class Ticket:
    """One job's place with the :class:`Scheduler`: waiting, then running, then done or cancelled."""

    def __init__(self, scheduler: Scheduler, job_id: str, session: str | None):
        self.job_id, self.session = job_id, session
        self.state = "waiting"  # then "running" and "done", or "cancelled"
        self.enqueued_at = time.monotonic()
        self.started_at: float | None = None
        self.eta_s: float | None = None  # the running job's own estimate of its time left
        self.completed = False  # set by a job that ran to its end: only those teach the wait estimate
        self._scheduler = scheduler
        self._threads_applied: int | None = None
        self._nice_before: int | None = None
        self._all_cores = False  # a lone job on a quiet machine

    @property
    def position(self) -> int | None:
        """1 for the next job to start, 2 after it, ...; 0 while running; None once over."""
        return self._scheduler._position(self)

    @property
    def wait_estimate_s(self) -> float | None:
        """Estimated seconds until this waiting job starts (None when unknown or not waiting)."""
        return self._scheduler._estimate(self)

    @property
    def threads(self) -> int:
        """This running job's current share of torch threads."""
        share = self._scheduler.threads_per_running_job()
        if self._scheduler.running_count() != 1:
            return share
        others = self._scheduler.other_load.cores() if self._scheduler.other_load is not None else None
        if others is not None:  # hysteresis: the job's own team size moves the reading a little
            self._all_cores = others < (BUSY_ABOVE if self._all_cores else QUIET_BELOW)
        return self._scheduler.cores if self._all_cores and others is not None else share

    def wait(self, cancelled: Callable[[], bool] = lambda: False, *, on_position: PositionCallback | None = None,
             poll_s: float = 0.2) -> bool:
        """Block until this job may run (True) or is cancelled (False): by :meth:`cancel`, its
        session's release, or ``cancelled()`` turning true (checked every ``poll_s``).
        ``on_position(position, estimate)`` is called whenever either changes, outside the lock."""
        shown = None
        while True:
            with self._scheduler._changed:
                if self.state == "waiting" and cancelled():
                    self._scheduler._cancel(self)
                if self.state != "waiting":
                    return self.state == "running"
                now = (self._scheduler._position(self), self._scheduler._estimate(self))
            if on_position is not None and (shown is None or now[0] != shown[0]
                                            or _rounded(now[1]) != _rounded(shown[1])):
                on_position(*now)
                shown = now
            with self._scheduler._changed:
                if self.state == "waiting":
                    self._scheduler._changed.wait(poll_s)

    def cancel(self) -> None:
        """Leave the queue (a running job stops through its own stop flag, not here)."""
        with self._scheduler._changed:
            self._scheduler._cancel(self)

    def report(self, *, eta_s: float | None) -> None:
        """A running job's estimate of its time left, for the queue's wait estimates."""
        self.eta_s = eta_s

    def pace(self) -> int:
        """Call in the job's own thread between steps: follows its share of the threads
        (it changes as other jobs start and end). Returns the share."""
        threads = self.threads
        if threads != self._threads_applied:
            torch.set_num_threads(threads)
            self._threads_applied = threads
        return threads

    def done(self) -> None:
        """The job's work is over: its slot goes to the next waiting job."""
        with self._scheduler._changed:
            self._scheduler._finish(self)

    def _lower_priority(self, nice: int) -> None:
        if nice and sys.platform.startswith("linux"):
            tid = threading.get_native_id()
            self._nice_before = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, self._nice_before + nice))

    def _restore_priority(self) -> None:
        if self._nice_before is not None:
            with contextlib.suppress(PermissionError):  # raising priority back needs CAP_SYS_NICE
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice_before)


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


def _rounded(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds // 5)  # re-announce when it moves by 5 s


class Scheduler:
    """At most ``max_jobs`` jobs run at once; the others wait first in, first out.
    ``cores`` is what the thread share divides; ``nice`` is added to a running job's thread."""

    def __init__(self, max_jobs: int | None = None, *, cores: int | None = None, nice: int = TRAINING_NICE,
                 other_load: OtherLoad | None = None, measure_load: bool = True):
        self.cores = cores or usable_cores()
        # what other processes use of the cores; None: unknown, every job keeps its share
        self.other_load = other_load or (OtherLoad() if measure_load else None)
        self.max_jobs = max_jobs if max_jobs is not None else max_jobs_from_env(cores=self.cores)
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {self.max_jobs}.")
        self.nice = nice
        self._changed = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._running: list[Ticket] = []
        self._run_lengths: deque[float] = deque(maxlen=_RUN_HISTORY)

    def enqueue(self, job_id: str, session: str | None = None) -> Ticket:
        """Join the queue; the ticket runs at once when a slot is free."""
        ticket = Ticket(self, job_id, session)
        with self._changed:
            self._waiting.append(ticket)
            self._grant()
        return ticket

    @contextlib.contextmanager
    def slot(self, job_id: str, *, session: str | None = None, cancelled: Callable[[], bool] = lambda: False,
             on_position: PositionCallback | None = None) -> Iterator[Ticket | None]:
        """Around a job's work, in the job's own thread: waits for a slot, then yields the
        running ticket with the thread share and priority applied; yields None if the wait
        was cancelled. The slot is given back however the block ends."""
        ticket = self.enqueue(job_id, session)
        try:
            if not ticket.wait(cancelled, on_position=on_position):
                yield None
                return
            ticket._lower_priority(self.nice)
            ticket.pace()
            yield ticket
        finally:
            ticket.done()
            ticket._restore_priority()
            if ticket._threads_applied is not None and not self.running_jobs():
                torch.set_num_threads(threads_per_job(1, self.cores))  # the idle default: cores - 1

    def release_session(self, session: str) -> int:
        """A closed tab: its waiting jobs leave the queue (its running jobs stop through their
        own stop flags). Returns how many left."""
        with self._changed:
            mine = [t for t in self._waiting if t.session == session]
            for ticket in mine:
                self._cancel(ticket)
        return len(mine)

    def running_jobs(self) -> list[str]:
        with self._changed:
            return [t.job_id for t in self._running]

    def waiting_jobs(self) -> list[str]:
        with self._changed:
            return [t.job_id for t in self._waiting]

    def threads_per_running_job(self) -> int:
        with self._changed:
            return threads_per_job(len(self._running), self.cores)

    def running_count(self) -> int:
        with self._changed:
            return len(self._running)

    # Below: called with self._changed held.

    def _grant(self) -> None:
        while self._waiting and len(self._running) < self.max_jobs:
            ticket = self._waiting.popleft()
            ticket.state, ticket.started_at = "running", time.monotonic()
            self._running.append(ticket)
        self._changed.notify_all()

    def _cancel(self, ticket: Ticket) -> None:
        if ticket.state == "waiting":
            self._waiting.remove(ticket)
            ticket.state = "cancelled"
            self._changed.notify_all()

    def _finish(self, ticket: Ticket) -> None:
        if ticket.state == "running":
            self._running.remove(ticket)
            if ticket.completed:  # a run stopped after 5 s says nothing about how long runs take
                self._run_lengths.append(time.monotonic() - ticket.started_at)
            ticket.state = "done"
            self._grant()
        else:
            self._cancel(ticket)

    def _position(self, ticket: Ticket) -> int | None:
        with self._changed:
            if ticket.state == "running":
                return 0
            return self._waiting.index(ticket) + 1 if ticket.state == "waiting" else None

    def _estimate(self, ticket: Ticket) -> float | None:
        with self._changed:
            if ticket.state != "waiting":
                return None
            mean = sum(self._run_lengths) / len(self._run_lengths) if self._run_lengths else None
            now = time.monotonic()
            remaining = [t.eta_s if t.eta_s is not None else (None if mean is None else mean - (now - t.started_at))
                         for t in self._running]
            free_slots = self.max_jobs - len(self._running)
            remaining += [0.0] * free_slots
            position = self._waiting.index(ticket) + 1
            return start_estimates(remaining, position, mean)[-1]


_server_scheduler: Scheduler | None = None
_server_lock = threading.Lock()


def server_scheduler() -> Scheduler:
    """The one scheduler of this server process (``$EXPLORER_MAX_JOBS`` read on first use)."""
    global _server_scheduler
    with _server_lock:
        if _server_scheduler is None:
            _server_scheduler = Scheduler()
        return _server_scheduler
