"""A session's background jobs, held by its :class:`~explorer.server.sessions.SessionResources`
(stopped, taken out of the queue and their uploads deleted when the tab has been closed for
the disconnected-session TTL), and their Start / Resume / Stop buttons. Jobs wait for one of
the server's training slots (explorer.server.scheduler, issue 16), under its rules (issue 37): one
job per browser session, a queue of bounded length served round-robin over browsers, and a
time limit per job.

A Start that the rules refuse starts nothing. When the session already has its job (a lab
run, a fine-tune, a "Why shortcuts work" computation, on any page), the page says which and
offers to stop it and start the new one (:func:`pending_offer`): a running job is never
replaced unless the user asks. A full queue is said with the wait until a place frees."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.server.class_server import ClassServer
from explorer.server.estimates import estimate_run
from explorer.server.scheduler import QueueRefused, Scheduler, SessionBusy
from explorer.server.sessions import SessionResources
from explorer.settings import JOBS_PER_SESSION
from explorer.ui.common import escaped

STOP_WAIT_S = 10.0  # how long Stop waits for the current step to end before the page redraws
PENDING_KEY = "jobs.pending"  # session state: a Start refused because the session has its job


@st.cache_resource(show_spinner=False, on_release=ClassServer.close)
def class_server() -> ClassServer:
    """This server process's one scheduler and session registry, shared by every session
    (``$EXPLORER_MAX_JOBS`` and the queue's settings read when it is made, on first use)."""
    return ClassServer.start()


def _tab_dropped(resources: SessionResources) -> None:
    # Called the moment the websocket drops (explorer/server/sessions.py): release only if the
    # tab stays away for as long as Streamlit keeps the session for a reconnect.
    class_server().sessions.dropped(resources.id, grace_s=st.get_option("server.disconnectedSessionTTL"))


@st.cache_resource(scope="session", on_release=_tab_dropped)
def session_resources() -> SessionResources:
    """What this browser session owns on the server: its jobs and its upload folder (the same
    ones again when the tab reconnects in time)."""
    context = get_script_run_ctx()
    return class_server().sessions.resume(context.session_id if context is not None else "no session")


def client_key(resources: SessionResources) -> str:
    """Whose turn it is in the server's round-robin: the browser's address, so that one
    student's 200 tabs are one client (issue 37), else the session (a tab on the server's own
    machine, where Streamlit gives no address; AppTest). The scheduler only compares keys."""
    address = st.context.ip_address
    return f"address:{address}" if address else f"session:{resources.id}"


class SlotPhase(StrEnum):
    """Where a session's job is, as its buttons draw it."""

    IDLE = "idle"  # no job, or it ended
    WAITING = "waiting"  # in the server's queue
    RUNNING = "running"


class JobSlot:
    """One of the session's jobs ("lab", "finetune", "inside"), as one run of the page draws it.

    :attr:`drawn_phase` is the job's phase when the page first asked: every button and view
    of this run draws that one, and a view that finds the job in another phase reruns the
    page (:func:`job_view`), so no button is left showing a state the job has left. Its jobs
    queue in ``scheduler`` (default: the app's, :func:`class_server`)."""

    def __init__(self, resources: SessionResources, name: str, client: str | None = None, *,
                 scheduler: Scheduler | None = None):
        self.resources, self.name = resources, name
        self.client = client or f"session:{resources.id}"
        self._scheduler = scheduler
        self._drawn_phase: SlotPhase | None = None

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler or class_server().scheduler

    @property
    def job(self):
        return self.resources.job(self.name)

    @property
    def phase(self) -> SlotPhase:
        """Now: idle (no job, or it ended), waiting (in the server's queue) or running."""
        job = self.job
        if job is None or not job.running:
            return SlotPhase.IDLE
        return SlotPhase.WAITING if job.waiting else SlotPhase.RUNNING

    @property
    def drawn_phase(self) -> SlotPhase:
        if self._drawn_phase is None:
            self._drawn_phase = self.phase
        return self._drawn_phase

    @property
    def running(self) -> bool:
        """Whether this run of the page draws the job as running or waiting."""
        return self.drawn_phase != SlotPhase.IDLE

    def start(self, job, *, replace: bool = False) -> None:
        """Start ``job`` in the server's queue as this slot's job. While the session has its
        jobs running or waiting (this slot's or another page's) it is refused with
        :class:`~explorer.server.scheduler.SessionBusy` saying which, unless ``replace``: then they
        are stopped first (the user pressed "Stop it and start the new one"). Any other
        refusal (the queue is full) is a :class:`~explorer.server.scheduler.QueueRefused`."""
        scheduler = self.scheduler
        live = self.resources.live_jobs()
        if live and not replace and (self.name in live or len(live) >= scheduler.per_session):
            raise SessionBusy(busy_text(live, scheduler.per_session))
        if replace:
            for other in live.values():
                other.stop()
            for other in live.values():
                other.join(timeout=STOP_WAIT_S)  # the current step ends first
        self.resources.replace_job(self.name, job.start(scheduler, session=self.resources.id, client=self.client))


_PAGES = {"lab": "Degradation lab", "finetune": "Transfer learning", "inside": "Why shortcuts work"}


def busy_text(live: dict, per_session: int) -> str:
    """"This session already has a lab run (Degradation lab) going: training: step 30 of 300 …"."""
    going = "; ".join(f"{getattr(job, 'kind', 'a job')} {'waiting' if getattr(job, 'waiting', False) else 'going'}: "
                      f"{_status(job)}" for job in live.values())
    allowed = "1 job" if per_session == 1 else f"{per_session} jobs"
    return (f"This session already has {going}. The server runs {allowed} per browser session "
            f"({JOBS_PER_SESSION.env}) so that everyone gets a turn: stop it to start this one.")


def _status(job) -> str:
    try:
        return job.status_text()
    except AttributeError:  # not an explorer.server.jobs job (a test's stand-in)
        return "running"


def lab_job_slot() -> JobSlot:
    resources = session_resources()
    return JobSlot(resources, "lab", client_key(resources))


def finetune_job_slot() -> JobSlot:
    resources = session_resources()
    return JobSlot(resources, "finetune", client_key(resources))


def inside_job_slot() -> JobSlot:
    resources = session_resources()
    return JobSlot(resources, "inside", client_key(resources))


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
            st.error(escaped(error))  # a bad setting, maybe quoting what was typed
        else:
            start_job(slot, job, on_start)


def resume_button(slot: JobSlot, where, on_start: Callable[[], None] | None = None) -> None:
    """Resume, shown only for a stopped run that can continue."""
    if slot.job is not None and slot.job.can_resume:
        if where.button("Resume", help="Continue the stopped run exactly where it stopped."):
            start_job(slot, slot.job.resumed(), on_start)


def stop_button(slot: JobSlot, where, *, key: str | None = None, offer: bool = True) -> None:
    """Stop, disabled while nothing runs; then (``offer``), below the row, the offer to
    replace the job that kept a Start of this slot from starting (:func:`pending_offer`)."""
    if where.button("Stop", disabled=not slot.running, key=key):
        slot.job.stop()
        slot.job.join(timeout=STOP_WAIT_S)  # the current step ends first
        st.rerun()  # the page's buttons were drawn while it ran: draw them again (Start, Resume)
    if offer:
        pending_offer(slot)


@dataclass
class PendingStart:
    """A job whose Start was refused because the session has its job, kept for the offer."""

    slot: str
    job: object
    on_start: Callable[[], None] | None


def start_job(slot: JobSlot, job, on_start: Callable[[], None] | None = None, *, replace: bool = False) -> None:
    """Start ``job`` in ``slot`` and rerun the page: the buttons drawn before the click
    (Start enabled, Stop disabled) are drawn again for a running job. When the session has
    its job already, the page reruns with the offer to stop it (:func:`pending_offer`); any
    other refusal (the queue is full, a bad server setting) is shown as a message and starts
    nothing."""
    try:
        slot.start(job, replace=replace)
    except SessionBusy as busy:
        if replace:  # what was stopped is still finishing its step
            st.warning(escaped(f"{busy} (It is still finishing its current step: try again in a moment.)"))
            return
        st.session_state[PENDING_KEY] = PendingStart(slot.name, job, on_start)
        st.rerun()
    except QueueRefused as refused:
        st.warning(escaped(refused))
        return
    except ValueError as error:  # a malformed server setting ($EXPLORER_MAX_JOBS, …)
        st.error(escaped(error))
        return
    if on_start is not None:
        on_start()
    st.rerun()


def pending_offer(slot: JobSlot) -> None:
    """After a Start of ``slot`` was refused because the session has its job: what is going,
    and buttons to stop it and start the new job, or to keep it. Gone once the other job has
    ended by itself (Start then simply starts)."""
    pending = st.session_state.get(PENDING_KEY)
    if not isinstance(pending, PendingStart) or pending.slot != slot.name:
        return
    live = slot.resources.live_jobs()
    if not live:
        del st.session_state[PENDING_KEY]
        return
    st.warning(escaped(busy_text(live, slot.scheduler.per_session)))
    row = button_row()
    if row.button("Stop it and start the new one", type="primary", key=f"jobs.replace.{slot.name}"):
        del st.session_state[PENDING_KEY]
        start_job(slot, pending.job, pending.on_start, replace=True)
    if row.button("Keep it", key=f"jobs.keep.{slot.name}"):
        del st.session_state[PENDING_KEY]
        st.rerun()


def run_estimate_note(config) -> None:
    """Before Start: how long a lab run of ``config`` would take here, and, past the server's
    time limit, that the limit would stop it and where (explorer.server.estimates)."""
    if not config.models:
        return
    try:
        estimate = estimate_run(config, class_server().scheduler.time_limit_s)
    except ValueError:  # a malformed server setting, an unknown net: Start says so
        return
    (st.warning if estimate.over_limit else st.caption)(estimate.text())  # our numbers and words only


def limit_notice(snapshot) -> None:
    """The server's time limit stopped the job: say so, naming the setting, and what was kept."""
    notice = snapshot.limit_notice() if hasattr(snapshot, "limit_notice") else None
    if notice:
        st.warning(notice)


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
    refresh = {SlotPhase.IDLE: None, SlotPhase.WAITING: max(every_s, QUEUED_REFRESH_S),
               SlotPhase.RUNNING: every_s}[phase]

    @functools.wraps(draw)  # the fragment's identity: draw's name, so two views stay apart
    def view() -> None:
        draw()
        if slot.phase != phase:
            st.rerun()

    st.fragment(view, run_every=refresh)()
