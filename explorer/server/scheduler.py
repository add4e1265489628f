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

A waiting job knows its position and an estimate of its wait (from the running jobs'
reported time left and the mean length of past runs), can be cancelled, and leaves the queue
when its session is released.

Its rules (explorer.server.fairness, issue 37): one job per browser session, a queue of bounded
length that refuses more with a sentence (:class:`QueueRefused`), slots granted round-robin
over clients (a client's 200 tabs no longer put everyone else 200th in line), and a time
limit per job, which the job reads between its steps (:attr:`Ticket.over_time`).

Threads. ``torch.set_num_threads`` with PyTorch's OpenMP backend sizes the calling
thread's own OpenMP team (``torch.get_num_threads`` answers for the calling thread too) and
stores a process-wide count that every thread *new to torch* copies at its first op (a
Streamlit script run is a new thread). A running job therefore sets it in its own thread to
its share of the cores, ``(cores - 1) // running``: one core stays free for the
interactive work (classify, Grad-CAM, feature maps), which is never scheduled here and never
waits for a slot. A lone job on an otherwise quiet machine takes every core
(explorer.devices: other processes below 0.3 of a core; back to the share above 0.6): on
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
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from enum import StrEnum

import torch

from explorer.devices import OtherLoad
from explorer.server.fairness import (
    ClientBusy,
    QueueFull,
    QueueRefused,
    QueueRules,
    SessionBusy,
    client_key,
    round_for,
    start_order,
)
from explorer.server.slots import (
    MAX_JOBS_ENV,
    default_max_jobs,
    max_jobs_from_env,
    threads_per_job,
    usable_cores,
)
from explorer.server.waits import announced, remaining_s, start_estimates

__all__ = ["MAX_JOBS_ENV", "ClientBusy", "QueueFull", "QueueRefused", "Scheduler", "SessionBusy", "Ticket",
           "TicketState", "default_max_jobs", "max_jobs_from_env", "start_estimates", "threads_per_job",
           "usable_cores"]

TRAINING_NICE = 10  # added to a job thread's nice value: the CFS weight of nice 10 is ~1/10 of nice 0
_RUN_HISTORY = 20  # past run lengths kept for the wait estimate
QUIET_BELOW, BUSY_ABOVE = 0.3, 0.6  # cores other processes use: a lone job takes all cores / its share

PositionCallback = Callable[[int, "float | None"], None]  # (position, estimated wait in s or None)


class TicketState(StrEnum):
    """Where a ticket is: waiting, then running and done; or cancelled while it waited."""

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class Ticket:
    """One job's place with the :class:`Scheduler`: waiting, then running, then done or cancelled."""

    def __init__(self, scheduler: Scheduler, job_id: str, session: str | None, client: str, seq: int,
                 round_: int = 0):
        self.job_id, self.session = job_id, session
        self.client = client  # whose turn it is: round-robin over these
        self.seq, self.round = seq, round_  # arrival order; the round-robin's round it starts in
        self.state = TicketState.WAITING
        self.enqueued_at = time.monotonic()
        self.started_at: float | None = None
        self.eta_s: float | None = None  # the running job's own estimate of its time left
        self.completed = False  # set by a job that ran to its end: only those teach the wait estimate
        self._scheduler = scheduler
        self.threads_applied: int | None = None  # the share pace() last set; None: never paced
        self._nice_before: int | None = None
        self._all_cores = False  # a lone job on a quiet machine

    @property
    def position(self) -> int | None:
        """1 for the next job to start, 2 after it, ...; 0 while running; None once over."""
        return self._scheduler.position(self)

    @property
    def wait_estimate_s(self) -> float | None:
        """Estimated seconds until this waiting job starts (None when unknown or not waiting)."""
        return self._scheduler.wait_estimate_s(self)

    @property
    def time_left_s(self) -> float | None:
        """Seconds until this running job reaches the server's time limit (negative past it);
        None while not running or without a limit."""
        limit = self._scheduler.time_limit_s
        if self.state != TicketState.RUNNING or self.started_at is None or limit is None:
            return None
        return limit - (time.monotonic() - self.started_at)

    @property
    def over_time(self) -> bool:
        """Past the time limit: the job should stop at its next step boundary."""
        left = self.time_left_s
        return left is not None and left <= 0

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
        return self._scheduler.wait_for_slot(self, cancelled, on_position=on_position, poll_s=poll_s)

    def cancel(self) -> None:
        """Leave the queue (a running job stops through its own stop flag, not here)."""
        self._scheduler.cancel(self)

    def report(self, *, eta_s: float | None) -> None:
        """A running job's estimate of its time left, for the queue's wait estimates."""
        self.eta_s = eta_s

    def pace(self) -> int:
        """Call in the job's own thread between steps: follows its share of the threads
        (it changes as other jobs start and end). Returns the share."""
        threads = self.threads
        if threads != self.threads_applied:
            torch.set_num_threads(threads)
            self.threads_applied = threads
        return threads

    def done(self) -> None:
        """The job's work is over: its slot goes to the next waiting job."""
        self._scheduler.finish(self)

    def lower_priority(self, nice: int) -> None:
        """In the job's own thread: add ``nice`` to its OS priority (Linux only; see the module doc)."""
        if nice and sys.platform.startswith("linux"):
            tid = threading.get_native_id()
            self._nice_before = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, self._nice_before + nice))

    def restore_priority(self) -> None:
        """In the job's own thread, once its slot is given back: the priority it had before."""
        if self._nice_before is not None:
            with contextlib.suppress(PermissionError):  # raising priority back needs CAP_SYS_NICE
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice_before)


