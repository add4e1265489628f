"""Why shortcuts work: looking inside trained plain and residual nets.

Four views, each a pure function of a trained model (:class:`Subject`) and a batch of images
(:class:`Probe`) that returns a frozen dataclass, takes an optional ``progress(fraction)``
callback, and has a CLI command (:mod:`explorer.cli.inside`) and plotly figures (:mod:`explorer.present.inside_figures`):

1. :func:`layer_responses`: the std of each 3×3 layer's response (He et al. 2015, Fig. 7);
2. :func:`branch_ratios`: ‖F(x)‖ / ‖x‖ per block;
3. :func:`lesion_study`: the error with blocks removed at test time (Veit et al. 2016), each
   activation its lesions share computed once (:mod:`.prefix`), and :func:`path_length_counts`,
   the binomial distribution of path lengths;
4. :func:`loss_surface` / :func:`loss_line`: the loss along filter-normalised random
   directions (Li et al. 2018); :func:`shipped_surfaces` are precomputed ones.

:func:`shipped_results` are the first three precomputed for the shipped checkpoints on the
shipped evaluation images (:mod:`.precomputed`), and :mod:`.estimates` says how long each
takes on this machine before it starts.

Names are imported on first use (PEP 562): the CLI reads :mod:`.defaults` (no imports) for its
flags, and importing that runs this ``__init__``, so plain imports here would load torch at
``python -m explorer --help`` (about 2 s instead of 30 ms). Everything else imports plainly.
"""

from __future__ import annotations

import importlib

from explorer.paper.inside.defaults import DEFAULT_DRAWS, DEFAULT_GRID, DEFAULT_IMAGES, DEFAULT_SPAN

_HOMES = {
    "branches": ("BranchRatio", "Branches", "branch_ratios"),
    "probes": ("EVAL_PACK", "SAMPLES", "InsideError", "Probe", "ProbeData", "Subject", "load_probe",
             "load_subject", "probe_data", "probe_evaluation", "progress_line", "require_labels"),
    "landscape": ("Surface", "filter_normalized_direction", "loss_line", "loss_surface", "random_directions"),
    "lesion": ("BlockLesion", "LesionStudy", "RandomLesion", "lesion_passes", "lesion_study", "lesioned",
               "path_length_counts", "removable_blocks"),
    "precomputed": ("save_result", "shipped_results"),
    "responses": ("LayerResponse", "Responses", "layer_responses", "mean_std"),
    "surfaces": ("save_surface", "shipped_surfaces"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = ["DEFAULT_DRAWS", "DEFAULT_GRID", "DEFAULT_IMAGES", "DEFAULT_SPAN", *sorted(_MODULE_OF)]


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"explorer.paper.inside.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
