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


_MODEL_COLOURS = ("#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def training_curves_figure(runs: Sequence) -> go.Figure:
    """Training error (bold) and validation error (dashed) per model, as in Fig. 6.

    ``runs`` are RunRecords; with several runs, their names prefix the legend (overlay).
    Plain nets are drawn in warm colours, ResNets in cool ones.
    """
    figure = go.Figure()
    colour_index = 0
    for run in runs:
        for model in run.model_names:
            colour = _MODEL_COLOURS[colour_index % len(_MODEL_COLOURS)]
            colour_index += 1
            label = f"{run.name}: {model}" if len(runs) > 1 else model
            xs, ys = run.series(model, "train_error", max_points=1500)
            figure.add_scatter(x=xs, y=[100 * y for y in ys], name=f"{label} train", mode="lines",
                               line=dict(color=colour, width=3), legendgroup=label)
            xs, ys = run.series(model, "val_error", max_points=1500)
            figure.add_scatter(x=xs, y=[100 * y for y in ys], name=f"{label} validation",
                               mode="lines+markers", line=dict(color=colour, width=1.5, dash="dash"),
                               legendgroup=label)
    figure.update_layout(xaxis_title="iteration", yaxis_title="error (%)", height=420,
                         margin=dict(t=30, b=10), legend=dict(orientation="h", y=-0.2),
                         yaxis=dict(rangemode="tozero"))
    return figure


def gradient_heatmap_figure(run, model: str) -> go.Figure:
    """Per-layer gradient norm (log10) over training: layer (input → output) × step."""
    import math

    steps, rows = [], []
    for step in run.steps:
        for metrics in step["models"]:
            if metrics["name"] == model and metrics.get("grad_norms"):
                steps.append(step["step"])
                rows.append([math.log10(max(g, 1e-12)) for g in metrics["grad_norms"]])
    layers = run.layer_names.get(model, [])
    z = [list(column) for column in zip(*rows)] if rows else []
    figure = go.Figure(go.Heatmap(x=steps, y=list(range(1, len(layers) + 1)), z=z, colorscale="Viridis",
                                  colorbar=dict(title="log₁₀ ‖∇W‖"),
                                  customdata=[[name] * len(steps) for name in layers],
                                  hovertemplate="step %{x}<br>layer %{y}: %{customdata}<br>log₁₀‖∇W‖ %{z:.2f}<extra></extra>"))
    figure.update_layout(title=model, xaxis_title="iteration", yaxis_title="layer (1 = input side)",
                         height=360, margin=dict(t=40, b=10))
    return figure
