"""Plotly figure builders: data in, ``go.Figure`` out. No Streamlit here."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from explorer.architecture import ZooRow
from explorer.speed import SpeedRow

_BLOCK_COLOURS = {"basic": "#1f77b4", "bottleneck": "#2ca02c", "plain": "#ff7f0e", "vgg": "#7f7f7f"}


def zoo_cost_figure(rows: Sequence[ZooRow]) -> go.Figure:
    """GMACs measured vs the paper's, one bar pair per model (Table 1 and Fig. 3)."""
    names = [row.name for row in rows]
    figure = go.Figure()
    figure.add_bar(x=names, y=[row.gmacs for row in rows], name="measured (FlopCounterMode)",
                   marker_color=[_BLOCK_COLOURS.get(row.block, "#333") for row in rows],
                   text=[f"{row.gmacs:.2f}" for row in rows], textposition="outside")
    figure.add_scatter(x=names, y=[row.paper_gmacs for row in rows], name="paper",
                       mode="markers", marker=dict(symbol="line-ew-open", size=28, color="black",
                                                   line=dict(width=3)))
    figure.update_layout(yaxis_title="GMACs per 224×224 image (the paper's 'FLOPs')",
                         legend=dict(orientation="h", y=1.12), margin=dict(t=40, b=10),
                         height=380)
    return figure


def speed_figure(rows: Sequence[SpeedRow]) -> go.Figure:
    """Batch-1 latency and batch-N throughput per model, on one device."""
    names = [row.name for row in rows]
    figure = go.Figure()
    figure.add_bar(x=names, y=[row.latency_ms for row in rows], name="batch-1 latency (ms)",
                   yaxis="y", offsetgroup="latency", marker_color="#1f77b4")
    figure.add_bar(x=names, y=[row.throughput for row in rows],
                   name=f"batch-{rows[0].batch_size if rows else 'N'} throughput (images/s)",
                   yaxis="y2", offsetgroup="throughput", marker_color="#2ca02c")
    figure.update_layout(
        barmode="group", height=360, margin=dict(t=40, b=10),
        yaxis=dict(title="latency (ms)"),
        yaxis2=dict(title="throughput (images/s)", overlaying="y", side="right"),
        legend=dict(orientation="h", y=1.15),
    )
    return figure