class Scheduler:
    """At most ``max_jobs`` jobs run at once; the others wait, served round-robin over clients.
    ``cores`` is what the thread share divides; ``nice`` is added to a running job's thread.
    ``queue_length``, ``per_session``, ``per_client`` and ``time_limit_s`` (seconds a job may
    hold a slot; ``math.inf``: no limit) default to the server's settings in explorer.settings."""

    def __init__(self, max_jobs: int | None = None, *, cores: int | None = None, nice: int = TRAINING_NICE,
                 other_load: OtherLoad | None = None, measure_load: bool = True, queue_length: int | None = None,
                 per_session: int | None = None, per_client: int | None = None,
                 time_limit_s: float | None = None):
        self.rules = QueueRules.of(queue_length, per_session, per_client, time_limit_s)
        self.time_limit_s, self.per_session = self.rules.time_limit_s, self.rules.per_session  # read by jobs, pages
        self.cores = cores or usable_cores()
        # what other processes use of the cores; None: unknown, every job keeps its share
        self.other_load = other_load or (OtherLoad() if measure_load else None)
        self.max_jobs = max_jobs if max_jobs is not None else max_jobs_from_env(cores=self.cores)
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {self.max_jobs}.")
        self.nice = nice
        self._changed = threading.Condition()
        self._waiting: list[Ticket] = []  # in arrival order; _order() is the order they start in
        self._order_cache: list[Ticket] | None = None
        self._running: list[Ticket] = []
        self._run_lengths: deque[float] = deque(maxlen=_RUN_HISTORY)
        self._arrivals = 0
        self._round = 0  # the round of the job granted last

    def enqueue(self, job_id: str, session: str | None = None, client: str | None = None) -> Ticket:
        """Join the queue; the ticket runs at once when a slot is free. ``client`` is whose turn
        it is in the round-robin (default: the session; without either, the ticket is its own
        client). Raises :class:`QueueRefused` (nothing joins) past a cap (see the module doc)."""
        with self._changed:
            self.rules.admit(self._running + self._waiting, len(self._waiting), session, client, self._next_place_s)
            self._arrivals += 1
            key = client_key(session, client, self._arrivals)
            theirs = [t.round for t in self._running + self._waiting if t.client == key]
            ticket = Ticket(self, job_id, session, key, self._arrivals, round_for(self._round, theirs))
            self._waiting.append(ticket)
            self._order_cache = None
            self._grant()
        return ticket

    @contextlib.contextmanager
    def slot(self, job_id: str, *, session: str | None = None, client: str | None = None,
             cancelled: Callable[[], bool] = lambda: False, on_position: PositionCallback | None = None,
             ticket: Ticket | None = None) -> Iterator[Ticket | None]:
        """Around a job's work, in the job's own thread: waits for a slot, then yields the
        running ticket with the thread share and priority applied; yields None if the wait
        was cancelled. The slot is given back however the block ends. ``ticket``: one
        :meth:`enqueue` gave the caller already (so that a refusal reached it before any
        thread started)."""
        ticket = ticket or self.enqueue(job_id, session, client)
        try:
            if not ticket.wait(cancelled, on_position=on_position):
                yield None
                return
            ticket.lower_priority(self.nice)
            ticket.pace()
            yield ticket
        finally:
            ticket.done()
            ticket.restore_priority()
            if ticket.threads_applied is not None and not self.running_jobs():
                torch.set_num_threads(threads_per_job(1, self.cores))  # the idle default: cores - 1

    def release_session(self, session: str) -> int:
        """A closed tab: its waiting jobs leave the queue (its running jobs stop through their
        own stop flags). Returns how many left."""
        with self._changed:
            mine = [t for t in self._waiting if t.session == session]
            for ticket in mine:
                self._cancel(ticket)
        return len(mine)

    def wait_for_slot(self, ticket: Ticket, cancelled: Callable[[], bool], *,
                      on_position: PositionCallback | None = None, poll_s: float = 0.2) -> bool:
        """:meth:`Ticket.wait`: block until ``ticket`` runs (True) or is cancelled (False)."""
        shown = None
        while True:
            with self._changed:
                if ticket.state == TicketState.WAITING and cancelled():
                    self._cancel(ticket)
                if ticket.state != TicketState.WAITING:
                    return ticket.state == TicketState.RUNNING
                now = (self.position(ticket), self.wait_estimate_s(ticket))
            if on_position is not None and (shown is None or now[0] != shown[0]
                                            or announced(now[1]) != announced(shown[1])):
                on_position(*now)
                shown = now
            with self._changed:
                if ticket.state == TicketState.WAITING:
                    self._changed.wait(poll_s)

    def cancel(self, ticket: Ticket) -> None:
        """``ticket`` leaves the queue if it still waits."""
        with self._changed:
            self._cancel(ticket)

    def finish(self, ticket: Ticket) -> None:
        """``ticket``'s work is over: its slot goes to the next waiting job (a waiting one leaves)."""
        with self._changed:
            self._finish(ticket)

    def position(self, ticket: Ticket) -> int | None:
        """:attr:`Ticket.position`: 1 for the next to start, ...; 0 while running; None once over."""
        with self._changed:
            if ticket.state == TicketState.RUNNING:
                return 0
            return self._order().index(ticket) + 1 if ticket.state == TicketState.WAITING else None

    def wait_estimate_s(self, ticket: Ticket) -> float | None:
        """:attr:`Ticket.wait_estimate_s`: seconds until the waiting ``ticket`` starts, if known."""
        with self._changed:
            if ticket.state != TicketState.WAITING:
                return None
            remaining = self._remaining() + [0.0] * (self.max_jobs - len(self._running))  # a free slot: now
            return start_estimates(remaining, self.position(ticket), self._mean_run_s())[-1]

    def running_jobs(self) -> list[str]:
        with self._changed:
            return [t.job_id for t in self._running]

    def waiting_jobs(self) -> list[str]:
        """The waiting jobs in the order they will start."""
        with self._changed:
            return [t.job_id for t in self._order()]

    def threads_per_running_job(self) -> int:
        with self._changed:
            return threads_per_job(len(self._running), self.cores)

    def running_count(self) -> int:
        with self._changed:
            return len(self._running)

    # Below: called with self._changed held.

    def _next_place_s(self) -> float | None:
        """Seconds until a running job ends and a waiting one leaves the queue for its slot: its
        own estimate, else the mean run length, and never past the time limit."""
        ends = [left for left in self._remaining() if left is not None]
        return max(0.0, min(ends)) if ends else None

    def _mean_run_s(self) -> float | None:
        return sum(self._run_lengths) / len(self._run_lengths) if self._run_lengths else None

    def _remaining(self) -> list[float | None]:
        return remaining_s(self._running, self._mean_run_s(), time.monotonic())

    def _order(self) -> list[Ticket]:
        if self._order_cache is None:  # the waiting tickets in the order they start (explorer.server.fairness)
            self._order_cache = start_order(self._waiting)
        return self._order_cache

    def _grant(self) -> None:
        while self._waiting and len(self._running) < self.max_jobs:
            ticket = self._order()[0]
            self._waiting.remove(ticket)
            self._round = max(self._round, ticket.round)
            ticket.state, ticket.started_at = TicketState.RUNNING, time.monotonic()
            self._running.append(ticket)
            self._order_cache = None
        self._changed.notify_all()

    def _cancel(self, ticket: Ticket) -> None:
        if ticket.state == TicketState.WAITING:
            self._waiting.remove(ticket)
            self._order_cache = None
            ticket.state = TicketState.CANCELLED
            self._changed.notify_all()

    def _finish(self, ticket: Ticket) -> None:
        if ticket.state == TicketState.RUNNING:
            self._running.remove(ticket)
            if ticket.completed:  # a run stopped after 5 s says nothing about how long runs take
                self._run_lengths.append(time.monotonic() - ticket.started_at)
            ticket.state = TicketState.DONE
            self._grant()
        else:
            self._cancel(ticket)
