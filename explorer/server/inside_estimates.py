"""How long a "Why shortcuts work" view takes on this machine, said before its button is
pressed (issue 38: the lesion study took 585 s and a loss surface over 25 min, unannounced).

One forward pass of each net over a few images is timed once per server (and again after
:data:`RECALIBRATE_S`, as the machine's load changes); a view's time is that pace times the
number of forward passes the view makes over its images, counted from its own plan:

* responses: one pass, with a hook summing every 3×3 layer's output in float64
  (:data:`VIEW_FACTOR`, measured beside a plain pass on the 2-core CPU);
* branches: one pass, with a norm per block;
* lesion: :func:`explorer.paper.inside.lesion.lesion_passes`, the trie's blocks over a pass's;
* landscape: grid² points, each a pass through ``functional_call`` and ``vmap``.

On the 2-core Xeon, ResNet-56 takes about 2.6 ms an image when the machine is quiet and five
times that when three other programs share it: hence a calibration here and now, not a table.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

import torch

from explorer.data import SourceKind, source_kind
from explorer.paper.inside import probes
from explorer.paper.inside.defaults import DEFAULT_DRAWS
from explorer.paper.inside.lesion import lesion_passes
from explorer.server.slots import threads_per_job, usable_cores

CALIBRATION_IMAGES = 32  # images of the timed pass (after one untimed pass of the same shape)
RECALIBRATE_S = 600.0  # a calibration older than this is measured again
# Each view's pass over a plain forward pass's time, measured side by side on ResNet-56 and 500
# images (2-core Xeon): responses 1.75-1.9× (a float64 copy of every 3×3 layer's output),
# branches 1.1-1.2×, a surface point 1.9× an image (functional_call and vmap's grouped convs).
VIEW_FACTOR = {"responses": 1.8, "branches": 1.2, "lesion": 1.0, "landscape": 2.0}
DECODE_S = 0.3e-3  # decoding one shipped JPEG (2,000 in 0.5 s); a folder's first decode is 50,000 of them

Clock = Callable[[], float]
_PACES: dict[str, tuple[float, float]] = {}  # checkpoint -> (seconds per image of a pass, when measured)
_PASSES: dict[tuple, float] = {}  # (checkpoint, draws, seed, batches) -> passes of its lesion study
_LOCK = threading.Lock()


@torch.no_grad()
def seconds_per_image(name: str, clock: Clock = time.perf_counter) -> float:
    """One forward pass's seconds per image of checkpoint ``name`` here, measured once per
    :data:`RECALIBRATE_S` (about 0.2 s for ResNet-56), with as many threads as a job gets
    (explorer.server.slots.threads_per_job: the cores but one). On the 2-core Xeon beside another
    busy program a pass took 8× as long with 2 threads as with 1 (OpenMP's spin-waits)."""
    with _LOCK:
        known = _PACES.get(name)
    if known is not None and clock() - known[1] < RECALIBRATE_S:
        return known[0]
    subject = probes.load_subject(name)
    images = torch.randn(CALIBRATION_IMAGES, 3, subject.image_size, subject.image_size)
    before = torch.get_num_threads()
    torch.set_num_threads(threads_per_job(1, usable_cores()))  # this thread's own team only
    try:
        subject.model(images)  # the first pass of a shape builds its kernels' plans: not the pace
        started = clock()
        subject.model(images)
        pace = max(clock() - started, 1e-9) / CALIBRATION_IMAGES
    finally:
        torch.set_num_threads(before)
    with _LOCK:
        _PACES[name] = (pace, clock())
    return pace


def lesion_passes_of(name: str, draws: int, seed: int, images: int) -> float:
    """Forward passes of ``name``'s lesion study over ``images`` images (cached: it needs the net)."""
    batches = math.ceil(images / probes.BATCH_SIZE)
    key = (name, draws, seed, batches)
    with _LOCK:
        if key in _PASSES:
            return _PASSES[key]
    passes = lesion_passes(probes.load_subject(name), draws, seed, batches)
    with _LOCK:
        _PASSES[key] = passes
    return passes


def view_passes(view: str, name: str, images: int, options: tuple = ()) -> float:
    """Image-passes of ``view`` for one net: forward passes × images × the view's factor."""
    if view == "lesion":
        draws, seed = (tuple(options) + (DEFAULT_DRAWS, 0))[:2] if options else (DEFAULT_DRAWS, 0)
        return lesion_passes_of(name, int(draws), int(seed), images) * images
    if view == "landscape":
        grid = int(options[0])
        return grid * grid * images * VIEW_FACTOR["landscape"]
    return images * VIEW_FACTOR[view]


def loading_s(source: str, cached: bool = True) -> float:
    """Seconds to read a probe's images: a shipped pack's JPEGs, or a folder's (all 50,000 of
    them decoded the first time; a second or so from the disk cache after)."""
    kind = source_kind(source)
    if kind is SourceKind.PACK:
        return 2000 * DECODE_S
    if kind is SourceKind.FOLDER:
        return 1.0 if cached else 50_000 * DECODE_S
    return 0.0


def estimate_s(view: str, names: Sequence[str], images: int, options: tuple = (), source: str = "",
               cached: bool = True, clock: Clock = time.perf_counter) -> float:
    """Seconds ``view`` takes here for ``names`` on ``images`` images of ``source`` (each net
    reads its images; a folder is decoded once, for the first)."""
    return sum(seconds_per_image(name, clock) * view_passes(view, name, images, options)
               + loading_s(source, cached or index > 0) for index, name in enumerate(names))
