"""The architecture page's live sections: block diagrams drawn from the modules, and the
load-and-time run over every depth."""

from __future__ import annotations

import streamlit as st

from explorer.paper import speed
from explorer.present import figures, tables
from explorer.server.compute_jobs import ComputeJob
from explorer.ui.common import block_diagrams as traced_block_diagrams
from explorer.ui.common import current_device
from explorer.ui.job_panel import (
    JobSlot,
    client_key,
    job_view,
    pending_offer,
    session_resources,
    start_job,
    stop_button,
)
from explorer.words import spoken_duration


def block_diagrams(name: str) -> None:
    """The first identity and projection blocks of ``name``, traced with torch.fx, and their code."""
    st.header("Inside a block")
    st.caption("Drawn from the modules of the model above with `torch.fx` (blue: the residual path F(x); "
               "red: the shortcut). Pick resnet18/34 above for the basic block, resnet50 or deeper for the "
               "bottleneck (Fig. 5), plain34 for a block without shortcut.")
    blocks = traced_block_diagrams(name)
    for column, block in zip(st.columns(len(blocks) or 1), blocks):
        column.graphviz_chart(block.dot)
        column.caption(block.caption)
    if blocks:
        with st.expander(f"The code that runs: `{blocks[0].block_class}.forward`"):
            st.code(blocks[0].forward_source, language="python")


@st.cache_resource(show_spinner=False)
def _seconds_per_gmac(device_type: str) -> float:
    """This machine's speed, measured once per server: one ResNet-18 pass (about 0.2 s)."""
    return speed.calibrate(current_device())


def _speed_job(depths: list[str], batch: int) -> ComputeJob:
    device = current_device()

    def measure(progress):
        return speed.measure_speed(depths, device, batch_size=batch,
                                   progress=lambda done, total: progress(done / total))

    return ComputeJob("speed", [("speed", measure)], key=("speed", tuple(depths), batch), kind="the speed check")


def speed_section(depths: list[str]) -> None:
    """Load and time ``depths`` on the session's device (batch 1 latency, batch N throughput),
    with the wait announced before the button is pressed. It runs as the session's background
    job, through the server's queue: on the page thread, 30 s of timing and 650 MB of models
    would hold a core and the memory outside every limit (issue 37)."""
    st.header(f"Load every depth on {current_device().type.upper()}")
    batch = st.select_slider("Batch size N for throughput", [1, 2, 4, 8, 16, 32, 64, 128], value=4)
    estimate = speed.estimate_speed_seconds(depths, _seconds_per_gmac(current_device().type), batch_size=batch)
    st.caption(f"Takes about {spoken_duration(estimate)} on this machine (estimated from one timed ResNet-18 "
               "pass): every depth is loaded, then timed in 3 interleaved rounds on one thread.")
    resources = session_resources()
    slot = JobSlot(resources, "speed", client_key(resources))
    if st.button("Load and time ResNet-18…152", type="primary"):
        start_job(slot, _speed_job(depths, batch))
    pending_offer(slot)
    job = slot.job
    if isinstance(job, ComputeJob) and job.what == "speed":
        if slot.running:
            job_view(slot, _speed_progress, every_s=1.0)
            stop_button(slot, st, key="speed.stop", offer=False)
        elif report := job.snapshot().results.get("speed"):
            st.session_state["speed_report"] = report
    if report := st.session_state.get("speed_report"):
        _speed_report(report)


def _speed_progress() -> None:
    job = JobSlot(session_resources(), "speed").job
    if job is not None:
        snapshot = job.snapshot()
        st.progress(snapshot.fraction, text=snapshot.progress_text())


def _speed_report(report) -> None:
    table = tables.speed_table(report.rows)
    numbers = {column: st.column_config.NumberColumn(format="localized")
               for column, value in table[0].items() if isinstance(value, float)}
    st.dataframe(table, hide_index=True, width="stretch", column_config=numbers)
    st.plotly_chart(figures.speed_figure(report.rows), width="stretch")
    st.caption(f"Medians of {report.rounds} rounds, each timing every model in turn, on {report.threads} "
               f"torch thread{'s' if report.threads != 1 else ''}, with denormal floats flushed to zero "
               "(`torch.set_flush_denormal`), so the times measure the models' cost. " + report.busy_text())
