"""The training recipe as data: :class:`TrainConfig` (the paper's CIFAR-10 recipe, §4.2, by
default), the presets that shrink it for a class demo, the checks that reject settings which
cannot run, and reading a saved config back.

A config is the recipe (what §4.2 prescribes: models, data, steps, batch, rate, schedule,
augmentation, seeds, ...) and, in ``config.engine`` (:class:`EngineSwitches`), how fast the
engine runs it. It is saved as ``asdict(config)`` inside every run record and training state
(:mod:`explorer.store.runs`, :mod:`explorer.store.state`), so its fields, their names and their defaults
are part of those files' format: a resumable run depends on them. Files written before the
switches had their own dataclass hold them among the recipe's fields; :func:`config_from_dict`
reads both.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, replace

from explorer import settings
from explorer.data import Augmentation, DataError, InMemoryData, check_training_source
from explorer.models import get_model_spec
from explorer.settings import LimitError, Range
from explorer.typed_json import FieldTypeError, from_json

SCHEDULES = ("steps", "cosine", "onecycle")
# The held-out split (and the synthetic images) are the same whatever the run's seeds: a seed
# changes initialisation, data order and augmentation, never which images are held out.
DATA_SEED = 0
AMP_MODES = ("off", "auto", "bf16", "fp16")


@dataclass(frozen=True)
class EngineSwitches:
    """How the engine runs a recipe, not what the recipe is: each switch was measured with and
    without it by benchmarks/engine_speed.py, and none changes what §4.2 prescribes (amp and
    compile change the arithmetic's rounding, not the method)."""

    channels_last: bool = True  # NHWC activations: faster convolutions on CPU and on tensor cores
    one_sync: bool = True  # one host-device sync per step for every model's metrics, not one per model
    inference_mode: bool = True  # validation under torch.inference_mode (else no_grad)
    # Mixed precision: "bf16" autocast (CUDA, or CPUs with bf16 instructions), "fp16" (CUDA
    # only, with a gradient scaler), "auto" (bf16 where the device computes it natively, see
    # devices.has_native_bf16, else off). Off by default: the paper trains in fp32.
    amp: str = "off"
    cudnn_benchmark: bool = True  # CUDA only: let cuDNN pick the fastest convolution algorithms
    compile: bool = False  # torch.compile every model: ~30 s to start on CPU, pays back in long runs
    # Python threads the lock-step models are spread over, deepest first: small nets cannot keep
    # two cores busy inside one convolution, but two models at once can (PyTorch releases the GIL
    # in its kernels). Training splits its torch threads among them.
    model_threads: int = 1


ENGINE_SWITCHES = frozenset(EngineSwitches.__dataclass_fields__)


@dataclass(frozen=True)
class TrainConfig:
    """The paper's CIFAR-10 recipe (§4.2) by default; presets below shrink it for demos."""

    models: tuple[str, ...] = ("plain20", "plain56", "resnet20", "resnet56")
    data: str = "cifar10"  # "cifar10", "synthetic[:N]" or "folder:PATH" (see explorer.data)
    steps: int = 64_000  # iterations; §4.2 terminates at 64k
    batch_size: int = 128  # §4.2: mini-batch of 128
    lr: float = 0.1  # §4.2: start at 0.1 ...
    milestones: tuple[int, ...] = (32_000, 48_000)  # ... divided by 10 at 32k and 48k iterations
    momentum: float = 0.9  # §4.2
    weight_decay: float = 1e-4  # §4.2
    # §4.2, ResNet-110: "0.1 is slightly too large to start converging", so 0.01 until the
    # training error is below 80% (about 400 iterations), then back to 0.1.
    warmup_depth: int = 110  # models at least this deep warm up
    warmup_lr: float = 0.01
    warmup_until_error: float = 0.80
    warmup_steps: int = 0  # not in the paper: the rate rises linearly from 0 over the first N steps
    width: int = 16  # filters in the first stage (16/32/64 in the paper)
    image_size: int = 32  # pixels; smaller images make a faster demo
    shortcut: str = "A"  # "A": zero-padding identity (the paper's CIFAR choice); "B": projection
    augmentation: Augmentation = field(default_factory=Augmentation)
    val_size: int | None = None  # None: 5k of CIFAR's 50k (§4.2's 45k/5k split), else 10%
    val_every: int = 500  # steps between validation passes
    val_limit: int | None = None  # images per validation pass (None: the whole split)
    window: int = 50  # steps the reported training error is averaged over
    grad_every: int = 10  # steps between per-layer gradient-norm records
    classes: tuple[str, ...] | None = None  # train on these classes only (None: all of the data set's)
    train_limit: int | None = None  # train on the first N training images only (a random subset)
    seed: int = 0  # the first seed: initialisation, data order and augmentation
    repeat: int = 1  # seeds seed … seed + repeat − 1, every model once per seed, in lock-step
    # The learning-rate schedule (PyTorch's own schedulers): "steps" is §4.2 (÷10 at each
    # milestone, MultiStepLR); "cosine" (CosineAnnealingLR) and "onecycle" (OneCycleLR, which
    # also cycles the momentum) ignore the milestones and reach the paper's error sooner.
    schedule: str = "steps"
    schedule_steps: int | None = None  # the schedule's length; None: `steps` (an extended run keeps its own)
    label_smoothing: float = 0.0  # not in the paper; 0.1 is the usual choice
    nesterov: bool = False  # not in the paper (plain momentum SGD)
    record_every: int = 1  # keep every k-th step in the run record (validation steps always)
    engine: EngineSwitches = field(default_factory=EngineSwitches)  # how fast, never what is trained

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.repeat))

    @property
    def schedule_length(self) -> int:
        return self.schedule_steps or self.steps

    def with_engine(self, **switches) -> TrainConfig:
        """This recipe run with other engine switches (``amp="bf16"``, ``model_threads=2``, ...)."""
        return replace(self, engine=replace(self.engine, **switches))


