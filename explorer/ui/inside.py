"""The "Why shortcuts work" page's computations, bounded and scheduled (issue 37: they ran in
the page thread, outside the scheduler and unbounded; 31² grid points × 5,000 images × 4 nets
would have held a core, and the page, for hours).

Each view is computed once per server for a (view, net, data, images, options) choice and
shared by every session (the results are frozen dataclasses; every computation builds its own
model, never a shared one). What the server does not have yet is computed by this session's
background job (:class:`explorer.server.jobs.ComputeJob`) through the server's scheduler, like a
training run: it waits its turn, counts as the session's one job, shows its progress with a
Stop button, and stops at the server's time limit, while the page stays free (a fragment
polls the job). The sizes a user picks are declared ranges: settings.PROBE_IMAGES for the
images, settings.LANDSCAPE_GRID and LANDSCAPE_SPAN for a surface.

Until a session presses a view's button, the view shows the results precomputed for the
shipped checkpoints on the shipped evaluation images (explorer.paper.inside.precomputed; issue 38: a
fresh laptop has no CIFAR-10 to compute them on), and the button says beforehand how long
computing them here takes (explorer.ui.inside_choices, explorer.server.inside_estimates)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import streamlit as st

from explorer.models import get_model_spec
from explorer.paper.inside.branches import branch_ratios
from explorer.paper.inside.defaults import PAGE_SURFACE_GRID, PAGE_SURFACE_IMAGES
from explorer.paper.inside.landscape import loss_surface
from explorer.paper.inside.lesion import lesion_study
from explorer.paper.inside.precomputed import VIEWS as PRECOMPUTED_VIEWS
from explorer.paper.inside.precomputed import results_about, results_dir, shipped_results
from explorer.paper.inside.probes import ProbeData, load_probe, load_subject
from explorer.paper.inside.responses import layer_responses
from explorer.present import inside_figures
from explorer.server.compute_jobs import ComputeJob
from explorer.settings import LANDSCAPE_GRID, LANDSCAPE_SPAN, PROBE_IMAGES, LimitError
from explorer.store.checkpoints import CheckpointError, read_manifest
from explorer.store.recent import RecentResults
from explorer.ui import inside_choices as choices
from explorer.ui.common import escaped
from explorer.ui.job_panel import (
    PENDING_KEY,
    inside_job_slot,
    job_view,
    limit_notice,
    pending_offer,
    start_job,
    stop_button,
)

VIEWS = {"responses": layer_responses, "branches": branch_ratios, "lesion": lesion_study}
TITLES = {"responses": "layer responses", "branches": "branch ratios", "lesion": "lesion study",
          "landscape": "loss surfaces"}
PROGRESS_REFRESH_S = 1.0  # the progress bar's redraw while a view computes


def _residual(model: str) -> bool:
    return get_model_spec(model).residual


def shipped_nets() -> dict[str, str]:
    """checkpoint key -> registry name of every shipped CIFAR checkpoint (plain first, shallow first)."""
    try:
        entries = read_manifest()
    except CheckpointError as error:
        st.error(f"The shipped checkpoints cannot be read: {escaped(error)}")
        return {}
    trained = [entry for entry in entries.values() if entry.kind == "trained"]
    return {entry.key: entry.model for entry in sorted(trained, key=lambda e: (_residual(e.model), e.key))}


def is_residual(model: str) -> bool:
    return _residual(model)


@dataclass(frozen=True)
class Request:
    """One view asked for: which nets, on which images and how many, with which options (a
    surface's grid and span). The job that computes it carries it as its key."""

    view: str
    names: tuple[str, ...]
    data: str
    images: int
    options: tuple = ()

    def key(self, name: str) -> tuple:
        return (self.view, name, self.data, self.images, self.options)


MAX_RESULTS = 64
PROBES_KEPT = 4


class ViewResults:
    """The views computed on this server, shared by every session: results by Request.key,
    the oldest first out past ``max_results``; how long each took here (its images' loading
    included); the images a net was probed with, reused by its other views (at most
    ``probes_kept``: one per shipped net; 5,000 normalised CIFAR images are 61 MB); and the
    precomputed results read from the shipped manifest."""

    def __init__(self, max_results: int = MAX_RESULTS, probes_kept: int = PROBES_KEPT):
        self._results = RecentResults(max_results)
        self._probes = RecentResults(probes_kept)
        self._seconds: dict[tuple, float] = {}
        self._shipped: dict[tuple, dict] = {}  # (view, manifest, its mtime) -> its precomputed results
        self._lock = threading.Lock()

    def result(self, request: Request, name: str, progress):
        """One net's view: the server's, else computed now (in the job's thread) and kept."""
        return self._results.get_or_compute(request.key(name), lambda: self._timed(request, name, progress))

    def known(self, request: Request) -> dict[str, object]:
        known = {name: self._results.peek(request.key(name)) for name in request.names}
        return {name: result for name, result in known.items() if result is not None}

    def seconds(self, request: Request) -> dict[str, float]:
        """How long each net's result took here (0 for one not computed here)."""
        with self._lock:
            return {name: self._seconds.get(request.key(name), 0.0) for name in request.names}

    def precomputed(self, view: str, path, stamp: int) -> dict:
        """The shipped results of ``view`` in the manifest at ``path`` (read once per ``stamp``, its mtime)."""
        key = (view, str(path), stamp)
        with self._lock:
            found = self._shipped.get(key)
        if found is None:
            found = shipped_results(view)
            with self._lock:
                self._shipped[key] = found
        return found

    def _timed(self, request: Request, name: str, progress):
        """Timed: the page compares it with its estimate."""
        started = time.perf_counter()
        result = _computed(request, name, progress, self._probes)
        with self._lock:
            self._seconds[request.key(name)] = time.perf_counter() - started
            for key in [key for key in self._seconds if key not in self._results and key != request.key(name)]:
                del self._seconds[key]  # results let go of (max_results), their times too
        return result


@st.cache_resource(show_spinner=False)
def view_results_store() -> ViewResults:
    """This server's one :class:`ViewResults`."""
    return ViewResults()


def _computed(request: Request, name: str, progress, probes: RecentResults):
    subject = load_subject(name)
    probe = probes.get_or_compute((name, request.data, request.images),
                                  lambda: load_probe(subject, request.data, request.images))
    if request.view == "landscape":
        grid, span = request.options
        return loss_surface(subject, probe, grid=grid, span=span, progress=progress)
    return VIEWS[request.view](subject, probe, progress=progress)


def compute_job(request: Request, names: list[str], store: ViewResults) -> ComputeJob:
    """The job that computes ``request`` for ``names`` and leaves the results to ``store``."""
    def task(name: str):
        return name, lambda progress: store.result(request, name, progress)
    return ComputeJob(request.view, [task(name) for name in names], key=request,
                      kind=f"the {TITLES[request.view]} computation (Why shortcuts work)")


def _checked(view: str, images: int, options: tuple) -> tuple[int, tuple]:
    images = PROBE_IMAGES.check(images, "the number of images")
    if view == "landscape":
        grid, span = options
        options = (LANDSCAPE_GRID.check(grid, "the grid (points per axis)"),
                   LANDSCAPE_SPAN.check(span, "the span"))
    return images, tuple(options)


def view_results(view: str, label: str, names: list[str], data: str, images: int, options: tuple = (), *,
                 source: ProbeData | None = None, where=st) -> list | None:
    """The view's estimate and button (in ``where``) and its results for ``names``: until this
    session presses the button, the precomputed ones shipped with the app (at once, on any
    machine); then those for the current choice of images and options, at once when the
    server has them, else from the background job the press started, whose progress and Stop
    are drawn here until it ends (the page then reruns). None while there is nothing to draw."""
    try:
        images, options = _checked(view, images, options)
    except LimitError as error:
        st.error(escaped(error))
        return None
    request = Request(view, tuple(names), data, images, options)
    store = view_results_store()
    shipped = _precomputed(view, names, store)
    estimate = choices.estimate_caption(view, names, source, images, options, where) if source else None
    slot = inside_job_slot()
    requested = f"inside.requested.{view}"
    again = f"Re{label[0].lower()}{label[1:]} on your data"  # "Recompute the responses on your data"
    if where.button(again if shipped else label, key=f"inside.go_{view}"):
        st.session_state[requested] = True
        st.session_state[f"inside.estimate.{view}"] = estimate
        missing = [name for name in request.names if name not in store.known(request)]
        job = slot.job
        if missing and not (job is not None and job.running and getattr(job, "key", None) == request):
            start_job(slot, compute_job(request, missing, store))  # reruns the page (or says why not)
    pending = st.session_state.get(PENDING_KEY)
    if getattr(pending, "slot", None) == slot.name and getattr(pending.job, "what", None) == view:
        pending_offer(slot)
    if not st.session_state.get(requested):
        if shipped:
            choices.precomputed_caption(results_about(view, list(shipped)), again)
        return list(shipped.values()) or None
    job = slot.job
    ours = isinstance(job, ComputeJob) and job.what == view
    if ours and slot.running:
        _progress(slot, view)
        return None
    shown = _gathered(request, store, job.snapshot() if ours and job.key == request else None)
    choices.computed_caption(shown or [], store.seconds(request), st.session_state.get(f"inside.estimate.{view}"))
    return shown


def _precomputed(view: str, names: list[str], store: ViewResults) -> dict[str, object]:
    """The shipped results of ``view`` for ``names``, in that order (read once per manifest change)."""
    if view not in PRECOMPUTED_VIEWS:
        return {}
    path = results_dir() / "manifest.json"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    found = store.precomputed(view, path, stamp)
    return {name: found[name] for name in names if name in found}


def _gathered(request: Request, store: ViewResults, snapshot) -> list | None:
    """What is known of ``request`` (the server's store, and the session's last job for it),
    with a message for each net that could not be computed and for those still missing."""
    results = store.known(request)
    errors: dict[str, str] = {}
    if snapshot is not None:
        results = {**snapshot.results, **results}
        errors = {name: message for name, message in snapshot.errors.items() if name not in results}
        limit_notice(snapshot)  # stopped by the server's time limit
        if snapshot.error:
            st.error(f"The computation failed: {escaped(snapshot.error)}")
    for name, message in errors.items():
        st.error(f"{escaped(name)}: {escaped(message)}")
    missing = [name for name in request.names if name not in results and name not in errors]
    if missing:
        st.info(f"Not computed for this choice yet: {escaped(', '.join(missing))}. Press the button above.")
    shown = [results[name] for name in request.names if name in results]
    return shown if shown or not missing else None


def _progress(slot, view: str) -> None:
    """The job's progress, redrawn every second while it runs, and its Stop button."""
    def progress() -> None:
        job = slot.job
        if job is not None:
            snapshot = job.snapshot()
            st.progress(snapshot.fraction, text=snapshot.progress_text())

    progress.__name__ = progress.__qualname__ = f"inside_{view}_progress"  # the fragment's identity
    job_view(slot, progress, every_s=PROGRESS_REFRESH_S)
    stop_button(slot, st, key=f"inside.stop_{view}", offer=False)


def surface_section(shipped: list, names: list[str], data: str, source: ProbeData, registry: dict[str, str]) -> None:
    """The precomputed surfaces at once, and a surface of one's own, computed as a job."""
    st.caption("The loss around the trained weights along two random filter-normalised directions (Li et al. "
               "2018; BN parameters left out, BN in eval mode). Same axes and colour scale for every net; heights and "
               "colours are on a log scale: the precomputed surfaces span five decades (0.38 in ResNet-20's basin, "
               "1.6·10⁴ at a plain-56 corner).")
    if shipped:
        st.plotly_chart(inside_figures.landscape_surfaces_figure(shipped), width="stretch")
        st.plotly_chart(inside_figures.landscape_contours_figure(shipped), width="stretch")
        st.plotly_chart(inside_figures.landscape_lines_figure(shipped, [registry.get(s.model) for s in shipped]), width="stretch")
        st.caption("Precomputed: " + "; ".join(f"{s.model} on {s.images:,} images, {len(s.alphas)}×{len(s.betas)}"
                                               for s in shipped) + " of each checkpoint's own held-out validation "
                   "images (pretrained/landscapes/manifest.json).")
    else:
        st.info("No precomputed surface for these nets: compute one below.")
    left, middle, right, button = st.columns(4)
    # Odd grids only, up to the shipped surfaces' 31 (within settings.LANDSCAPE_GRID): β = 0 is on the grid.
    grid = left.slider("Grid points per axis", 3, min(31, int(LANDSCAPE_GRID.high)), PAGE_SURFACE_GRID, 2,
                       key="inside.grid")
    span = middle.slider("Span (±)", 0.1, 2.0, 1.0, 0.1, key="inside.span")
    images = choices.images_box(right, source, default=PAGE_SURFACE_IMAGES, key="inside.surface_images",
                                label="Images for the surface")
    own = view_results("landscape", "Compute surfaces", names, data, images, (int(grid), float(span)),
                       source=source, where=button)
    if own:
        st.plotly_chart(inside_figures.landscape_surfaces_figure(own), width="stretch")
        st.plotly_chart(inside_figures.landscape_contours_figure(own), width="stretch")
