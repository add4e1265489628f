"""A session's background jobs: the slot that holds one (stopped when the tab closes) and
its Start / Resume / Stop buttons."""

from __future__ import annotations

import streamlit as st

from explorer import devices


class JobSlot:
    """This session's training job; released (and the job stopped) when the tab closes."""

    def __init__(self):
        self.job = None

    def replace(self, job) -> None:
        self.release()
        self.job = job

    def release(self) -> None:
        if self.job is not None:
            self.job.stop()


def start_stop_controls(slot: JobSlot, label: str, make_job, *, disabled: bool = False,
                        resumable: bool = False) -> bool:
    """Start and Stop buttons for the session's background job (and, with ``resumable``, a
    Resume button for a stopped run). Start is disabled while a job runs (stop it first),
    Stop while none does. ``make_job`` builds the job (a ValueError, i.e. a bad setting, is
    shown to the user); True when a job was started."""
    if resumable:
        start, resume, stop = st.columns([1, 1, 4])
    else:
        (start, stop), resume = st.columns([1, 5]), None
    started = False
    running = slot.job is not None and slot.job.running
    if start.button(label, type="primary", disabled=disabled or running,
                    help="A run is going: stop it first." if running else None):
        try:
            job = make_job()
            devices.leave_one_core_for_the_ui()
            slot.replace(job.start())
            started = True
        except ValueError as error:
            st.error(str(error))
    if resume is not None and slot.job is not None and slot.job.can_resume:
        if resume.button("Resume", help="Continue the stopped run exactly where it stopped."):
            devices.leave_one_core_for_the_ui()
            slot.job = slot.job.resumed().start()
            started = True
    if stop.button("Stop", disabled=not running):
        slot.job.stop()
        slot.job.join(timeout=10)  # the current step ends first, so the page redraws with Resume
    return started


@st.cache_resource(scope="session", on_release=JobSlot.release)
def lab_job_slot() -> JobSlot:
    return JobSlot()


@st.cache_resource(scope="session", on_release=JobSlot.release)
def finetune_job_slot() -> JobSlot:
    return JobSlot()
