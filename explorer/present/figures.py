"""Plotly figure builders: data in, ``go.Figure`` out. No Streamlit here."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from explorer.models import get_model_spec, model_names
from explorer.paper.speed import SpeedRow
from explorer.paper.table1 import ZooRow
from explorer.present.axes import log_ticks, power_label
from explorer.present.overlays import CAM_COLOURSCALE  # the Grad-CAM palette, one for the PNG and the page

_BLOCK_COLOURS = {"basic": "#1f77b4", "bottleneck": "#2ca02c", "plain": "#ff7f0e", "vgg": "#7f7f7f"}
_BLOCK_LABELS = {"basic": "basic blocks", "bottleneck": "bottleneck blocks", "plain": "plain (no shortcuts)",
                 "vgg": "VGG"}


def zoo_cost_figure(rows: Sequence[ZooRow]) -> go.Figure:
    """GMACs measured vs the paper's, one bar pair per model (Table 1 and Fig. 3)."""
    names = [row.name for row in rows]
    figure = go.Figure()
    for block in dict.fromkeys(row.block for row in rows):  # one trace per block kind: the legend keys the colours
        kind = [row for row in rows if row.block == block]
        figure.add_bar(x=[row.name for row in kind], y=[row.gmacs for row in kind],
                       name=f"{_BLOCK_LABELS.get(block, block)}, measured", marker_color=_BLOCK_COLOURS.get(block, "#333"),
                       text=[f"{row.gmacs:.2f}" for row in kind], textposition="outside")
    figure.update_xaxes(categoryorder="array", categoryarray=names)
    figure.add_scatter(x=names, y=[row.paper_gmacs for row in rows], name="paper",
                       mode="markers", marker=dict(symbol="line-ew-open", size=28, color="black",
                                                   line=dict(width=3)))
    figure.update_layout(yaxis_title="GMACs per 224×224 image (the paper's 'FLOPs')", barmode="overlay",
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
# Overlaid runs: one line style each for training error, one marker each for validation error
# (its line is always dashed), so that two runs of the same model (same colour) stay apart.
_RUN_DASHES = ("solid", "dot", "dashdot", "longdash")
_RUN_MARKERS = ("circle", "square", "diamond", "triangle-up")
_PROJECTOR_FONT = 18  # readable from the back of a classroom


def _for_projector(figure: go.Figure) -> go.Figure:
    """Axis numbers and titles at projector size. ``layout.font`` alone is not enough:
    Streamlit's plotly theme sets the axes' own fonts (about 11 px), and those win."""
    for update in (figure.update_xaxes, figure.update_yaxes):
        update(tickfont=dict(size=_PROJECTOR_FONT - 2), title_font=dict(size=_PROJECTOR_FONT))
    return figure


def model_colour(name: str) -> str:
    """A fixed colour per model, the same on every chart: plain nets warm, residual nets
    cool, deeper nets darker (as in the paper's figures, where plain and ResNet panels pair)."""
    spec = get_model_spec(name)
    kin = [n for n in model_names(spec.family) if get_model_spec(n).residual == spec.residual]
    depths = sorted({get_model_spec(n).depth for n in kin})
    shade = 0.45 + 0.5 * (depths.index(spec.depth) / max(1, len(depths) - 1))
    return _as_hex(sample_colorscale("Blues" if spec.residual else "Reds", [shade])[0])


def _as_hex(colour: str) -> str:
    red, green, blue = (round(float(v)) for v in colour[colour.index("(") + 1:-1].split(","))
    return f"#{red:02x}{green:02x}{blue:02x}"


def _band(figure: go.Figure, xs, lows, highs, colour: str, group: str) -> None:
    """A min–max band behind a curve: the lower edge, then the upper one filled down to it."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    figure.add_scatter(x=xs, y=[100 * y for y in lows], mode="lines", line=dict(width=0), showlegend=False,
                       legendgroup=group, hoverinfo="skip")
    figure.add_scatter(x=xs, y=[100 * y for y in highs], mode="lines", line=dict(width=0), fill="tonexty",
                       fillcolor=f"rgba({red},{green},{blue},0.18)", showlegend=False, legendgroup=group,
                       hoverinfo="skip")


def training_curves_figure(runs: Sequence, max_points: int = 1500) -> go.Figure:
    """Training error (bold) and validation error (thin, dashed) per model, as in Fig. 6.

    ``runs`` are RunRecords; with several runs, their names prefix the legend and each run
    has its own line style (overlay). Each model keeps its colour (:func:`model_colour`). A
    run trained with several seeds shows each model's mean over the seeds, in a shaded
    min–max band. Sized for a projector: large fonts, thick lines, the legend beside the plot.
    ``max_points`` per curve keeps a live chart cheap to send and to draw.
    """
    figure = go.Figure()
    for run_index, run in enumerate(runs):
        seeds = len(run.seeds)
        dash = _RUN_DASHES[run_index % len(_RUN_DASHES)]
        marker = dict(symbol=_RUN_MARKERS[run_index % len(_RUN_MARKERS)], size=8)
        for model in run.model_names:
            colour = model_colour(model)
            label = f"{run.name}: {model}" if len(runs) > 1 else model
            if seeds > 1:
                label += f" (mean of {seeds} seeds)"
            for key, kind, line, mode, points in (
                    ("train_error", "train", dict(width=4, dash=dash), "lines", None),
                    ("val_error", "validation", dict(width=2, dash="dash"), "lines+markers", marker)):
                if seeds > 1:
                    xs, ys, lows, highs = run.seed_band(model, key, max_points=max_points)
                    _band(figure, xs, lows, highs, colour, label)
                else:
                    xs, ys = run.series(model, key, max_points=max_points)
                figure.add_scatter(x=xs, y=[100 * y for y in ys], name=f"{label} {kind}", mode=mode,
                                   line=dict(color=colour, **line), marker=points, legendgroup=label)
    figure.update_layout(xaxis_title="iteration", yaxis_title="error (%)", height=520,
                         font=dict(size=_PROJECTOR_FONT), margin=dict(t=30, b=10, r=10),
                         legend=dict(x=1.02, y=1, xanchor="left", font=dict(size=_PROJECTOR_FONT - 2)),
                         yaxis=dict(rangemode="tozero"))
    return _for_projector(figure)


def fig6_figure(run) -> go.Figure:
    """One run drawn as the paper's Fig. 6: plain nets on the left, ResNets on the right,
    thin curves training error, bold curves validation error (the paper's testing error)."""
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                           subplot_titles=("plain (no shortcuts)", "ResNet (identity shortcuts)"))
    for model in run.model_names:
        column = 2 if get_model_spec(model).residual else 1
        colour = model_colour(model)
        for key, kind, width in (("train_error", "train", 1.5), ("val_error", "validation", 4)):
            xs, ys = run.series(model, key, max_points=1500)
            figure.add_scatter(x=xs, y=[100 * y for y in ys], name=f"{model} {kind}", mode="lines",
                               line=dict(color=colour, width=width), legendgroup=model, row=1, col=column)
    figure.update_xaxes(title_text="iteration")
    figure.update_yaxes(title_text="error (%)", rangemode="tozero", col=1)
    figure.update_layout(height=520, font=dict(size=_PROJECTOR_FONT), margin=dict(t=50, b=10, r=10),
                         legend=dict(x=1.02, y=1, xanchor="left", font=dict(size=_PROJECTOR_FONT - 2)))
    figure.update_annotations(font_size=_PROJECTOR_FONT + 2)
    return _for_projector(figure)


# A heatmap needs no more columns than a chart has pixels: a 35,000-step record logs 1,400
# steps, and its ResNet-56 panel was 8.5 MB of JSON, rebuilt on every rerun of the lab page.
_HEATMAP_MAX_STEPS = 400


def _log_gradient_rows(run, model: str) -> tuple[list[int], np.ndarray]:
    """(steps, log10 gradient norm per layer × step) of ``model``'s first seed, at most
    ``_HEATMAP_MAX_STEPS`` steps (every k-th, the last one kept)."""
    steps, history = run.series(model, "grad_norms", max_points=_HEATMAP_MAX_STEPS)  # several seeds: the first's
    if not history:
        return steps, np.zeros((0, 0))
    norms = np.asarray(history, dtype=np.float64)  # step × layer
    return steps, np.log10(np.maximum(norms, 1e-12)).T


def gradient_heatmap_figures(run, models) -> list[go.Figure]:
    """:func:`gradient_heatmap_figure` for each model, on one colour scale: side by side, the
    same colour is the same gradient norm in every panel (the finite norms' range: a skipped
    mixed-precision step may record inf or NaN)."""
    rows = {model: _log_gradient_rows(run, model) for model in models}
    finite = [z[np.isfinite(z)] for _, z in rows.values()]
    finite = [values for values in finite if values.size]
    z_range = (float(min(v.min() for v in finite)), float(max(v.max() for v in finite))) if finite else None
    return [_gradient_heatmap(run, model, *rows[model], z_range) for model in models]


def gradient_heatmap_figure(run, model: str, z_range: tuple[float, float] | None = None) -> go.Figure:
    """Per-layer gradient norm (log10) over training: layer (input → output) × step; ``z_range``
    fixes the colour scale (else it spans this model's own values)."""
    return _gradient_heatmap(run, model, *_log_gradient_rows(run, model), z_range)


def _gradient_heatmap(run, model: str, steps: list[int], z: np.ndarray,
                      z_range: tuple[float, float] | None) -> go.Figure:
    layers = run.layer_names.get(model, [])
    zmin, zmax = z_range or (None, None)
    # z as an array: plotly sends it as base64 in one go (a list is checked and written number by number).
    figure = go.Figure(go.Heatmap(x=steps, y=list(range(1, len(layers) + 1)), z=z.astype(np.float32),
                                  colorscale="Viridis", zmin=zmin, zmax=zmax, colorbar=dict(title="log₁₀ ‖∇W‖"),
                                  customdata=[[name] * len(steps) for name in layers],
                                  hovertemplate="step %{x}<br>layer %{y}: %{customdata}<br>log₁₀‖∇W‖ %{z:.2f}<extra></extra>"))
    figure.update_layout(title=model, xaxis_title="iteration", yaxis_title="layer (1 = input side)",
                         height=360, margin=dict(t=40, b=10))
    return figure


# --- the inspect page -------------------------------------------------------------------


def topk_figure(labels: Sequence[str], probabilities: Sequence[float], title: str = "", *,
                trained: bool = True) -> go.Figure:
    """Top classes as horizontal bars, most probable on top, in percent. An untrained model's
    bars are grey and each says "random weights": its guesses must not pass for predictions."""
    mark = "" if trained else " · random weights"
    figure = go.Figure(go.Bar(x=[100 * p for p in probabilities][::-1], y=list(labels)[::-1], orientation="h",
                              text=[f"{100 * p:.1f}%{mark}" for p in probabilities][::-1], textposition="auto",
                              marker_color="#1f77b4" if trained else "#9e9e9e"))
    figure.update_layout(title=title, xaxis=dict(title="probability (%)", range=[0, 100]),
                         height=60 + 32 * len(labels), margin=dict(t=40 if title else 10, b=10, l=10, r=10))
    return figure


def feature_maps_figure(maps, channels: Sequence[int], means: Sequence[float], columns: int = 8) -> go.Figure:
    """A grid of one image's most active channels, each a heatmap with its own scale."""
    rows = max(1, -(-len(channels) // columns))
    figure = make_subplots(rows=rows, cols=columns, horizontal_spacing=0.01, vertical_spacing=0.06,
                           subplot_titles=[f"ch {c} · mean {m:.2f}" for c, m in zip(channels, means)])
    for index, channel_map in enumerate(maps):
        figure.add_trace(go.Heatmap(z=channel_map.cpu().numpy(), colorscale="Viridis", showscale=False,
                                    hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"),
                         row=index // columns + 1, col=index % columns + 1)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    figure.update_annotations(font_size=10)
    figure.update_layout(height=40 + 130 * rows, margin=dict(t=30, b=0, l=0, r=0))
    return figure


def cam_overlays_figure(image, cams: Sequence[tuple[str, object]], opacity: float = 0.5) -> go.Figure:
    """The image the net sees, then one Grad-CAM overlay per stage, side by side.

    ``image`` is uint8 (3, H, W); each cam is (H, W) in [0, 1], already upsampled.
    """
    # Arrays, not lists: plotly checks a list element by element and writes it as JSON text
    # (2.8 s for a 224×224 overlay), an array in one go as base64 (20 ms; 95 -> 14 ms at 32×32).
    pixels = image.permute(1, 2, 0).cpu().numpy()
    figure = make_subplots(rows=1, cols=len(cams) + 1, horizontal_spacing=0.01,
                           subplot_titles=["what the net sees"] + [title for title, _ in cams])
    figure.add_trace(go.Image(z=pixels), row=1, col=1)
    for index, (title, cam) in enumerate(cams, start=2):
        figure.add_trace(go.Image(z=pixels), row=1, col=index)
        figure.add_trace(go.Heatmap(z=cam.cpu().numpy(), colorscale=CAM_COLOURSCALE, zmin=0, zmax=1, opacity=opacity,
                                    showscale=index == len(cams) + 1, colorbar=dict(title="Grad-CAM", len=0.8),
                                    hovertemplate=f"{title}<br>x %{{x}}, y %{{y}}: %{{z:.2f}}<extra></extra>"),
                         row=1, col=index)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(height=260, margin=dict(t=30, b=0, l=0, r=0))
    return figure


def gradient_norms_figure(series: Sequence) -> go.Figure:
    """‖∂score/∂W‖ per weighted layer, input (1) to output, one bar series per model (log scale).

    ``series``: :class:`explorer.paper.gradcam.GradientSeries` (``label``, ``residual``, ``norms``).
    """
    figure = go.Figure()
    for label, residual, norms in ((s.label, s.residual, s.norms) for s in series):
        colour = "#1f77b4" if residual else "#d62728"  # plain warm, residual cool, as in the lab
        figure.add_bar(x=list(range(1, len(norms) + 1)), y=[norm for _, norm in norms], name=label,
                       customdata=[name for name, _ in norms], marker_color=colour,
                       hovertemplate=f"{label}<br>layer %{{x}}: %{{customdata}}<br>‖∇W‖ %{{y:.3g}}<extra></extra>")
    # Whole decades when the norms span three or more, 1-2-5 steps when less: never a single
    # label, which leaves a log axis unreadable (issue 38).
    values = [norm for s in series for _, norm in s.norms if norm > 0 and math.isfinite(norm)]
    ticks = log_ticks(min(values), max(values)) if values else []
    figure.update_layout(barmode="group", xaxis_title="weighted layer (1 = input side)",
                         yaxis=dict(title="‖∂ class score / ∂W‖", type="log", tickvals=ticks,
                                    ticktext=[power_label(tick) for tick in ticks]),
                         height=380, margin=dict(t=30, b=10),
                         legend=dict(orientation="h", y=1.12, font=dict(size=_PROJECTOR_FONT - 2)))
    return _for_projector(figure)


# --- transfer learning ----------------------------------------------------------------------


def finetune_curves_figure(history: Sequence[dict]) -> go.Figure:
    """Training accuracy (bold) and validation accuracy (dashed) after each epoch, in percent,
    over a dotted line at chance (1 / classes: what guessing scores), so a class sees how far
    above guessing the transferred features start."""
    epochs = [row["epoch"] for row in history]
    figure = go.Figure()
    figure.add_scatter(x=epochs, y=[100 * row["train_accuracy"] for row in history], name="train",
                       mode="lines+markers", line=dict(color="#1f77b4", width=4), marker=dict(size=9))
    figure.add_scatter(x=epochs, y=[100 * row["val_accuracy"] for row in history], name="validation",
                       mode="lines+markers", line=dict(color="#1f77b4", width=2.5, dash="dash"), marker=dict(size=9))
    chance = history[-1].get("chance") if history else None
    if chance:
        figure.add_hline(y=100 * chance, line=dict(color="#7f7f7f", width=2, dash="dot"),
                         annotation_text=f"chance: {100 * chance:.0f}%", annotation_position="bottom right",
                         annotation_font_size=_PROJECTOR_FONT - 2)
    figure.update_layout(xaxis=dict(title="epoch", dtick=1), yaxis=dict(title="accuracy (%)", range=[0, 100]),
                         height=380, margin=dict(t=30, b=10), font=dict(size=_PROJECTOR_FONT),
                         legend=dict(x=1.02, y=1, xanchor="left", font=dict(size=_PROJECTOR_FONT)))
    return _for_projector(figure)
