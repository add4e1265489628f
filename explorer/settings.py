"""Every setting of the app, named once: where its files are, what one session may hold, and
what a user may type.

Paths: the project's folders, and the ``EXPLORER_*`` variables that move them
(:func:`pretrained_dir`, :func:`cache_dir`, :func:`runs_dir`, :func:`cifar10_dir`); the server
variables that are not numbers (``EXPLORER_DATA_ROOTS``, ``EXPLORER_MAX_JOBS``,
``EXPLORER_RAISE_ERRORS``) are named here and read where they apply.

Limits:

One server often serves a whole class, and anything a student can type, upload or put in a
link reaches the same process as everyone else's work. So every bound lives here, as data:

- a :class:`Budget` is a server setting (how many photos one upload may hold, how many bytes a
  session keeps on disk, how long a job may run). Each has a default sized for the 2-core,
  24 GB class server and an ``EXPLORER_*`` environment variable that overrides it for a bigger
  one. The README's "Running it for a class" lists them all (a test keeps the two equal).
- a :class:`Range` is the declared range of one number a user can type: the lab's widgets, a
  link's parameters, a CLI flag, ``synthetic:N`` and the fields of a resume state are all
  checked against the same :class:`Range`, so the widget, the link and the flag agree.

Both raise :class:`LimitError` (a ``ValueError``) with one sentence that says what is allowed.
Nothing here imports torch or Streamlit: the CLI's ``--help`` and the link parser use it too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024

# --- paths ----------------------------------------------------------------------------------

PACKAGE_DIR = Path(__file__).resolve().parent  # explorer/
PROJECT_ROOT = PACKAGE_DIR.parent  # the clone: pretrained/, pages/, README.md
SAMPLES_DIR = PACKAGE_DIR / "samples"  # one CIFAR-10 test-set photo per class, shipped with the package
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"  # a course's data beside the clone, when there is one

PRETRAINED_DIR_ENV = "EXPLORER_PRETRAINED_DIR"  # the shipped checkpoints, packs and precomputed views
CACHE_DIR_ENV = "EXPLORER_CACHE_DIR"  # downloads and decoded folders
RUNS_DIR_ENV = "EXPLORER_RUNS_DIR"  # the user's own run records
CIFAR10_DIR_ENV = "EXPLORER_CIFAR10_DIR"  # a folder of CIFAR-10 JPEGs in ImageFolder layout
DATA_ROOTS_ENV = "EXPLORER_DATA_ROOTS"  # the folders a server may read data from (explorer.server.roots)
MAX_JOBS_ENV = "EXPLORER_MAX_JOBS"  # heavy jobs at once (explorer.server.slots)
RAISE_ERRORS_ENV = "EXPLORER_RAISE_ERRORS"  # tests: let a page's exception through (explorer.ui.common)


def pretrained_dir() -> Path:
    """``pretrained/`` (``$EXPLORER_PRETRAINED_DIR`` overrides it)."""
    return Path(os.environ.get(PRETRAINED_DIR_ENV, PROJECT_ROOT / "pretrained"))


def cache_dir() -> Path:
    """Where downloads and decoded folders are kept (``$EXPLORER_CACHE_DIR`` overrides it)."""
    return Path(os.environ.get(CACHE_DIR_ENV, Path.home() / ".cache" / "resnet-explorer"))


def runs_dir() -> Path:
    """The user's own run records (``$EXPLORER_RUNS_DIR`` overrides it)."""
    return Path(os.environ.get(RUNS_DIR_ENV, Path.home() / ".cache" / "resnet-explorer" / "runs"))


def cifar10_dirs() -> tuple[Path, ...]:
    """Where real CIFAR-10 JPEGs may be, in order: ``$EXPLORER_CIFAR10_DIR``, then the course's
    ``../shared/data/cifar10/train``."""
    named = os.environ.get(CIFAR10_DIR_ENV)
    return (*((Path(named),) if named else ()), SHARED_DATA / "cifar10" / "train")


# --- limits ---------------------------------------------------------------------------------


class LimitError(ValueError):
    """A value outside its declared range, or a budget that would be exceeded."""


@dataclass(frozen=True)
class Budget:
    """A server setting: a whole number with a default, overridable through ``env``."""

    env: str  # the environment variable, e.g. "EXPLORER_UPLOAD_PHOTOS"
    default: int
    unit: str  # how the number is read: "photos", "MiB", "s", "jobs", ...
    meaning: str  # one line for the README's table
    low: int = 1  # the smallest value the variable may be set to

    def value(self, environ: Mapping[str, str] = os.environ) -> int:
        """The setting in force: ``$env`` when set (a whole number ≥ ``low``), else the default.
        A malformed value raises :class:`LimitError` naming the variable, rather than being ignored."""
        text = environ.get(self.env, "").strip().replace("_", "")
        if not text:
            return self.default
        if not (text.isascii() and text.isdigit()) or int(text) < self.low:
            raise LimitError(f"{self.env} must be a whole number of at least {self.low:,} ({self.unit}), "
                             f"got {text[:40]!r}.")
        return int(text)

    def bytes(self, environ: Mapping[str, str] = os.environ) -> int:
        """A budget counted in MiB, as bytes."""
        if self.unit != "MiB":
            raise TypeError(f"{self.env} is counted in {self.unit}, not MiB.")
        return self.value(environ) * MIB


