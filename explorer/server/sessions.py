"""What one browser session owns on the server, and letting go of it when its tab closes.

A session owns its background jobs (a lab run, a fine-tuning run) and its upload folder
(its unpacked zip, one at a time: :meth:`SessionResources.emptied_upload_dir`).
:meth:`SessionResources.release` stops every job, takes its waiting jobs out of the
scheduler's queue, and, once the jobs have ended, deletes the upload folder *and*
the decoded copies of those uploads in the data cache (explorer.data.cache keeps a decoded
folder under ``cache_dir/"folders"``; without this, a student's images would outlive their
session on the server's disk).

When. Streamlit 1.67 calls a session-scoped resource's ``on_release`` the moment the tab's
websocket drops, although it keeps the session itself for ``server.disconnectedSessionTTL``
seconds in case the tab reconnects (measured with benchmarks/classroom_load.py: a job was
gone 2.6 s after its tab closed, with a TTL of 40 s). A Wi-Fi blip must not stop a student's
run or delete their uploads, so the :class:`SessionRegistry` keeps each session's resources
by Streamlit's session id: a dropped session is released only when it has stayed away for
the TTL, and a tab that comes back within it finds its run still going.

``on_release`` runs on the server's event loop, so nothing here blocks it: the waiting and
deleting happen in short-lived threads.

Closing tabs also log noise: with Starlette 1.10, Streamlit 1.67's websocket endpoint, reading
from a socket that is already closing, calls ``close()`` a second time and uvicorn logs the
second ``WebSocketDisconnected`` as a 50-line "Exception in ASGI application" (two of them when
benchmarks/classroom_load.py closed 10 tabs). The session is gone either way;
:func:`quiet_closed_tab_tracebacks` turns exactly that record into one line, so the server log
keeps showing real errors.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Protocol

from safetensors import safe_open

from explorer.data import default_cache_dir
from explorer.server.scheduler import Scheduler

UPLOAD_PREFIX = "resnet-explorer-uploads-"
JOIN_S = 30.0  # how long a released session's jobs get to finish their current step
# Streamlit forgets its own state of a closed tab (its widgets, figures, cached session
# resources) at about the same disconnected-session TTL as the registry releases ours, in
# another thread: the collection after a release waits this long for it (see return_freed_memory).
COLLECT_AFTER_S = 5.0


def return_freed_memory() -> None:
    """Free what the sessions that left held, and give the memory back to the OS.

    The server runs no full collection after each script run (``runner.postScriptGC = false``
    in .streamlit/config.toml, for the lab's speed), so the reference cycles of a closed tab's
    state wait for the collector's oldest generation; and glibc keeps freed heap pages in its
    arenas. A full ``gc.collect()`` and ``malloc_trim(0)`` after each release (rare: once per
    closed tab) bring the server's RSS back after a class leaves (issue "Classroom server",
    benchmarks/classroom_load.py)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl, …): nothing to trim
            pass


class Job(Protocol):  # explorer.server.jobs.BackgroundJob
    def stop(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...
    @property
    def running(self) -> bool: ...


def new_upload_dir(parent: Path | None = None) -> Path:
    """A new, empty folder for one session's uploads (under the system's temporary folder)."""
    return Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=parent)).resolve()


def forget_cached_folders(folder: Path, cache_dir: Path | None = None) -> list[Path]:
    """Delete the data cache's decoded copies of every data set inside ``folder`` (each
    cache file records its data set's root); returns the files deleted."""
    folder = Path(folder).resolve()
    deleted = []
    for cached in sorted(((cache_dir or default_cache_dir()) / "folders").glob("*.safetensors")):
        try:
            with safe_open(str(cached), framework="pt") as handle:
                root = (handle.metadata() or {}).get("root")
        except Exception:  # noqa: BLE001 - not a cache file we can read: not ours to judge
            continue
        if root and Path(root).is_relative_to(folder):
            cached.unlink(missing_ok=True)
            deleted.append(cached)
    return deleted


def remove_uploads(folder: Path, cache_dir: Path | None = None) -> None:
    """Delete an upload folder and the cache's decoded copies of what was in it."""
    shutil.rmtree(folder, ignore_errors=True)
    forget_cached_folders(folder, cache_dir)


