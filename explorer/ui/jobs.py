"""A session's background jobs, held by its :class:`~explorer.sessions.SessionResources`
(stopped, taken out of the queue and their uploads deleted when the tab has been closed for
the disconnected-session TTL), and their Start / Resume / Stop buttons. Jobs wait for one of
the server's training slots (explorer.scheduler, issue 16)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.scheduler import server_scheduler
from explorer.sessions import SessionResources, server_sessions


def _tab_dropped(resources: SessionResources) -> None:
    # Called the moment the websocket drops (explorer/sessions.py): release only if the tab
    # stays away for as long as Streamlit keeps the session for a reconnect.
    server_sessions().dropped(resources.id, grace_s=st.get_option("server.disconnectedSessionTTL"))


@st.cache_resource(scope="session", on_release=_tab_dropped)
def session_resources() -> SessionResources:
    """What this browser session owns on the server: its jobs and its upload folder (the same
    ones again when the tab reconnects in time)."""
    context = get_script_run_ctx()
    return server_sessions().resume(context.session_id if context is not None else "no session")


class JobSlot:
    """One of the session's jobs ("lab", "finetune"), as one run of the page draws it.

    :attr:`drawn_phase` is the job's phase when the page first asked: every button and view
    of this run draws that one, and a view that finds the job in another phase reruns the
    page (:func:`job_view`), so no button is left showing a state the job has left."""

    def __init__(self, resources: SessionResources, name: str):
        self.resources, self.name = resources, name
        self._drawn_phase: str | None = None

    @property
    def job(self):
        return self.resources.job(self.name)

    @property
    def phase(self) -> str:
        """Now: "idle" (no job, or it ended), "waiting" (in the server's queue) or "running"."""
        job = self.job
        if job is None or not job.running:
            return "idle"
        return "waiting" if job.waiting else "running"

    @property
    def drawn_phase(self) -> str:
        if self._drawn_phase is None:
            self._drawn_phase = self.phase
        return self._drawn_phase

    @property
    def running(self) -> bool:
        """Whether this run of the page draws the job as running or waiting."""
        return self.drawn_phase != "idle"

    def start(self, job) -> None:
        """Start ``job`` in the server's queue as this slot's job (stopping the one it replaces)."""
        self.resources.replace_job(self.name, job.start(server_scheduler(), session=self.resources.id))


def lab_job_slot() -> JobSlot:
    return JobSlot(session_resources(), "lab")


def finetune_job_slot() -> JobSlot:
    return JobSlot(session_resources(), "finetune")


def start_stop_controls(slot: JobSlot, label: str, make_job, *, disabled: bool = False,
                        resumable: bool = False, on_start: Callable[[], None] | None = None) -> None:
    """Start and Stop buttons for the session's background job (and, with ``resumable``, a
    Resume button for a stopped run), side by side in one row (columns would spread them
    apart). A click that starts or stops a job reruns the page, so every button shows the
    new state."""
    row = button_row()
    start_button(slot, label, make_job, row, disabled=disabled, on_start=on_start)
    if resumable:
        resume_button(slot, row, on_start)
    stop_button(slot, row)


def button_row():
    """A row of buttons, each as wide as its label."""
    return st.container(horizontal=True, gap="small")


def start_button(slot: JobSlot, label: str, make_job, where, *, disabled: bool = False,
                 on_start: Callable[[], None] | None = None) -> None:
    """Start, disabled while a job runs or waits (stop it first). ``make_job`` builds the job
    (a ValueError, i.e. a bad setting, is shown to the user); ``on_start`` runs once it has
    started."""
    running = slot.running
    if where.button(label, type="primary", disabled=disabled or running,
                    help="A run is going: stop it first." if running else None):
        try:
            job = make_job()
        except ValueError as error:
            st.error(str(error))
        else:
            start_job(slot, job, on_start)


def resume_button(slot: JobSlot, where, on_start: Callable[[], None] | None = None) -> None:
    """Resume, shown only for a stopped run that can continue."""
    if slot.job is not None and slot.job.can_resume:
        if where.button("Resume", help="Continue the stopped run exactly where it stopped."):
            start_job(slot, slot.job.resumed(), on_start)


def stop_button(slot: JobSlot, where) -> None:
    """Stop, disabled while nothing runs."""
    if where.button("Stop", disabled=not slot.running):
        slot.job.stop()
        slot.job.join(timeout=10)  # the current step ends first
        st.rerun()  # the page's buttons were drawn while it ran: draw them again (Start, Resume)


def start_job(slot: JobSlot, job, on_start: Callable[[], None] | None = None) -> None:
    """Start ``job`` in ``slot`` and rerun the page: the buttons drawn before the click
    (Start enabled, Stop disabled) are drawn again for a running job. A server setting that
    stops it (a bad ``$EXPLORER_MAX_JOBS``) is shown as a message."""
    try:
        slot.start(job)
    except ValueError as error:
        st.error(str(error))
        return
    if on_start is not None:
        on_start()
    st.rerun()


QUEUED_REFRESH_S = 5.0  # a place in the queue moves when a run ends (about a minute for the demo)


def job_view(slot: JobSlot, draw: Callable[[], None], *, every_s: float) -> None:
    """``draw`` (the slot's progress and curves) as a fragment that redraws every ``every_s``
    seconds while the slot's job runs, every :data:`QUEUED_REFRESH_S` while it waits in the
    queue, and once when there is none or it has ended: a finished run left open in a tab
    costs the server and the browser nothing more (a class leaves dozens of them open, issue
    16). When the job is found in another phase than the page's buttons were drawn with,
    the whole page reruns, so Start, Stop and Resume show the new state and the view takes
    the new phase's refresh."""
    phase = slot.drawn_phase
    refresh = {"idle": None, "waiting": max(every_s, QUEUED_REFRESH_S), "running": every_s}[phase]

    @functools.wraps(draw)  # the fragment's identity: draw's name, so two views stay apart
    def view() -> None:
        draw()
        if slot.phase != phase:
            st.rerun()

    st.fragment(view, run_every=refresh)()
