"""Plotly figures of the four "Why shortcuts work" views: data in, ``go.Figure`` out.

Each model keeps the colour :func:`explorer.present.figures.model_colour` gives it everywhere in the
app (plain nets warm, ResNets cool, deeper darker), so the charts pair like the paper's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.paper.inside.branches import Branches
from explorer.paper.inside.landscape import Surface
from explorer.paper.inside.lesion import LesionStudy, path_length_counts
from explorer.paper.inside.responses import Responses
from explorer.present.axes import log_ticks, tick_label
from explorer.present.figures import model_colour


def _block_order(*block_lists: Sequence[str]) -> list[str]:
    """Every block name of several nets, in network order ("layer1.2" before "layer1.10" and
    "layer2.0"): plotly otherwise orders categories as it first meets them, so a ResNet-56's
    "layer1.3" would land after a ResNet-20's "layer3.2"."""
    names = {name for blocks in block_lists for name in blocks}
    return sorted(names, key=lambda name: [int(part) if part.isdigit() else part
                                           for part in re.split(r"(\d+)", name)])


def _colour(registry_name: str | None) -> str:
    try:
        return model_colour(registry_name) if registry_name else "#333333"
    except ValueError:
        return "#333333"


def responses_figure(results: Sequence[Responses], registry_names: Sequence[str | None] = ()) -> go.Figure:
    """Fig. 7: the std of each 3×3 layer's response, in layer order (top) and sorted by
    magnitude (bottom), one line per net. ``registry_names`` (e.g. "resnet56") pick the colours."""
    figure = make_subplots(rows=2, cols=1, vertical_spacing=0.12,
                           subplot_titles=("layer index (original)", "sorted by magnitude"))
    names = list(registry_names) + [None] * (len(results) - len(registry_names))
    for result, registry_name in zip(results, names):
        colour = _colour(registry_name)
        ordered = [layer.std for layer in result.layers]
        figure.add_scatter(x=list(range(1, len(ordered) + 1)), y=ordered, name=result.model, mode="lines+markers",
                           line=dict(color=colour), marker=dict(size=4), legendgroup=result.model,
                           text=[layer.layer for layer in result.layers], row=1, col=1)
        figure.add_scatter(x=list(range(1, len(ordered) + 1)), y=[layer.std for layer in result.by_magnitude()],
                           name=result.model, mode="lines", line=dict(color=colour), legendgroup=result.model,
                           showlegend=False, row=2, col=1)
    # Log scale: an untamed plain net's early responses (std ~10) would flatten the others'
    # (~0.1-1) on a linear axis, and the comparison Fig. 7 makes is between those.
    figure.update_yaxes(title_text="std (log scale)", type="log")
    figure.update_xaxes(title_text="layer index", row=2, col=1)
    figure.update_layout(height=560, margin=dict(t=40, b=10), legend=dict(x=1.02, y=1, xanchor="left"))
    return figure


def branches_figure(results: Sequence[Branches], registry_names: Sequence[str | None] = ()) -> go.Figure:
    """‖F(x)‖ / ‖x‖ per block, one bar group per net; downsampling blocks outlined."""
    figure = go.Figure()
    names = list(registry_names) + [None] * (len(results) - len(registry_names))
    for result, registry_name in zip(results, names):
        figure.add_bar(x=[b.block for b in result.blocks], y=[b.ratio for b in result.blocks], name=result.model,
                       marker=dict(color=_colour(registry_name),
                                   line=dict(width=[3 if b.downsampling else 0 for b in result.blocks],
                                             color="black")),
                       hovertext=["downsampling" if b.downsampling else "" for b in result.blocks])
    figure.update_layout(barmode="group", height=380, margin=dict(t=40, b=10), legend=dict(orientation="h", y=1.12),
                         yaxis_title="mean ‖F(x)‖ / ‖x‖", xaxis_title="block (outlined: downsampling)")
    figure.update_xaxes(categoryorder="array", categoryarray=_block_order(*([b.block for b in r.blocks] for r in results)))
    return figure


def _stage_positions(blocks: Sequence[str]) -> tuple[list[float], dict[str, float]]:
    """Each block's place on a shared axis where every stage has the same width: block i of a
    stage with n blocks sits at ``stage + i / n``. A ResNet-20's three blocks a stage and a
    ResNet-56's nine then line up stage by stage, instead of the shallow net's line zig-zagging
    across slots only the deep net has. Returns the positions and each stage's centre."""
    stages: dict[str, list[str]] = {}
    for block in blocks:
        stages.setdefault(block.rsplit(".", 1)[0], []).append(block)
    order = _block_order(list(stages))
    positions = []
    for block in blocks:
        stage = block.rsplit(".", 1)[0]
        positions.append(order.index(stage) + 1 + stages[stage].index(block) / len(stages[stage]))
    return positions, {stage: index + 1.5 for index, stage in enumerate(order)}