# --- What one session may upload and hold (the class server; explorer.data.images, explorer.data.archives) ---

UPLOAD_PHOTOS = Budget("EXPLORER_UPLOAD_PHOTOS", 12, "photos",
                       "photos one Inspect upload may hold; more are refused with a message")
IMAGE_FILE = Budget("EXPLORER_IMAGE_FILE_MB", 10, "MiB",
                    "one image file (the upload widget's own cap is the same)")
IMAGE_PIXELS = Budget("EXPLORER_IMAGE_MEGAPIXELS", 40, "megapixels",
                      "one image's pixels, read from its header before decoding (a 7300×5480 photo fits)")
SESSION_DECODED = Budget("EXPLORER_SESSION_DECODED_MB", 256, "MiB",
                         "decoded photos one session holds at once, each counted as 8-bit RGB")
SESSION_DISK = Budget("EXPLORER_SESSION_DISK_MB", 512, "MiB",
                      "what one session keeps on disk (its unpacked zip; a new zip replaces the last)")
ZIP_BYTES = Budget("EXPLORER_ZIP_MB", 512, "MiB",
                   "a zip's total uncompressed size (CIFAR-10 as JPEGs is about 150 MB)")
ZIP_ENTRIES = Budget("EXPLORER_ZIP_ENTRIES", 60_000, "entries", "entries in one zip (CIFAR-10's training split is 50,000)")
ZIP_RATIO = Budget("EXPLORER_ZIP_RATIO", 20, "×",
                   "uncompressed ÷ compressed size of the whole zip (photos barely compress; bombs by 1000×)")
PHOTO_SIDE = Budget("EXPLORER_PHOTO_SIDE", 1024, "pixels", "longest side a page keeps an uploaded photo at, shrunk "
                    "right after decoding (the models see 32 to 256 pixels)", low=256)  # 4 MB a photo, not 160

# --- Heavy work (explorer.server.scheduler) ---

QUEUE_LENGTH = Budget("EXPLORER_QUEUE_LENGTH", 40, "jobs",
                      "jobs waiting for a training slot; past it, Start says the queue is full")
JOBS_PER_SESSION = Budget("EXPLORER_JOBS_PER_SESSION", 1, "jobs",
                          "running or waiting jobs one browser session may have")
JOB_SECONDS = Budget("EXPLORER_JOB_TIME_LIMIT_S", 1800, "s",
                     "how long one job may hold a training slot in the app before it is stopped (its steps are kept)")
RUNS_KEPT = Budget("EXPLORER_RUNS_KEPT", 50, "runs",
                   "auto-saved lab runs kept in the runs folder; older ones are deleted")
JOBS_PER_CLIENT = Budget("EXPLORER_JOBS_PER_CLIENT", 20, "jobs",
                         "running or waiting jobs of one browser address over all its tabs (others are served "
                         "round-robin beside it); raise it to the queue length if a proxy gives the class one address")

BUDGETS = (UPLOAD_PHOTOS, IMAGE_FILE, IMAGE_PIXELS, SESSION_DECODED, SESSION_DISK, ZIP_BYTES, ZIP_ENTRIES,
           ZIP_RATIO, QUEUE_LENGTH, JOBS_PER_SESSION, JOB_SECONDS, RUNS_KEPT,
           JOBS_PER_CLIENT, PHOTO_SIDE)


@dataclass(frozen=True)
class Range:
    """The declared range of a number a user can type: ``low ≤ value ≤ high``, finite.

    ``integer`` ranges take whole numbers only. ``low_open``: ``low`` itself is refused (a
    learning rate of 0 trains nothing). ``what`` names the value in messages ("the learning rate").
    """

    what: str
    low: float
    high: float
    integer: bool = True
    low_open: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        low = f"above {self.low:g}" if self.low_open else f"from {self._shown(self.low)}"
        return f"{kind} {low} to {self._shown(self.high)}"

    def _shown(self, value: float) -> str:
        return f"{int(value):,}" if self.integer else f"{value:g}"

    def check(self, value, what: str | None = None):
        """``value`` if it lies in the range; else :class:`LimitError` naming ``what``."""
        name = what or self.what
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LimitError(f"{name} must be {self.describe()}, got {str(value)[:40]!r}.")
        if self.integer and not (isinstance(value, int) or (math.isfinite(value) and value == int(value))):
            raise LimitError(f"{name} must be {self.describe()}, got {value!r}.")
        if not math.isfinite(value) or value > self.high or value < self.low or (self.low_open and value == self.low):
            shown = f"{value:,}" if isinstance(value, int) else repr(value)
            raise LimitError(f"{name} must be {self.describe()}, got {shown}.")
        return int(value) if self.integer else float(value)

    def parse(self, text: str, what: str | None = None):
        """A typed value (a CLI flag, a link parameter, ``synthetic:N``) checked against the range."""
        cleaned = str(text).strip().replace("_", "")
        try:
            value = int(cleaned) if self.integer else float(cleaned)
        except ValueError:
            raise LimitError(f"{what or self.what} must be {self.describe()}, got {str(text)[:40]!r}.") from None
        return self.check(value, what)