def overridden(config: TrainConfig, **changes) -> TrainConfig:
    """``config`` with ``changes``, where an engine switch may be named like a recipe field
    (``overridden(config, steps=10, amp="off")``): what the presets' callers and the benchmarks'
    ``--set`` pass."""
    switches = {name: changes.pop(name) for name in ENGINE_SWITCHES & changes.keys()}
    changed = replace(config, **changes)
    return changed.with_engine(**switches) if switches else changed


PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(record_every=10),  # §4.2 as printed; every 10th step recorded
    # The class demo: Fig. 1's degradation in about a minute on a 2-core CPU (chosen with
    # benchmarks/degradation_demo.py; its speed switches with benchmarks/engine_speed.py).
    "demo": TrainConfig(
        steps=300, batch_size=64, lr=0.2, warmup_steps=50, milestones=(230,), width=6, image_size=16,
        val_every=50, val_limit=1000, window=25, grad_every=5,
        engine=EngineSwitches(channels_last=False, model_threads=2, amp="auto"),
    ),
    # Fig. 6's eight nets in lock-step, both orderings in under 30 minutes on a 2-core CPU
    # (chosen with benchmarks/fig6_preset.py).
    "fig6": TrainConfig(
        models=("plain20", "plain32", "plain44", "plain56", "resnet20", "resnet32", "resnet44", "resnet56"),
        steps=2000, batch_size=128, lr=0.1, warmup_steps=200, milestones=(1000, 1500), width=4, image_size=16,
        train_limit=10_000, val_every=200, val_limit=2000, window=50, grad_every=25, record_every=5,
        augmentation=Augmentation(pad=0, flip=False), seed=1,
        engine=EngineSwitches(channels_last=False, model_threads=2),
    ),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A preset with overrides (engine switches too, by name: see :func:`overridden`). A new
    step count moves the learning-rate drops with it, keeping their place in the schedule
    (§4.2: at 50% and 75% of 64k steps)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    base = PRESETS[name]
    if "steps" in overrides and "milestones" not in overrides and overrides["steps"] != base.steps:
        overrides["milestones"] = tuple(max(1, round(m * overrides["steps"] / base.steps)) for m in base.milestones)
    return overridden(base, **overrides)


