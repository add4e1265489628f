"""What the degradation lab shows besides the curves: where the data is, and what the gap says.

No Streamlit here: the page asks these functions and draws what they return.
"""

from __future__ import annotations

import math

from explorer.data import (
    DataSource,
    SourceKind,
    available_packs,
    default_cache_dir,
    describe_source,
    pack_source,
    source_kind,
)
from explorer.models import get_model_spec
from explorer.paper.fig6 import paper_label
from explorer.settings import cifar10_dirs
from explorer.store.runs import RunRecord
from explorer.training.recipe import TrainConfig, preset

DEMO_PACK = "cifar10-demo"  # explorer.data.packs: the demo classes' real images, shipped with the app


def cifar10_source() -> str | None:
    """Where real CIFAR-10 is on this machine, as a data source: ``$EXPLORER_CIFAR10_DIR``,
    the project's ``../shared/data/cifar10/train``, or torchvision's downloaded copy in the
    cache; None when there is none (the lab then defaults to the shipped demo pack)."""
    for folder in cifar10_dirs():
        if folder.is_dir():
            return str(DataSource.of_folder(folder.resolve()))
    if (default_cache_dir() / "cifar10" / "cifar-10-batches-py").is_dir():
        return "cifar10"
    return None


def demo_pack_source() -> str | None:
    """``"pack:cifar10-demo"`` when its file is in ``pretrained/data``, else None (a damaged
    checkout: the lab then says it falls back to the synthetic set)."""
    return pack_source(DEMO_PACK) if DEMO_PACK in available_packs() else None


def default_training_source() -> str:
    """The data a page or command trains on by default: the full CIFAR-10 when it is here,
    else the 6,000 real CIFAR-10 images shipped with the app, else (only when those are
    missing) the synthetic set. Never chosen silently: :func:`data_label` says which."""
    return cifar10_source() or demo_pack_source() or "synthetic"


def data_label(source: str) -> str:
    """What ``source`` is, as a page or a command says it before using it, e.g. "CIFAR-10:
    6,000 training images of 3 classes (+300 held out), shipped with the app"."""
    about, parsed = describe_source(source), DataSource.parse(source)
    if parsed.kind is SourceKind.PACK and "CIFAR-10 " in about:  # a pack's manifest words, CIFAR-10 said first
        return "CIFAR-10: " + about.replace("CIFAR-10 ", "", 1)
    if parsed.kind is SourceKind.FOLDER and source == cifar10_source():
        return f"CIFAR-10 from the folder {parsed.path}"
    return about


def cifar10_choice(source: str) -> str:
    """How the data-set pickers name the real CIFAR-10 found here (:func:`cifar10_source`):
    "CIFAR-10 (its folder)" or "CIFAR-10 (torchvision's download)"."""
    parsed = DataSource.parse(source)
    where = parsed.path if parsed.kind is SourceKind.FOLDER else "torchvision's download"
    return f"CIFAR-10 ({where})"


# The class demo's classes (measured: benchmarks/degradation_demo.py). Three CIFAR-10 classes
# that look unlike each other (a car, a frog, a ship) are learnt fast enough for a one-minute
# demo while plain-56 stays at or near chance (51-69% training error against 67% for seeds 0-2),
# with margins wide enough for a laptop that fits only ~220 steps in the minute:
# five classes passed on a host that fit ~285 and failed on one that fit ~220. Without a
# CIFAR-10 folder, the demo pack shipped in pretrained/data holds exactly these classes' real
# images (explorer.data.packs); the synthetic set's first five patterns stand in when asked for.
CLASS_DEMO_MODELS = ("plain20", "plain56", "resnet20", "resnet56")
CLASS_DEMO_CLASSES = ("automobile", "frog", "ship")
SYNTHETIC_DEMO_CLASSES = tuple(f"pattern{i}" for i in range(5))
# On the synthetic set the demo preset's lr 0.2 kills ResNet-56: while the rate ramps past
# ~0.1 its last ReLU dies for every image (pooled features all zero by step 100), its logits
# go constant and its loss sits at ln 5. The gentler start of §4.2's ResNet-110 (a low rate
# first, then 0.1) keeps it alive: lr 0.1 reached over 150 steps passes all three criteria of
# benchmarks/degradation_demo.py for seeds 0-2 from step 250 to 800; after 90 s (1 thread,
# load ~3): plain-20 26-48%, plain-56 76-78%, ResNet-20 12-14%, ResNet-56 15-18% (its docstring).
# Measured with the preset as it was then (batches of 32, 800 steps, ÷10 at 700), which the
# synthetic demo keeps.
SYNTHETIC_DEMO_OVERRIDES = {"lr": 0.1, "warmup_steps": 150, "batch_size": 32, "steps": 800, "milestones": (700,)}


