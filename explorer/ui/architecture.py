"""The architecture page's live sections: block diagrams drawn from the modules, and the
load-and-time run over every depth."""

from __future__ import annotations

import streamlit as st

from explorer import figures, speed, tables
from explorer.ui.common import block_diagrams as traced_block_diagrams
from explorer.ui.common import current_device


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


def speed_section(depths: list[str]) -> None:
    """Load and time ``depths`` on the session's device (batch 1 latency, batch N throughput)."""
    st.header(f"Load every depth on {current_device().type.upper()}")
    batch = st.select_slider("Batch size N for throughput", [1, 2, 4, 8, 16, 32, 64, 128], value=8)
    if st.button("Load and time ResNet-18…152", type="primary"):
        progress = st.progress(0.0, text="Loading…")
        rows = []
        for row in speed.measure_speed(depths, current_device(), batch_size=batch):
            rows.append(row)
            progress.progress(len(rows) / len(depths), text=f"{row.name}: done")
        st.session_state["speed_rows"] = rows
    if rows := st.session_state.get("speed_rows"):
        table = tables.speed_table(rows)
        numbers = {column: st.column_config.NumberColumn(format="localized")
                   for column, value in table[0].items() if isinstance(value, float)}
        st.dataframe(table, hide_index=True, width="stretch", column_config=numbers)
        st.plotly_chart(figures.speed_figure(rows), width="stretch")
        st.caption("Timed with denormal floats flushed to zero (`torch.set_flush_denormal`), so the times "
                   "measure the models' cost, not their weights' values; on a CPU shared with other work "
                   "they still vary from run to run.")