class ConfigError(ValueError):
    """A setting that cannot run. ``field`` names the config field at fault (None: the
    settings together), so a resume state's message can say which of its fields is bad."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# Every number of the recipe and its declared range (explorer.settings), with what a message
# calls it when the range's own name is not specific enough. The lab's widgets, its links,
# `train`'s flags and resume states are all held to these bounds, checked here.
_RANGES: tuple[tuple[str, Range, str | None], ...] = (
    ("batch_size", settings.BATCH_SIZE, None), ("lr", settings.LEARNING_RATE, None),
    ("momentum", settings.MOMENTUM, None), ("weight_decay", settings.WEIGHT_DECAY, None),
    ("warmup_depth", settings.WARMUP_DEPTH, None), ("warmup_lr", settings.LEARNING_RATE, "the warm-up learning rate"),
    ("warmup_until_error", settings.FRACTION, "the warm-up's training-error threshold"),
    ("warmup_steps", settings.WARMUP_STEPS, None), ("width", settings.WIDTH, None),
    ("image_size", settings.IMAGE_SIZE, None), ("val_every", settings.VAL_EVERY, None),
    ("window", settings.STEP_INTERVAL, "the steps the training error is averaged over (window)"),
    ("grad_every", settings.STEP_INTERVAL, "the steps between gradient records (grad_every)"),
    ("record_every", settings.STEP_INTERVAL, "the steps between kept records (record_every)"),
    ("seed", settings.SEED, None), ("repeat", settings.REPEAT, None),
    ("label_smoothing", settings.LABEL_SMOOTHING, None),
)
_OPTIONAL_RANGES: tuple[tuple[str, Range, str | None], ...] = (  # None: the default
    ("val_size", settings.VAL_SIZE, None), ("val_limit", settings.TRAIN_IMAGES, "the validation-image limit"),
    ("train_limit", settings.TRAIN_IMAGES, None), ("schedule_steps", settings.STEPS, "the schedule's length"),
)


def _in_range(name: str, value, limit: Range, what: str | None = None) -> None:
    try:
        limit.check(value, what)
    except LimitError as error:
        raise ConfigError(str(error)[0].upper() + str(error)[1:], name) from None


def check_config(config: TrainConfig, data: InMemoryData | None = None) -> None:
    """Raise :class:`ConfigError` (a ValueError) with a readable message for settings that
    cannot run: unknown models, and any number outside its range in :mod:`explorer.settings`.

    ``steps`` may go up to ``settings.STEPS`` (§4.2's 64k); a run extended on resume (it keeps
    its ``schedule_steps``) up to ``settings.EXTENDED_STEPS``."""
    if not config.models:
        raise ConfigError("Pick at least one model.", "models")
    for name in config.models:
        if not isinstance(name, str):
            raise ConfigError(f"Model names are text, got {name!r}.", "models")
        spec = get_model_spec(name)  # UnknownModelError (a ValueError) for typos
        if spec.family != "cifar":
            raise ConfigError(f"{name} is an ImageNet model; the lab trains the CIFAR nets "
                              "(plain20…110, resnet20…110).", "models")
    if len(set(config.models)) != len(config.models):
        raise ConfigError("Each model can be picked only once.", "models")
    if (data is not None and isinstance(config.batch_size, int)
            and config.batch_size > len(data.train_labels)):
        raise ConfigError(f"The batch size ({config.batch_size}) is larger than the "
                          f"{len(data.train_labels)} training images; lower it.", "batch_size")
    extended = config.schedule_steps is not None
    _in_range("steps", config.steps, settings.EXTENDED_STEPS if extended else settings.STEPS)
    for name, limit, what in _RANGES:
        _in_range(name, getattr(config, name), limit, what)
    for name, limit, what in _OPTIONAL_RANGES:
        if getattr(config, name) is not None:
            _in_range(name, getattr(config, name), limit, what)
    _in_range("milestones", len(config.milestones), settings.MILESTONES)
    for milestone in config.milestones:
        _in_range("milestones", milestone, settings.MILESTONE)
    _in_range("augmentation", config.augmentation.erasing_p, settings.ERASING_P)
    _in_range("augmentation", config.augmentation.pad, settings.CROP_PAD)
    if config.shortcut not in ("A", "B"):
        raise ConfigError(f"Shortcut option must be 'A' or 'B', got {config.shortcut!r}.", "shortcut")
    if config.schedule not in SCHEDULES:
        raise ConfigError(f"Unknown schedule {config.schedule!r}; choose one of {', '.join(SCHEDULES)}.", "schedule")
    if config.train_limit is not None and config.train_limit < config.batch_size:
        raise ConfigError(f"The training-image limit ({config.train_limit}) is below the batch size "
                          f"({config.batch_size}).", "train_limit")
    _in_range("engine.model_threads", config.engine.model_threads, settings.MODEL_THREADS)
    if config.engine.amp not in AMP_MODES:
        raise ConfigError(f"Unknown AMP mode {config.engine.amp!r}; choose one of {', '.join(AMP_MODES)}.",
                          "engine.amp")
    try:
        check_training_source(config.data)  # a known kind, synthetic:N in range, training images: before loading
    except DataError as error:
        raise ConfigError(str(error), "data") from None


def config_from_dict(values: dict) -> TrainConfig:
    """The :class:`TrainConfig` saved as ``asdict(config)`` (in a run record or a training
    state), every field read back as its declared type (:mod:`explorer.typed_json`): ValueError
    naming the fields if it was written by another version, :class:`ConfigError` naming the
    field of a wrong type. The ranges are :func:`check_config`'s."""
    if not isinstance(values, dict):
        raise ConfigError(f"the config must be a JSON object, got {type(values).__name__}")
    values = _engine_nested(values)
    names = set(TrainConfig.__dataclass_fields__)
    unknown, missing = sorted(set(values) - names), sorted(names - set(values))
    if unknown or missing:
        raise ValueError("the config was written by another version of the training engine ("
                         + "; ".join(filter(None, [unknown and f"unknown fields: {', '.join(unknown)}",
                                                   missing and f"missing fields: {', '.join(missing)}"])) + ")")
    hints = typing.get_type_hints(TrainConfig)
    try:
        return TrainConfig(**{name: from_json(values[name], hints[name], name) for name in names})
    except FieldTypeError as error:
        raise ConfigError(str(error), error.field) from None