def class_demo_config(source: str | None = None) -> TrainConfig:
    """The one-click class demo: the demo preset's four nets (Fig. 1 and Fig. 6) on real
    CIFAR-10's three demo classes (``source``, default :func:`default_training_source`: the full
    folder when it is here, else the demo pack shipped with the app, which holds exactly
    those classes), or on five patterns of the synthetic set (:data:`SYNTHETIC_DEMO_OVERRIDES`)."""
    source = source or default_training_source()
    if source_kind(source) is SourceKind.SYNTHETIC:
        return preset("demo", models=CLASS_DEMO_MODELS, data=source, classes=SYNTHETIC_DEMO_CLASSES,
                      **SYNTHETIC_DEMO_OVERRIDES)
    return preset("demo", models=CLASS_DEMO_MODELS, data=source, classes=CLASS_DEMO_CLASSES)


def gap_caption(record: RunRecord) -> str | None:
    """The degradation in one sentence, from a run's latest training errors: the deepest
    plain net against the shallowest (Fig. 1), and the residual net of that depth against
    it (Fig. 6). None until the training error has been averaged over a full window of
    steps (before that, the curves' differences are mostly the first batches' luck)."""
    if not record.steps or record.steps[-1].step < record.config.window:
        return None
    latest = {entry.name: entry.train_error for entry in record.steps[-1].models
              if entry.seed == record.seeds[0] and not math.isnan(entry.train_error)}  # NaN: a stopped model
    plain = sorted((get_model_spec(n).depth, n) for n in latest if not get_model_spec(n).residual)
    if len(plain) < 2:
        return None
    (_, shallow), (_, deep) = plain[0], plain[-1]
    seconds = record.steps[-1].elapsed_s
    gap = 100 * (latest[deep] - latest[shallow])
    sentence = (f"{paper_label(deep)} is {_points(gap)} {'worse' if gap >= 0 else 'better'} than "
                f"{paper_label(shallow)} on training error after {seconds:.0f} s")
    twin = get_model_spec(deep).twin  # the residual net of the same depth (§4.2's pairs)
    if twin in latest:
        rescue = 100 * (latest[deep] - latest[twin])
        sentence += (f"; with shortcuts, {paper_label(twin)} is {_points(rescue)} "
                     f"{'better' if rescue >= 0 else 'worse'} than {paper_label(deep)}")
    return sentence + "."


def _points(difference: float) -> str:
    rounded = round(abs(difference))
    return f"{rounded} point" if rounded == 1 else f"{rounded} points"


def gradient_caption(record: RunRecord, models: list[str]) -> str | None:
    """How each model's gradient changes from its output side to its input side, read from
    its latest recorded per-layer norms (first seed), e.g. "At step 300: plain-56's first layer
    gets a gradient 63× smaller than its last; ResNet-56's first layer gets about the same
    gradient as its last." That is what the heatmaps show, said in numbers. §4.1 notes that
    with BN the plain nets' gradients do not vanish: smaller is not zero."""
    parts, step = [], None
    for model in models:
        steps, history = record.series(model, "grad_norms")
        if not steps or min(history[-1][0], history[-1][-1]) <= 0:
            continue
        step, norms = steps[-1], history[-1]
        shrink = norms[-1] / norms[0]  # > 1: the first layer's gradient is smaller than the last's
        if shrink >= 2:
            size = f"a gradient {shrink:.0f}× smaller than" if shrink >= 10 else f"a gradient {shrink:.1f}× smaller than"
        elif shrink > 0.5:
            size = "about the same gradient as"
        else:
            size = f"a gradient {1 / shrink:.1f}× larger than" if shrink > 0.1 else f"a gradient {1 / shrink:.0f}× larger than"
        parts.append(f"{paper_label(model)}'s first layer gets {size} its last")
    return f"At step {step:,}: " + "; ".join(parts) + "." if parts else None
