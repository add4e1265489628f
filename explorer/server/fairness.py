"""The server queue's rules (issue 37: one client with 200 tabs put everyone else 200th in
line, and the paper preset held the only slot for hours), as explorer.server.scheduler applies them.

- **Caps.** A job joins only if its session has fewer than ``per_session`` jobs running or
  waiting (settings.JOBS_PER_SESSION, 1: a lab run, a fine-tune and a "Why shortcuts work"
  computation count together), its client fewer than ``per_client`` (JOBS_PER_CLIENT), and
  fewer than ``queue_length`` jobs wait (QUEUE_LENGTH). Otherwise it is refused with a
  :class:`QueueRefused`, a sentence for the page, and nothing joins.
- **Round-robin.** A client is a key the caller passes (the app: the browser's address, else
  the session), so no browser is known here. A job joins the round being served, or the
  round after its client's last job still running or waiting, whichever is later; the lowest
  round starts first, first come first served within a round. So a client's k-th job waits
  behind every other client's first, however many tabs it opened, and a newcomer waits
  behind at most one job of each other client.
- **Time limit.** A running job may hold its slot for ``time_limit_s`` (JOB_SECONDS; None:
  no limit, the CLI); the job reads its ticket's ``over_time`` between steps and stops there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from explorer.settings import JOB_SECONDS, JOBS_PER_CLIENT, JOBS_PER_SESSION, QUEUE_LENGTH, LimitError
from explorer.words import spoken_duration


class QueueRefused(LimitError):
    """A job refused by the queue's rules, and nothing joined; the message says why."""


class SessionBusy(QueueRefused):
    """The session already has its jobs running or waiting (settings.JOBS_PER_SESSION)."""


class ClientBusy(QueueRefused):
    """The client (a browser's address) already has its jobs running or waiting (settings.JOBS_PER_CLIENT)."""


class QueueFull(QueueRefused):
    """settings.QUEUE_LENGTH jobs are waiting already."""


def _jobs(count: int) -> str:
    return "1 job" if count == 1 else f"{count:,} jobs"


@dataclass(frozen=True)
class QueueRules:
    """The caps and the time limit one scheduler applies."""

    queue_length: int
    per_session: int
    per_client: int
    time_limit_s: float | None  # None: no limit

    @classmethod
    def of(cls, queue_length: int | None = None, per_session: int | None = None, per_client: int | None = None,
           time_limit_s: float | None = None) -> QueueRules:
        """The rules given, the server's settings (explorer.settings) for those left None;
        ``time_limit_s=math.inf``: no limit."""
        limit = JOB_SECONDS.value() if time_limit_s is None else time_limit_s
        rules = cls(QUEUE_LENGTH.value() if queue_length is None else queue_length,
                    JOBS_PER_SESSION.value() if per_session is None else per_session,
                    JOBS_PER_CLIENT.value() if per_client is None else per_client,
                    None if limit == float("inf") else float(limit))
        if min(rules.queue_length, rules.per_session, rules.per_client) < 1 or (rules.time_limit_s or 1) <= 0:
            raise ValueError("queue_length, per_session, per_client and time_limit_s must be positive.")
        return rules

    def admit(self, live: list, waiting: int, session: str | None, client: str | None,
              next_place_s: Callable[[], float | None]) -> None:
        """Raise the :class:`QueueRefused` that a new job of ``session`` and ``client`` meets,
        if any: ``live`` are the tickets running or waiting, ``waiting`` how many wait, and
        ``next_place_s()`` the seconds until a place frees (for the "queue is full" message)."""
        if session is not None:
            mine = [t for t in live if t.session == session]
            if len(mine) >= self.per_session:
                raise SessionBusy(f"This session already has {_jobs(len(mine))} running or waiting "
                                  f"({', '.join(t.job_id for t in mine)}); the server allows {_jobs(self.per_session)} "
                                  f"per browser session ({JOBS_PER_SESSION.env}): stop it first.")
        key = client_key(session, client)
        if key is not None and sum(t.client == key for t in live) >= self.per_client:
            raise ClientBusy(f"Your browser's tabs already have {_jobs(self.per_client)} running or waiting, as many as "
                             f"the server allows one address ({JOBS_PER_CLIENT.env}): stop one first.")
        if waiting >= self.queue_length:
            wait = next_place_s()
            when = f"in about {spoken_duration(wait)}" if wait is not None else "in a few minutes"
            raise QueueFull(f"The queue is full ({waiting:,} waiting, at most {self.queue_length:,}: "
                            f"{QUEUE_LENGTH.env}); try again {when}. Nothing was started.")


def client_key(session: str | None, client: str | None, arrival: int | None = None) -> str | None:
    """Whose turn a job is: its client, else its session, else (with ``arrival``) itself alone."""
    if client:
        return client
    if session is not None:
        return f"session:{session}"
    return None if arrival is None else f"ticket:{arrival}"


def round_for(serving: int, theirs: Iterable[int]) -> int:
    """A new job's round: the one being served, or the one after its client's latest live job."""
    return max([serving] + [round_ + 1 for round_ in theirs])


def start_order(waiting: list) -> list:
    """The waiting tickets in the order they will start: by round, then by arrival."""
    return sorted(waiting, key=lambda ticket: (ticket.round, ticket.seq))