def lesion_blocks_figure(studies: Sequence[LesionStudy], registry_names: Sequence[str | None] = ()) -> go.Figure:
    """Error with one block removed (Veit et al. Fig. 3a), per block, each stage drawn the same
    width whatever the depth; dashed: nothing removed (named in the legend, where the labels of
    nets with close errors cannot print over each other). Downsampling blocks are diamonds."""
    figure = go.Figure()
    names = list(registry_names) + [None] * (len(studies) - len(registry_names))
    centres: dict[str, float] = {}
    for study, registry_name in zip(studies, names):
        colour = _colour(registry_name)
        blocks = [b.block for b in study.blocks]
        xs, stage_centres = _stage_positions(blocks)
        centres.update(stage_centres)
        figure.add_scatter(x=xs, y=[100 * b.error for b in study.blocks], name=study.model, mode="lines+markers",
                           line=dict(color=colour), legendgroup=study.model, text=blocks,
                           hovertemplate="%{text} removed: %{y:.1f}% error<extra>" + study.model + "</extra>",
                           marker=dict(size=[12 if b.downsampling else 7 for b in study.blocks],
                                       symbol=["diamond" if b.downsampling else "circle" for b in study.blocks]))
        if xs:
            figure.add_scatter(x=[1, max(centres.values()) + 0.5], y=[100 * study.baseline_error] * 2, mode="lines",
                               name=f"{study.model}, nothing removed: {100 * study.baseline_error:.1f}%",
                               line=dict(color=colour, dash="dash", width=1.5), legendgroup=study.model,
                               hoverinfo="skip")
    figure.update_layout(height=420, margin=dict(t=40, b=10), legend=dict(orientation="h", y=1.2),
                         yaxis_title="top-1 error (%)", xaxis_title="block removed, stage by stage (◆ downsampling)")
    figure.update_xaxes(tickvals=list(centres.values()), ticktext=list(centres), range=[0.9, max(centres.values(), default=1.5) + 0.55])
    return figure


def lesion_random_figure(studies: Sequence[LesionStudy], registry_names: Sequence[str | None] = ()) -> go.Figure:
    """Error vs the number k of random blocks removed (Veit et al. Fig. 5a): mean and min–max."""
    figure = go.Figure()
    names = list(registry_names) + [None] * (len(studies) - len(registry_names))
    for study, registry_name in zip(studies, names):
        ks = [0] + [r.removed for r in study.random]
        mean = [study.baseline_error] + [r.error_mean for r in study.random]
        low = [study.baseline_error] + [r.error_min for r in study.random]
        high = [study.baseline_error] + [r.error_max for r in study.random]
        figure.add_scatter(x=ks, y=[100 * e for e in mean], name=study.model, mode="lines+markers",
                           line=dict(color=_colour(registry_name)),
                           error_y=dict(type="data", symmetric=False, array=[100 * (h - m) for h, m in zip(high, mean)],
                                        arrayminus=[100 * (m - lo) for m, lo in zip(mean, low)]))
    figure.update_layout(height=380, margin=dict(t=40, b=10), legend=dict(orientation="h", y=1.12),
                         yaxis_title="top-1 error (%)", xaxis_title="blocks removed at random (k)")
    return figure


def path_length_figure(n: int) -> go.Figure:
    """How many of an n-block ResNet's 2ⁿ paths have each length (Veit et al. Fig. 6a)."""
    counts = path_length_counts(n)
    figure = go.Figure(go.Bar(x=list(range(n + 1)), y=counts, marker_color="#1f77b4"))
    figure.update_layout(height=320, margin=dict(t=40, b=10), xaxis_title="path length (branches passed)",
                         yaxis_title="number of paths", title=f"{n} blocks: 2^{n} = {2 ** n:,} paths")
    return figure


_FLOOR = 1e-6  # a loss of 0 drawn at 10⁻⁶ on a log axis


def landscape_lines_figure(surfaces: Sequence[Surface], registry_names: Sequence[str | None] = ()) -> go.Figure:
    """The 1-D slices (β = 0) of several surfaces on one axis (Li et al. Fig. 3), on a log axis
    as the surfaces, labelled in full (plotly's own minor labels print 0.5 as "5")."""
    figure = go.Figure()
    names = list(registry_names) + [None] * (len(surfaces) - len(registry_names))
    for surface, registry_name in zip(surfaces, names):
        figure.add_scatter(x=list(surface.alphas), y=list(surface.line()), name=surface.model, mode="lines",
                           line=dict(color=_colour(registry_name), width=3))
    values = [max(value, _FLOOR) for surface in surfaces for value in surface.line()]
    ticks = log_ticks(min(values), max(values)) if values else []
    figure.update_layout(height=360, margin=dict(t=40, b=10), legend=dict(orientation="h", y=1.12),
                         xaxis_title="α (filter-normalised direction)",
                         yaxis=dict(title="loss (log)", type="log", tickvals=ticks,
                                    ticktext=[tick_label(t) for t in ticks]))
    return figure


