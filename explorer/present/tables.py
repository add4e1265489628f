"""Display records for the app's tables: plain dicts, one metric per column, readable on a projector.

Conventions, so every table reads the same from the back of a room: a missing value is "—"
(never "None"), counts carry thousands separators, and a column holds one metric in one unit
(top-1 *error* everywhere, as the paper's tables print it, never error beside accuracy).
"""

from __future__ import annotations

import re

from explorer.models import get_model_spec
from explorer.paper.speed import SpeedRow
from explorer.paper.table1 import Analysis, ZooRow
from explorer.store import weights
from explorer.store.checkpoints import CheckpointError, best_checkpoints, trained_label

MISSING = "—"


def shown(value, digits: int | None = None) -> str:
    """``value`` as text, rounded to ``digits``, or "—" when there is none (a column that can
    miss a value is all text, so the table never mixes numbers with dashes)."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    return f"{round(value, digits) if digits is not None else value:,}"


def thousands(count: int | None) -> str:
    return MISSING if count is None else f"{count:,}"


def row_height(rows: int, *, header: int = 1, pixels_per_row: int = 35) -> int:
    """A dataframe height that shows every row without an inner scrollbar."""
    return (rows + header) * pixels_per_row + 3


def weights_label(name: str) -> str:
    """How a model's weights are labelled everywhere: "ImageNet weights" or why it is untrained."""
    status = weights.weights_status(get_model_spec(name))
    if status.present:
        return "ImageNet weights"
    return "untrained: weights not on this machine" if status.filename else "untrained: none published"


def weights_cell(name: str) -> str:
    """The zoo table's short form of :func:`weights_label`, narrow enough for a projector's table."""
    status = weights.weights_status(get_model_spec(name))
    return "ImageNet ✓" if status.present else ("not downloaded" if status.filename else "none published")


def model_option(name: str) -> str:
    """A model picker's line: "resnet50 · ImageNet weights"."""
    return f"{name} · {weights_label(name)}"


def zoo_table(rows: list[ZooRow]) -> list[dict]:
    """The ImageNet zoo against the paper: cost, and top-1 error of torchvision's weights and of the paper."""
    return [{
        "model": row.name,
        "depth": row.depth,
        "block": row.block,
        "params (M)": round(row.params / 1e6, 2),
        "GMACs (measured)": round(row.gmacs, 2),
        "GMACs (paper)": shown(row.paper_gmacs),
        "top-1 err % (torchvision, 1 crop)": shown(None if row.imagenet_top1 is None else 100 - row.imagenet_top1, 2),
        "top-1 err % (paper, 10 crops)": shown(row.paper_top1_error),
        "weights here": weights_cell(row.name),
    } for row in rows]


def cifar_zoo_table(rows: list[ZooRow]) -> list[dict]:
    """The §4.2 nets against Table 6 (option A shortcuts, 16/32/64 filters, 32×32 input),
    with the validation error of this project's own checkpoints (from the manifest)."""
    try:
        trained = best_checkpoints()
    except CheckpointError:
        trained = {}  # a broken manifest must not take the architecture page down
    return [{
        "model": row.name,
        "depth": row.depth,
        "shortcuts": "identity / zero-padding (A)" if get_model_spec(row.name).residual else "none (plain)",
        "params (M)": round(row.params / 1e6, 3),
        "params (M, Table 6)": shown(row.paper_params_m),
        "MMACs (32×32)": round(row.gmacs * 1e3, 1),
        "test error % (Table 6)": shown(row.paper_top1_error),
        "validation error here (pretrained/)": shown(trained_label(trained.get(row.name))),
    } for row in rows]


def stage_table(result: Analysis) -> list[dict]:
    return [{"layer name": r.stage, "output size": r.output_size, "blocks": r.blocks,
             "params": thousands(r.params), "GMACs": round(r.macs / 1e9, 3)} for r in result.stages]


def layer_table(result: Analysis) -> list[dict]:
    return [{"layer": r.name, "type": r.kind, "output shape": "×".join(map(str, r.output_shape)),
             "params": thousands(r.params), "MMACs": f"{r.macs / 1e6:,.2f}"} for r in result.layers]


def speed_table(rows: list[SpeedRow]) -> list[dict]:
    return [{
        "model": r.name, "device": r.device,
        "weights": "ImageNet" if r.trained else
                   "untrained (random init" + (", denormals flushed)" if r.denormals_flushed else ")"),
        "load (s)": round(r.load_s, 2), "weights (MB)": round(r.weights_mb, 1),
        "peak GPU memory (MB)": shown(r.peak_memory_mb, 1),
        # Numbers, not text: the page sorts and plots them (st.dataframe adds the separators).
        "batch-1 latency (ms)": round(r.latency_ms, 1),
        f"batch-{r.batch_size} throughput (img/s)": round(r.throughput, 1),
    } for r in rows]


def paper_table_markdown(table: dict[str, list[str]]) -> dict[str, list[str]]:
    """Table 1 as the paper typesets it, for a markdown table (``st.table``): each stacked
    block ``[1×1, 64; 3×3, 64; 1×1, 256] × 3`` becomes a bracketed column of its layers with
    "× 3" beside it, and each step of a stage ("3×3 max pool, stride 2 → […]") its own line,
    so five depths fit the page's width without a scrollbar."""
    return {column: [_stacked_blocks(cell) for cell in cells] for column, cells in table.items()}


def _stacked_blocks(cell: str) -> str:
    lines = []
    for step in cell.split(" → "):
        stacked = re.fullmatch(r"\[(.+)\] × (\d+)", step)
        if stacked is None:
            lines.append(step)
            continue
        layers = r" \\ ".join(rf"\text{{{layer}}}" for layer in stacked.group(1).split("; "))
        lines.append(rf"$\begin{{bmatrix}}{layers}\end{{bmatrix}} \times {stacked.group(2)}$")
    return "  \n".join(lines)  # a markdown line break inside the cell
