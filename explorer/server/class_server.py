"""What one server process shares between the browser sessions of a class.

One :class:`~explorer.server.scheduler.Scheduler` (the training slots and their queue, issue 16)
and one :class:`~explorer.server.sessions.SessionRegistry` (each tab's jobs and uploads), whose
sessions' waiting jobs leave that queue when their tab closes. The app makes one
:class:`ClassServer` per process (explorer.ui.job_panel, through ``st.cache_resource``); the CLI
needs none, and a test builds its own."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.server.scheduler import Scheduler
from explorer.server.sessions import SessionRegistry


@dataclass(frozen=True)
class ClassServer:
    scheduler: Scheduler
    sessions: SessionRegistry

    @classmethod
    def start(cls, scheduler: Scheduler | None = None) -> ClassServer:
        """A server with ``scheduler`` (default: one under the server's settings, explorer.settings)."""
        scheduler = scheduler or Scheduler()
        return cls(scheduler, SessionRegistry(scheduler))

    def close(self) -> None:
        """Release every session now: their jobs stop, their uploads go (a server shutting down)."""
        self.sessions.release_all()