def _engine_nested(values: dict) -> dict:
    """A saved config with its engine switches under "engine": those written before the switches
    had their own dataclass (issue 39: the shipped run records, older states and manifests)
    hold them among the recipe's fields."""
    if "engine" in values or not ENGINE_SWITCHES & values.keys():
        return values
    recipe = {name: value for name, value in values.items() if name not in ENGINE_SWITCHES}
    return {**recipe, "engine": {name: values[name] for name in ENGINE_SWITCHES if name in values}}


def recipe_summary(config: dict) -> str:
    """A saved config (``asdict`` form) in one line, naming only where it departs from §4.2:
    "ResNet-20, 35,000 steps; cosine schedule, Nesterov, label smoothing 0.1, weight decay
    0.0005". The paper's own recipe reads "§4.2's recipe, 64,000 steps"."""
    paper = TrainConfig()
    changes = []
    if config.get("schedule", "steps") != "steps":
        changes.append(f"{config['schedule']} schedule")
    elif tuple(config.get("milestones", ())) != paper.milestones:
        changes.append("÷10 at " + ", ".join(f"{m:,}" for m in config["milestones"]))
    for key, text in (("nesterov", "Nesterov"),):
        if config.get(key):
            changes.append(text)
    for key, label in (("label_smoothing", "label smoothing"), ("lr", "lr"), ("weight_decay", "weight decay"),
                       ("batch_size", "batch"), ("width", "width"), ("image_size", "px"),
                       ("warmup_steps", "warm-up steps")):
        value = config.get(key, getattr(paper, key))
        if value != getattr(paper, key):
            changes.append(f"{value} {label}" if label == "px" else f"{label} {value}")
    if config.get("classes"):
        changes.append(f"{len(config['classes'])} classes")
    if config.get("train_limit"):
        changes.append(f"{config['train_limit']:,} training images")
    augmentation = config.get("augmentation") or {}
    dropped = [name for name, kept in (("crop", augmentation.get("pad", paper.augmentation.pad) > 0),
                                       ("flip", augmentation.get("flip", paper.augmentation.flip))) if not kept]
    if dropped:
        changes.append("no " + " or ".join(dropped))
    erasing = augmentation.get("erasing_p", 0.0)
    if erasing:
        changes.append(f"random erasing p={erasing}")
    amp = _engine_nested(config).get("engine", {}).get("amp", "off")
    if amp == "auto":
        changes.append("bf16 autocast where native")
    elif amp != "off":
        changes.append(f"{amp} autocast")
    head = f"{config['steps']:,} steps"
    return f"{head}; " + ", ".join(changes) if changes else f"§4.2's recipe, {head}"