# --- What a user may type: the lab, its links, `train`, `finetune`, "Why shortcuts work" ---

STEPS = Range("the number of steps", 1, 64_000)  # §4.2's CIFAR schedule, the longest run here
BATCH_SIZE = Range("the batch size", 1, 1024)
LEARNING_RATE = Range("the learning rate", 0, 10, integer=False, low_open=True)
WIDTH = Range("the width (first-stage filters)", 1, 128)  # the paper's CIFAR nets: 16 (§4.2)
IMAGE_SIZE = Range("the image size", 4, 512)  # the nets halve it twice; 224 is ImageNet's
VAL_EVERY = Range("the steps between validation passes", 1, 64_000)
MODEL_THREADS = Range("the number of model threads", 1, 64)
SEED = Range("the seed", 0, 10_000)
REPEAT = Range("the number of seeds (repeat)", 1, 10)
SYNTHETIC_IMAGES = Range("the number of synthetic images", 10, 60_000)  # 10: one per class

# The rest of a run's recipe: `train`'s flags and the fields of a resume state (explorer.training.recipe).
EXTENDED_STEPS = Range("the number of steps", 1, 128_000)  # `--resume DIR --steps N`: twice §4.2's 64k (the README extends to 80k)
MILESTONE = Range("a milestone (the step of a ÷10 drop)", 1, 128_000)  # §4.2: 32k and 48k
MILESTONES = Range("the number of milestones", 0, 16)  # §4.2 has two
WARMUP_STEPS = Range("the warm-up steps", 0, 64_000)  # the demo ramps over 50
WEIGHT_DECAY = Range("the weight decay", 0, 1, integer=False)  # §4.2: 1e-4; the shipped nets 5e-4
MOMENTUM = Range("the momentum", 0, 0.999, integer=False)  # §4.2: 0.9; 1 would never forget a gradient
LABEL_SMOOTHING = Range("the label smoothing", 0, 0.99, integer=False)  # 0.1 is usual; 1 would teach nothing
ERASING_P = Range("the random-erasing probability", 0, 1, integer=False)  # the shipped ResNet-20: 0.5
CROP_PAD = Range("the crop padding (pixels)", 0, 64)  # §4.2: 4
TRAIN_IMAGES = Range("the training-image limit", 1, 1_000_000)  # CIFAR-10's training split is 50,000
VAL_SIZE = Range("the validation images held out", 0, 1_000_000)  # §4.2 holds out 5,000
STEP_INTERVAL = Range("the steps between records", 1, 128_000)  # record_every, grad_every, window
STATE_EVERY = Range("the steps between training states", 1, 128_000)  # `--state-every`
WARMUP_DEPTH = Range("the warm-up depth", 1, 10_000)  # §4.2: ResNet-110 and deeper warm up
FRACTION = Range("a fraction", 0, 1, integer=False)  # the warm-up's training-error threshold (§4.2: 0.8)

# `finetune` (explorer.transfer.recipe); the Transfer page's widgets share these bounds.
FINETUNE_EPOCHS = Range("the number of epochs", 1, 200)  # the default is 5
UPSAMPLE = Range("the upsampling factor", 1, 8)  # 7: CIFAR's 32 -> ImageNet's 224
FINETUNE_INPUT = Range("the backbone's input side (image size × upsample)", 4, 512)  # ImageNet's 224 fits

# "Why shortcuts work" (`responses`, `branches`, `lesion`, `landscape`; explorer.paper.inside).
PROBE_IMAGES = Range("the number of probe images", 1, 5_000)  # the default probe: the checkpoints' 5k split
LESION_DRAWS = Range("the random subsets per k", 1, 100)  # the default is 3
LANDSCAPE_GRID = Range("the landscape's points per axis", 2, 101)  # shipped surfaces 21, default 31: grid² passes
LANDSCAPE_SPAN = Range("the landscape's span", 0, 10, integer=False, low_open=True)  # Li et al. plot [−1, 1]
TOPK = Range("the number of classes shown (topk)", 1, 1000)  # ImageNet has 1,000


def budget_table() -> str:
    """The README's table of server settings (a test keeps README.md equal to it)."""
    rows = ["| setting | default | what it bounds |", "|---|---:|---|"]
    rows += [f"| `{b.env}` | {b.default:,} {b.unit.removesuffix('s') if b.default == 1 else b.unit} | {b.meaning} |"
             for b in BUDGETS]
    return "\n".join(rows)