def _log_loss_scale(surfaces: Sequence[Surface]) -> tuple[float, float, list[float], list[str]]:
    """One log10 scale for all ``surfaces``: (lowest, highest, tick positions, tick labels).

    The shipped surfaces' losses span five decades (0.38 in ResNet-20's basin, 1.6·10⁴ at a
    plain-56 corner): on a linear axis either the basin is flat or the rim is cut off into
    walls. On log10 the whole surface shows, and equal heights still mean equal losses."""
    values = [max(value, _FLOOR) for surface in surfaces for row in surface.loss for value in row]
    ticks = log_ticks(min(values), max(values))
    return (math.log10(min(values)), math.log10(max(values)), [math.log10(t) for t in ticks],
            [tick_label(t) for t in ticks])


def _loss_by_beta(surface: Surface) -> list[list[float]]:
    # plotly draws z[j][i] at (x[i], y[j]): transpose so that loss[i][j] sits at (α_i, β_j).
    return [list(values) for values in zip(*surface.loss)]


def _log_loss_by_beta(surface: Surface) -> list[list[float]]:
    return [[math.log10(max(value, _FLOOR)) for value in row] for row in _loss_by_beta(surface)]


def landscape_surfaces_figure(surfaces: Sequence[Surface], columns: int = 2) -> go.Figure:
    """Each surface as a 3-D plot, ``columns`` to a row (wide enough to read a basin), on the
    same axes and one log-scaled colour and height scale (Li et al. Fig. 5)."""
    if not surfaces:
        raise ValueError("Give at least one surface to draw.")
    lowest, highest, ticks, labels = _log_loss_scale(surfaces)
    columns = min(columns, len(surfaces))
    rows = math.ceil(len(surfaces) / columns)
    cells = [{"type": "surface"}] * len(surfaces) + [None] * (rows * columns - len(surfaces))  # no empty box
    specs = [cells[row * columns:(row + 1) * columns] for row in range(rows)]
    figure = make_subplots(rows=rows, cols=columns, specs=specs, subplot_titles=[s.model for s in surfaces],
                           vertical_spacing=0.04, horizontal_spacing=0.02)
    for index, surface in enumerate(surfaces):
        figure.add_trace(go.Surface(
            x=list(surface.alphas), y=list(surface.betas), z=_log_loss_by_beta(surface), colorscale="Viridis",
            cmin=lowest, cmax=highest, showscale=index == 0, customdata=_loss_by_beta(surface),
            colorbar=dict(title="loss", tickvals=ticks, ticktext=labels, tickfont=dict(size=16)),
            hovertemplate="α %{x:.2f}, β %{y:.2f}<br>loss %{customdata:.3g}<extra>" + surface.model + "</extra>"),
            row=index // columns + 1, col=index % columns + 1)
    # One fixed box for every net: with plotly's "auto" aspect each scene is scaled to its own
    # data, and a net whose losses span a different range came out flattened (issue 38: plain-56
    # looked like the smoothest surface). A camera a little farther back keeps the z labels inside.
    figure.update_scenes(zaxis=dict(range=[lowest, highest], title="loss (log)", tickvals=ticks, ticktext=labels),
                         xaxis_title="α", yaxis_title="β", aspectmode="manual", aspectratio=dict(x=1, y=1, z=0.8),
                         camera=dict(eye=dict(x=1.6, y=1.6, z=1.0)))
    figure.update_annotations(font_size=20)  # the subplot titles
    figure.update_layout(height=520 * rows, margin=dict(t=40, b=10, l=10, r=10))
    return figure


def landscape_contours_figure(surfaces: Sequence[Surface]) -> go.Figure:
    """The same surfaces seen from above: contour lines on the same log-scaled colours, one
    panel per net in a row (Li et al. Fig. 5's 2-D plots)."""
    if not surfaces:
        raise ValueError("Give at least one surface to draw.")
    lowest, highest, ticks, labels = _log_loss_scale(surfaces)
    figure = make_subplots(rows=1, cols=len(surfaces), subplot_titles=[s.model for s in surfaces],
                           horizontal_spacing=0.04)
    for column, surface in enumerate(surfaces, start=1):
        figure.add_trace(go.Contour(
            x=list(surface.alphas), y=list(surface.betas), z=_log_loss_by_beta(surface), colorscale="Viridis",
            zmin=lowest, zmax=highest, line=dict(width=2), showscale=column == len(surfaces),
            contours=dict(coloring="lines", start=lowest, end=highest, size=(highest - lowest) / 20 or 1),
            colorbar=dict(title="loss", tickvals=ticks, ticktext=labels), customdata=_loss_by_beta(surface),
            hovertemplate="α %{x:.2f}, β %{y:.2f}<br>loss %{customdata:.3g}<extra>" + surface.model + "</extra>"),
            row=1, col=column)
    figure.update_xaxes(title_text="α")
    figure.update_yaxes(title_text="β", col=1)
    figure.update_annotations(font_size=20)
    figure.update_layout(height=380, margin=dict(t=40, b=10))
    return figure
