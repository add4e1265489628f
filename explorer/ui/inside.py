"""The "Why shortcuts work" page's computations: each view computed once per server for a
(model, data, images) choice, with a progress bar, and shared by every session (the results
are frozen dataclasses; every computation builds its own model, never a shared one)."""

from __future__ import annotations

import threading
import time

import streamlit as st

from explorer.checkpoints import CheckpointError, read_manifest
from explorer.inside.branches import branch_ratios
from explorer.inside.data import InsideError, load_probe, load_subject, progress_line
from explorer.inside.landscape import loss_surface
from explorer.inside.lesion import lesion_study
from explorer.inside.responses import layer_responses
from explorer.models import get_model_spec

VIEWS = {"responses": layer_responses, "branches": branch_ratios, "lesion": lesion_study}


def _residual(model: str) -> bool:
    return get_model_spec(model).residual


def shipped_nets() -> dict[str, str]:
    """checkpoint key -> registry name of every shipped CIFAR checkpoint (plain first, shallow first)."""
    try:
        entries = read_manifest()
    except CheckpointError as error:
        st.error(f"The shipped checkpoints cannot be read: {error}")
        return {}
    trained = [entry for entry in entries.values() if entry.kind == "trained"]
    return {entry.key: entry.model for entry in sorted(trained, key=lambda e: (_residual(e.model), e.key))}


# Results by (view, model, data, images, options), for every session of this server. A plain
# dict rather than st.cache_resource: the computation reports progress into the caller's bar,
# which a cached function must not touch. The oldest result goes first past MAX_RESULTS.
MAX_RESULTS = 64
_RESULTS: dict[tuple, object] = {}
_RESULTS_LOCK = threading.Lock()


def _remembered(key: tuple, compute):
    with _RESULTS_LOCK:
        if key in _RESULTS:
            return _RESULTS[key]
    result = compute()
    with _RESULTS_LOCK:
        _RESULTS[key] = result
        while len(_RESULTS) > MAX_RESULTS:
            _RESULTS.pop(next(iter(_RESULTS)))
    return result


def _computed(view: str, name: str, data: str, images: int, options: tuple, progress):
    def compute():
        subject = load_subject(name)
        # The images once per (net, data, count): every view of that net runs on the same probe.
        probe = _remembered(("probe", name, data, images), lambda: load_probe(subject, data, images))
        if view == "landscape":
            grid, span = options
            return loss_surface(subject, probe, grid=grid, span=span, progress=progress)
        return VIEWS[view](subject, probe, progress=progress)

    return _remembered((view, name, data, images, options), compute)


def computed(view: str, names: list[str], data: str, images: int, options: tuple = ()) -> list:
    """``view`` for each of ``names``; a model that cannot be used gets a message, not a traceback."""
    bar = st.progress(0.0, text=f"{view}: starting…")
    results = []
    first_report: dict[int, tuple[float, float]] = {}  # net index -> (time, fraction) of its first report
    for index, name in enumerate(names):
        def progress(fraction: float, index=index, name=name) -> None:
            started, started_at = first_report.setdefault(index, (time.perf_counter(), fraction))
            bar.progress(min(1.0, (index + fraction) / len(names)), text=progress_line(
                view, name, index + 1, len(names), fraction, time.perf_counter() - started, started_at))
        try:
            results.append(_computed(view, name, data, images, options, progress))
        except (InsideError, ValueError) as error:
            st.error(f"{name}: {error}")
    bar.empty()
    return results


def is_residual(model: str) -> bool:
    return _residual(model)


def requested(view: str, label: str) -> bool:
    """True once this session pressed the view's button (the result then stays on screen)."""
    key = f"inside.requested.{view}"
    if st.button(label, key=f"inside.go_{view}"):
        st.session_state[key] = True
    return bool(st.session_state.get(key))


def surface_section(shipped: list, chosen: list[str], data: str, images: int, registry: dict[str, str]) -> None:
    """The precomputed surfaces at once, and a surface of one's own with a progress bar."""
    from explorer.inside import figures

    st.caption("The loss around the trained weights along two random filter-normalised directions (Li et al. "
               "2018; BN parameters left out, BN in eval mode). Same axes and colour scale for every net; heights and "
               "colours are on a log scale: the precomputed surfaces span five decades (0.38 in ResNet-20's basin, "
               "1.6·10⁴ at a plain-56 corner).")
    if shipped:
        st.plotly_chart(figures.landscape_surfaces_figure(shipped), width="stretch")
        st.plotly_chart(figures.landscape_contours_figure(shipped), width="stretch")
        st.plotly_chart(figures.landscape_lines_figure(shipped, [registry.get(s.model) for s in shipped]), width="stretch")
        st.caption("Precomputed: " + "; ".join(f"{s.model} on {s.images:,} images, {len(s.alphas)}×{len(s.betas)}"
                                               for s in shipped) + " (pretrained/landscapes/manifest.json).")
    else:
        st.info("No precomputed surface for these nets: compute one below.")
    left, middle, right = st.columns(3)
    grid = left.slider("Grid points per axis", 3, 31, 11, 2, key="inside.grid")
    span = middle.slider("Span (±)", 0.1, 2.0, 1.0, 0.1, key="inside.span")
    if right.button("Compute surfaces", key="inside.go_landscape"):
        own = computed("landscape", chosen, data, images, (int(grid), float(span)))
        if own:
            st.plotly_chart(figures.landscape_surfaces_figure(own), width="stretch")
            st.plotly_chart(figures.landscape_contours_figure(own), width="stretch")