class SessionResources:
    """One session's jobs (by slot name: "lab", "finetune") and its upload folder; ``scheduler``
    is the server's queue its waiting jobs leave on release (None: jobs started without one)."""

    def __init__(self, *, session_id: str | None = None, scheduler: Scheduler | None = None,
                 upload_parent: Path | None = None, cache_dir: Path | None = None):
        self.id = session_id or uuid.uuid4().hex  # the session's name in the scheduler's queue
        self._scheduler = scheduler
        self._upload_parent, self._cache_dir = upload_parent, cache_dir
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._uploads: Path | None = None
        self.released = False

    def upload_dir(self) -> Path:
        """The session's upload folder, made on first use."""
        with self._lock:
            if self.released:
                raise RuntimeError("This session has been released; it has no upload folder any more.")
            if self._uploads is None:
                self._uploads = new_upload_dir(self._upload_parent)
            return self._uploads

    def emptied_upload_dir(self) -> Path:
        """The session's upload folder with the zip unpacked before removed, and the data
        cache's decoded copies of it: a new zip *replaces* the last, so a session keeps one
        unpacked zip on disk (at most settings.SESSION_DISK) however many it uploads. A job still
        decoding the old one fails with a message naming a missing file; one already
        training keeps its images, which are in memory."""
        uploads = self.upload_dir()
        for previous in list(uploads.iterdir()):
            if previous.is_dir() and not previous.is_symlink():
                remove_uploads(previous, self._cache_dir)
            else:
                previous.unlink(missing_ok=True)
        return uploads

    def job(self, slot: str) -> Job | None:
        with self._lock:
            return self._jobs.get(slot)

    def live_jobs(self) -> dict[str, Job]:
        """The session's jobs still running or waiting, by slot: what the server's one job per
        session (settings.JOBS_PER_SESSION) counts, a lab run and a fine-tune together."""
        with self._lock:
            jobs = dict(self._jobs)
        return {slot: job for slot, job in jobs.items() if job.running}

    def replace_job(self, slot: str, job: Job) -> None:
        """Make ``job`` the session's job in ``slot``, stopping the one it replaces (the page
        only replaces a job the user stopped or chose to replace: explorer.ui.job_panel)."""
        with self._lock:
            previous, self._jobs[slot] = self._jobs.get(slot), job
        if previous is not None and previous is not job:
            previous.stop()

    def release(self, *, background: bool = True) -> threading.Thread | None:
        """Stop every job and leave the queue now; then (in a thread, with ``background``)
        wait up to :data:`JOIN_S` for the jobs to end, delete the uploads and, from
        :data:`COLLECT_AFTER_S` after the release on, :func:`return_freed_memory`. Safe to call twice."""
        with self._lock:
            if self.released:
                return None
            self.released = True
            jobs, uploads = list(self._jobs.values()), self._uploads
        for job in jobs:
            job.stop()
        if self._scheduler is not None:
            self._scheduler.release_session(self.id)
        if not background:  # nothing to wait for: collect at once
            self._clean_up(jobs, uploads, collect_after_s=0.0)
            return None
        cleaner = threading.Thread(target=self._clean_up, args=(jobs, uploads, COLLECT_AFTER_S),
                                   name=f"release-{self.id[:8]}", daemon=True)
        cleaner.start()
        return cleaner

    def _clean_up(self, jobs: list[Job], uploads: Path | None, collect_after_s: float) -> None:
        started = time.monotonic()
        deadline = started + JOIN_S
        for job in jobs:  # a job still decoding an upload would write its cache after we delete it
            job.join(timeout=max(0.0, deadline - time.monotonic()))
        if uploads is not None:
            remove_uploads(uploads, self._cache_dir)
        time.sleep(max(0.0, started + collect_after_s - time.monotonic()))
        return_freed_memory()


class SessionRegistry:
    """The server's sessions by id; a dropped session is released after a grace period
    unless it comes back (see the module's docstring). Their waiting jobs are in ``scheduler``."""

    def __init__(self, scheduler: Scheduler | None = None, make: type[SessionResources] = SessionResources):
        self.scheduler, self._make = scheduler, make
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionResources] = {}
        self._leaving: dict[str, threading.Timer] = {}

    def resume(self, session_id: str) -> SessionResources:
        """The session's resources: the ones it had if it dropped and came back in time, else new."""
        with self._lock:
            timer = self._leaving.pop(session_id, None)
            if timer is not None:
                timer.cancel()
            if session_id not in self._sessions:
                self._sessions[session_id] = self._make(session_id=session_id, scheduler=self.scheduler)
            return self._sessions[session_id]

    def dropped(self, session_id: str, grace_s: float) -> None:
        """The session's tab went away: release it in ``grace_s`` seconds unless it resumes."""
        with self._lock:
            if session_id not in self._sessions or session_id in self._leaving:
                return
            timer = threading.Timer(max(0.0, grace_s), self._expire, args=(session_id,))
            timer.daemon = True
            self._leaving[session_id] = timer
            timer.start()

    def active(self) -> list[SessionResources]:
        """The sessions the registry holds now (a dropped one until its grace period ends)."""
        with self._lock:
            return list(self._sessions.values())

    def release_all(self) -> None:
        """Release every session now (a server shutting down; the tests between cases)."""
        with self._lock:
            for timer in self._leaving.values():
                timer.cancel()
            sessions, self._sessions, self._leaving = list(self._sessions.values()), {}, {}
        for resources in sessions:
            resources.release()

    def _expire(self, session_id: str) -> None:
        with self._lock:
            if self._leaving.pop(session_id, None) is None:  # it came back meanwhile
                return
            resources = self._sessions.pop(session_id)
        resources.release()


class _ClosedTabTraceback(logging.Filter):
    """uvicorn's traceback for a websocket that closed twice, as one line (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        kind = type(error)
        if kind.__name__ == "WebSocketDisconnected" and kind.__module__.startswith("starlette"):
            record.msg, record.args, record.exc_info, record.exc_text = (
                f"a browser tab closed while its websocket was closing ({error}); ignored", (), None, None)
        return True


def quiet_closed_tab_tracebacks(logger: logging.Logger | None = None) -> None:
    """Install :class:`_ClosedTabTraceback` on uvicorn's error log, once per process."""
    logger = logger or logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ClosedTabTraceback) for f in logger.filters):
        logger.addFilter(_ClosedTabTraceback())
