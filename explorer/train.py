"""Training as a stream of step metrics: several models in lock-step on the same batches.

Every model sees exactly the same augmented batch at every step, so curves differ only
because the architectures differ (a fair version of the paper's Fig. 6). With
``repeat`` > 1 every model is trained once per seed, all in lock-step; the models of one
seed share that seed's batches, so a band over seeds shows how much of a gap is noise.

The loop is plain PyTorch; it never prints. :class:`Training` yields a :class:`StepRecord`
per step and the caller (the degradation lab page, the CLI, a test) decides what to show.
Setting ``stop`` ends the run before the next step starts. :meth:`Training.state_dict`
is everything needed to continue the run exactly (see :mod:`explorer.state`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from explorer.data import Augmentation, InMemoryData, augment, load_data, normalize
from explorer.distributed import rank_and_world_size, sum_over_ranks
from explorer.models import build_model, get_model_spec

SCHEDULES = ("steps", "cosine", "onecycle")
# The held-out split (and the synthetic images) are the same whatever the run's seeds: a seed
# changes initialisation, data order and augmentation, never which images are held out.
DATA_SEED = 0
AMP_MODES = ("off", "bf16", "fp16")


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
    # Speed switches, each measured with and without it by benchmarks/engine_speed.py.
    channels_last: bool = True  # NHWC activations: faster convolutions on CPU and on tensor cores
    one_sync: bool = True  # one host-device sync per step for every model's metrics, not one per model
    inference_mode: bool = True  # validation under torch.inference_mode (else no_grad)
    # Mixed precision: "bf16" autocast (CUDA, or CPUs with bf16 instructions: 1.4-1.5× here),
    # "fp16" (CUDA only, with a gradient scaler). Off by default: the paper trains in fp32.
    amp: str = "off"
    cudnn_benchmark: bool = True  # CUDA only: let cuDNN pick the fastest convolution algorithms
    compile: bool = False  # torch.compile every model (pays back only on long runs; off on CPU)
    # Python threads the lock-step models are spread over. Small nets cannot keep two cores
    # busy inside one convolution, but two models at once can (PyTorch releases the GIL in
    # its kernels); pair it with torch.set_num_threads(cores // model_threads).
    model_threads: int = 1

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.repeat))

    @property
    def schedule_length(self) -> int:
        return self.schedule_steps or self.steps


PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(record_every=10),
    # Class demo, chosen with benchmarks/degradation_demo.py on a 2-core CPU (its docstring
    # has the table of what was tried). Narrow nets (6/12/24 filters) on 16×16 images with
    # batch 32 give the most steps per second; lr 0.2 after a 50-step ramp makes plain-56
    # fail clearly while the ResNets learn. On five CIFAR-10 classes (explorer.lab's class
    # demo), after 60 s, for each of seeds 0-2: plain-56 24-27 points above plain-20,
    # ResNet-56 28-33 points below plain-56, ResNet-20 at 37-42% (chance 80%). NHWC is
    # slower for nets this small (benchmarks/engine_speed.py: 0.86×), so it is off.
    "demo": TrainConfig(
        steps=800, batch_size=32, lr=0.2, warmup_steps=50, milestones=(700,), width=6, image_size=16,
        val_every=50, val_limit=1000, window=25, grad_every=5, channels_last=False,
    ),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A preset with overrides. A new step count moves the learning-rate drops with it,
    keeping their place in the schedule (§4.2: at 50% and 75% of 64k steps)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    base = PRESETS[name]
    if "steps" in overrides and "milestones" not in overrides and overrides["steps"] != base.steps:
        overrides["milestones"] = tuple(max(1, round(m * overrides["steps"] / base.steps)) for m in base.milestones)
    return replace(base, **overrides)


@dataclass(frozen=True)
class ModelMetrics:
    name: str
    loss: float  # mean cross-entropy of this step's batch
    train_error: float  # fraction wrong over the last `window` steps (augmented batches)
    val_error: float | None  # on the held-out split, when measured at this step
    lr: float
    grad_norms: tuple[float, ...] | None  # per weighted layer, input to output
    stopped: str | None = None  # why this model stopped early (e.g. the loss became NaN)
    seed: int = 0


@dataclass(frozen=True)
class StepRecord:
    step: int  # 1-based
    epoch: float
    elapsed_s: float
    images_per_s: float  # training images per second, summed over the models
    models: tuple[ModelMetrics, ...]


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Conv and fc weights in forward order: the layers the paper counts in a depth."""
    return [(f"{name}.weight", module.weight) for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear)) and "shortcut" not in name]


def layer_names(config: TrainConfig) -> dict[str, list[str]]:
    """Each model's weighted layers, input to output: the rows of the gradient heatmaps."""
    return {name: [layer for layer, _ in weighted_layers(
        build_model(name, device="meta", width=config.width, shortcut=config.shortcut))]
        for name in config.models}


def check_config(config: TrainConfig, data: InMemoryData | None = None) -> None:
    """Raise ValueError with a readable message for settings that cannot run."""
    if not config.models:
        raise ValueError("Pick at least one model.")
    for name in config.models:
        spec = get_model_spec(name)  # UnknownModelError (a ValueError) for typos
        if spec.family != "cifar":
            raise ValueError(f"{name} is an ImageNet model; the lab trains the CIFAR nets "
                             "(plain20…110, resnet20…110).")
    if len(set(config.models)) != len(config.models):
        raise ValueError("Each model can be picked only once.")
    for label, value in (("steps", config.steps), ("batch size", config.batch_size),
                         ("width", config.width), ("image size", config.image_size),
                         ("number of seeds (repeat)", config.repeat), ("record_every", config.record_every),
                         ("model_threads", config.model_threads)):
        if value < 1:
            raise ValueError(f"The {label} must be at least 1, got {value}.")
    if config.repeat > 10:
        raise ValueError(f"At most 10 seeds in one run, got {config.repeat}.")
    if not config.lr > 0:
        raise ValueError(f"The learning rate must be positive, got {config.lr}.")
    if config.shortcut not in ("A", "B"):
        raise ValueError(f"Shortcut option must be 'A' or 'B', got {config.shortcut!r}.")
    if config.image_size < 4:
        raise ValueError("Images must be at least 4×4 pixels: the nets halve them twice.")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {config.schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    if config.schedule_steps is not None and config.schedule_steps < 1:
        raise ValueError(f"schedule_steps must be at least 1, got {config.schedule_steps}.")
    if config.warmup_steps < 0:
        raise ValueError(f"warmup_steps cannot be negative, got {config.warmup_steps}.")
    if config.train_limit is not None and config.train_limit < config.batch_size:
        raise ValueError(f"The training-image limit ({config.train_limit}) is below the batch size "
                         f"({config.batch_size}).")
    if not 0 <= config.label_smoothing < 1:
        raise ValueError(f"Label smoothing must be in [0, 1), got {config.label_smoothing}.")
    if config.amp not in AMP_MODES:
        raise ValueError(f"Unknown AMP mode {config.amp!r}; choose one of {', '.join(AMP_MODES)}.")
    if data is not None and config.batch_size > len(data.train_labels):
        raise ValueError(f"The batch size ({config.batch_size}) is larger than the "
                         f"{len(data.train_labels)} training images; lower it.")


def intra_op_threads(config: TrainConfig, cores: int | None = None) -> int:
    """torch intra-op threads that, with ``config.model_threads`` models at once, fill the
    cores without oversubscribing them (2 model threads × 2 threads on 2 cores ran at 0.4×)."""
    return max(1, (cores or os.cpu_count() or 1) // config.model_threads)


def load_training_data(config: TrainConfig, loader=load_data, **options) -> InMemoryData:
    """The data set of ``config`` at its image size, split with :data:`DATA_SEED`
    (``options``, e.g. ``progress``, go to the loader)."""
    return loader(config.data, image_size=config.image_size, val_size=config.val_size, seed=DATA_SEED, **options)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000, *,
             channels_last: bool = False, inference: bool = True) -> float:
    """Error rate (fraction wrong) on uint8 images, in eval mode (BatchNorm running stats)."""
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=labels.device)
    with torch.inference_mode() if inference else torch.no_grad():
        for start in range(0, len(labels), batch_size):
            batch = normalize(images[start:start + batch_size])
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            wrong += (model(batch).argmax(1) != labels[start:start + batch_size]).sum()
    model.train(was_training)
    return wrong.item() / max(1, len(labels))  # one sync for the whole pass


@contextlib.contextmanager
def _seeded(seed: int):
    """torch's global generator seeded for the block and restored after it: model
    initialisation draws from it (``reset_parameters``), and other threads may use it too."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    length = config.schedule_length
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=length)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=length)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=0.1)


class _Stream:
    """One seed's data order and augmentation draws. Every rank draws the same shuffled
    order (so the slices of a batch never overlap); augmentation draws its own stream per
    rank. One process keeps the single stream."""

    def __init__(self, seed: int, n_train: int, device: torch.device, rank: int, world_size: int):
        self.seed = seed
        self.order_generator = torch.Generator(device=device).manual_seed(seed)
        self.augment_generator = (self.order_generator if world_size == 1 else
                                  torch.Generator(device=device).manual_seed(seed + 1 + rank))
        self.n_train = n_train
        self.order = torch.randperm(n_train, generator=self.order_generator, device=device)
        self.cursor = 0

    def next_indices(self, batch_size: int, rank: int, per_rank: int) -> torch.Tensor:
        if self.cursor + batch_size > self.n_train:  # a new epoch: reshuffle
            self.order = torch.randperm(self.n_train, generator=self.order_generator, device=self.order.device)
            self.cursor = 0
        indices = self.order[self.cursor + rank * per_rank:self.cursor + (rank + 1) * per_rank]
        self.cursor += batch_size
        return indices


class _Trainee:
    """One model of one seed with its optimiser, schedule and running statistics."""

    def __init__(self, name: str, seed: int, config: TrainConfig, num_classes: int, device: torch.device):
        self.name = name
        self.seed = seed
        with _seeded(seed):
            self.model = build_model(name, device=device, width=config.width, shortcut=config.shortcut,
                                     num_classes=num_classes).train()
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, nesterov=config.nesterov, foreach=True)
        self.scheduler = _scheduler(self.optimizer, config)
        self.forward: nn.Module = torch.compile(self.model) if config.compile else self.model
        self.layers = [p for _, p in weighted_layers(self.model)]
        self.warming_up = get_model_spec(name).depth >= config.warmup_depth
        self.recent: deque[tuple[int, int]] = deque(maxlen=config.window)
        self.stopped: str | None = None
        self.last: ModelMetrics | None = None

    def train_error(self) -> float:
        wrong = sum(w for w, _ in self.recent)
        return wrong / max(1, sum(n for _, n in self.recent))

    def lr_now(self, config: TrainConfig, step: int) -> float:
        """This step's rate: §4.2's warm-up rate, or the schedule's (ramped up linearly over
        the first ``warmup_steps``)."""
        if self.warming_up:
            return config.warmup_lr
        scheduled = self.optimizer.param_groups[0]["lr"]
        return scheduled * min(1.0, step / config.warmup_steps) if config.warmup_steps else scheduled

    def optimizer_step(self, config: TrainConfig, scaler, lr: float) -> None:
        """One SGD step at ``lr`` (see :meth:`lr_now`), then the schedule moves on. The rate
        is set for this step only, so the scheduler never sees a warm-up."""
        groups = self.optimizer.param_groups
        scheduled = [group["lr"] for group in groups]
        for group in groups:
            group["lr"] = lr
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        for group, lr in zip(groups, scheduled):
            group["lr"] = lr
        if self.scheduler.last_epoch < config.schedule_length:  # an extended run holds the last rate
            self.scheduler.step()


class Training:
    """A lock-step run of ``config.models`` (× ``config.seeds``) on ``data``.

    ``data`` may live on any device; it is moved to ``device`` once. Models whose loss
    becomes NaN or infinite stop with a message while the others go on.

    Inside a torch.distributed process group (``torchrun``, see explorer.distributed) the
    models are wrapped in DistributedDataParallel and each rank trains on its own slice
    of every global batch of ``config.batch_size`` images; losses and error counts are
    summed over ranks, so every rank reports (and warms up on) the same numbers. Only
    rank 0 measures the validation error.
    """

    def __init__(self, config: TrainConfig, data: InMemoryData, *, device: torch.device | str = "cpu"):
        check_config(config, data)
        self.rank, self.world_size = rank_and_world_size()
        if config.batch_size % self.world_size:
            raise ValueError(f"The batch size ({config.batch_size}) must divide evenly over the "
                             f"{self.world_size} processes.")
        self.device = torch.device(device)
        if config.amp == "fp16" and self.device.type != "cuda":
            raise ValueError(f"fp16 mixed precision needs a CUDA device, not {self.device.type} (bf16 runs on CPUs too).")
        if config.amp == "bf16" and self.device.type not in ("cuda", "cpu"):
            raise ValueError(f"bf16 mixed precision runs on CUDA or the CPU, not {self.device.type}.")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
        self.config = config
        self.data = data.restricted(config.classes, config.train_limit).to(self.device)
        self.per_rank = config.batch_size // self.world_size
        n_train = len(self.data.train_labels)
        self.streams = [_Stream(seed, n_train, self.device, self.rank, self.world_size) for seed in config.seeds]
        self.trainees = [_Trainee(name, seed, config, self.data.num_classes, self.device)
                         for seed in config.seeds for name in config.models]
        if self.world_size > 1:
            for trainee in self.trainees:
                trainee.forward = DistributedDataParallel(
                    trainee.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
        self._pool: ThreadPoolExecutor | None = None  # while steps() runs, with model_threads > 1
        self.step = 0  # steps done
        self.elapsed_s = 0.0  # training wall time before this process (a resumed run)

    @property
    def models(self) -> dict[str, nn.Module]:
        """The trained models by name (the first seed's, for saving checkpoints)."""
        return {t.name: t.model for t in self.trainees if t.seed == self.config.seed}

    def steps(self, stop: threading.Event | None = None) -> Iterator[StepRecord]:
        """Train from the current step to ``config.steps``, yielding a record per step."""
        config = self.config
        if config.model_threads > 1 and len(self.trainees) > 1:
            with ThreadPoolExecutor(config.model_threads, thread_name_prefix="lock-step") as self._pool:
                yield from self._steps(stop)
            self._pool = None
        else:
            yield from self._steps(stop)

    def _steps(self, stop: threading.Event | None) -> Iterator[StepRecord]:
        config = self.config
        started = time.perf_counter() - self.elapsed_s
        n_train = len(self.data.train_labels)
        while self.step < config.steps:
            if stop is not None and stop.is_set():
                return
            step_start = time.perf_counter()
            step = self.step + 1
            metrics = self._one_step(step)
            self.step = step
            self.elapsed_s = time.perf_counter() - started
            active = sum(1 for t in self.trainees if not t.stopped) or 1
            yield StepRecord(step, step * config.batch_size / n_train, self.elapsed_s,
                             config.batch_size * active / max(time.perf_counter() - step_start, 1e-9), metrics)
            if all(t.stopped for t in self.trainees):
                return

    def _one_step(self, step: int) -> tuple[ModelMetrics, ...]:
        config = self.config
        record_grads = step % config.grad_every == 0 or step == 1
        pending: list[tuple[_Trainee, torch.Tensor, torch.Tensor | None, float]] = []
        finished: dict[int, ModelMetrics] = {}
        for stream in self.streams:
            indices = stream.next_indices(config.batch_size, self.rank, self.per_rank)
            images = self._augment(self.data.train_images[indices], stream)
            labels = self.data.train_labels[indices]
            group = [t for t in self.trainees if t.seed == stream.seed and not t.stopped]

            def train_one(trainee: _Trainee):
                lr = trainee.lr_now(config, step)
                stats, grads = self._forward_backward(trainee, images, labels, record_grads)
                trainee.optimizer_step(config, self.scaler, lr)
                return trainee, stats, grads, lr

            for done in (self._pool.map(train_one, group) if self._pool is not None else map(train_one, group)):
                pending.append(done)
                if not config.one_sync:
                    finished[id(done[0])] = self._finish(step, *pending.pop())
        if pending:  # one sync for every model's loss, error count and gradient norms
            stats = sum_over_ranks(torch.stack([p[1] for p in pending])).tolist()
            grads = [p[2] for p in pending if p[2] is not None]
            flat = torch.cat(grads).tolist() if grads else []
            for (trainee, _, grad, lr), values in zip(pending, stats):
                norms = None
                if grad is not None:
                    norms, flat = tuple(flat[:len(grad)]), flat[len(grad):]
                finished[id(trainee)] = self._finish(step, trainee, values, norms, lr)
        return tuple(finished.get(id(t)) or self._stopped_metrics(t) for t in self.trainees)

    def _augment(self, images: torch.Tensor, stream: _Stream) -> torch.Tensor:
        augmentation = self.config.augmentation
        if augmentation.erasing_p > 0:
            # Random erasing (torchvision v2) draws from torch's global generator: seed it from
            # this stream for the call, so a run (and a resumed run) erases the same boxes.
            seed = int(torch.randint(2**62, (1,), generator=stream.augment_generator, device=images.device))
            with _seeded(seed):
                batch = augment(images, augmentation, stream.augment_generator)
        else:
            batch = augment(images, augmentation, stream.augment_generator)
        return batch.contiguous(memory_format=torch.channels_last) if self.config.channels_last else batch

    def _forward_backward(self, trainee: _Trainee, images, labels, record_grads: bool):
        config = self.config
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16 if config.amp == "bf16" else torch.float16)
                    if config.amp != "off" else contextlib.nullcontext())
        with autocast:
            logits = trainee.forward(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        trainee.optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.scaler is not None:
            self.scaler.unscale_(trainee.optimizer)  # gradient norms in true units
        wrong = (logits.argmax(1) != labels).sum()
        stats = torch.stack([loss.detach().float() * len(labels), wrong.float(),
                             torch.tensor(float(len(labels)), device=loss.device)])
        grads = torch.stack(torch._foreach_norm([p.grad for p in trainee.layers])) if record_grads else None
        return stats, grads

    def _finish(self, step: int, trainee: _Trainee, stats, norms, lr: float) -> ModelMetrics:
        """Turn one model's synced numbers into its metrics (and validate when it is time)."""
        config = self.config
        if isinstance(stats, torch.Tensor):  # one sync per model (one_sync off)
            stats = sum_over_ranks(stats).tolist()
            norms = None if norms is None else tuple(norms.tolist())
        loss_sum, wrong, seen = stats
        loss_value = loss_sum / seen
        if not math.isfinite(loss_value):
            trainee.stopped = (f"{trainee.name} stopped at step {step}: the loss became "
                               f"{loss_value}. Try a lower learning rate.")
            trainee.last = ModelMetrics(trainee.name, loss_value, trainee.train_error(), None, lr, None,
                                        trainee.stopped, trainee.seed)
            return trainee.last
        trainee.recent.append((round(wrong), round(seen)))
        train_error = trainee.train_error()
        if trainee.warming_up and train_error < config.warmup_until_error and len(trainee.recent) >= 10:
            trainee.warming_up = False
        measure_val = self.rank == 0 and (step % config.val_every == 0 or step == config.steps)
        val_error = (evaluate(trainee.model, self.data.val_images[:config.val_limit],
                              self.data.val_labels[:config.val_limit], channels_last=config.channels_last,
                              inference=config.inference_mode) if measure_val else None)
        trainee.last = ModelMetrics(trainee.name, loss_value, train_error, val_error, lr, norms, None, trainee.seed)
        return trainee.last

    @staticmethod
    def _stopped_metrics(trainee: _Trainee) -> ModelMetrics:
        if trainee.last is not None:
            return replace(trainee.last, val_error=None, grad_norms=None)
        return ModelMetrics(trainee.name, math.nan, math.nan, None, 0.0, None, trainee.stopped, trainee.seed)

    # --- resuming ----------------------------------------------------------------------------

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, plain data): every model's weights and optimizer state, each stream's
        order and generators, torch's global generator, the schedules and the counters."""
        tensors: dict[str, torch.Tensor] = {"rng.global": torch.get_rng_state()}
        trainees = []
        for index, trainee in enumerate(self.trainees):
            for name, value in trainee.model.state_dict().items():
                tensors[f"model.{index}.{name}"] = value
            optimizer = trainee.optimizer.state_dict()
            for param, slots in optimizer["state"].items():
                for slot, value in slots.items():
                    tensors[f"optim.{index}.{param}.{slot}"] = value
            scheduler = {k: v for k, v in trainee.scheduler.state_dict().items() if k != "milestones"}
            trainees.append({"name": trainee.name, "seed": trainee.seed, "param_groups": optimizer["param_groups"],
                             "scheduler": scheduler, "recent": list(trainee.recent),
                             "warming_up": trainee.warming_up, "stopped": trainee.stopped,
                             "last": None if trainee.last is None else _metrics_dict(trainee.last)})
        streams = []
        for index, stream in enumerate(self.streams):
            tensors[f"stream.{index}.order"] = stream.order
            tensors[f"stream.{index}.order_rng"] = stream.order_generator.get_state()
            if stream.augment_generator is not stream.order_generator:
                tensors[f"stream.{index}.augment_rng"] = stream.augment_generator.get_state()
            streams.append({"seed": stream.seed, "cursor": stream.cursor})
        plain = {"step": self.step, "elapsed_s": self.elapsed_s, "trainees": trainees, "streams": streams}
        return tensors, plain

    def load_state_dict(self, tensors: dict[str, torch.Tensor], plain: dict) -> None:
        """Continue from :meth:`state_dict` (of a run with the same config)."""
        expected = [(t.name, t.seed) for t in self.trainees]
        saved = [(t["name"], t["seed"]) for t in plain["trainees"]]
        if saved != expected:
            raise ValueError(f"The state holds the models {saved}, this run trains {expected}.")
        torch.set_rng_state(tensors["rng.global"])
        for index, (trainee, saved_trainee) in enumerate(zip(self.trainees, plain["trainees"])):
            prefix = f"model.{index}."
            trainee.model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)},
                                          strict=True)
            slots: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith(f"optim.{index}."):
                    _, _, param, slot = key.split(".", 3)
                    slots.setdefault(int(param), {})[slot] = value
            trainee.optimizer.load_state_dict({"state": slots, "param_groups": saved_trainee["param_groups"]})
            trainee.scheduler.load_state_dict({**trainee.scheduler.state_dict(), **saved_trainee["scheduler"]})
            trainee.recent.extend(tuple(pair) for pair in saved_trainee["recent"])
            trainee.warming_up = saved_trainee["warming_up"]
            trainee.stopped = saved_trainee["stopped"]
            trainee.last = None if saved_trainee["last"] is None else _metrics_from_dict(saved_trainee["last"])
        for index, (stream, saved_stream) in enumerate(zip(self.streams, plain["streams"])):
            stream.order = tensors[f"stream.{index}.order"].to(self.device)
            stream.order_generator.set_state(tensors[f"stream.{index}.order_rng"])
            if stream.augment_generator is not stream.order_generator:
                stream.augment_generator.set_state(tensors[f"stream.{index}.augment_rng"])
            stream.cursor = saved_stream["cursor"]
        self.step, self.elapsed_s = plain["step"], plain["elapsed_s"]


def _metrics_dict(metrics: ModelMetrics) -> dict:
    return {**vars(metrics), "grad_norms": None if metrics.grad_norms is None else list(metrics.grad_norms)}


def _metrics_from_dict(values: dict) -> ModelMetrics:
    grads = values.get("grad_norms")
    return ModelMetrics(**{**values, "grad_norms": None if grads is None else tuple(grads)})


def train(config: TrainConfig, data: InMemoryData, *, device: torch.device | str = "cpu",
          stop: threading.Event | None = None,
          trained: dict[str, nn.Module] | None = None) -> Iterator[StepRecord]:
    """Train ``config.models`` in lock-step from scratch and yield a record after every step
    (:class:`Training` without the resume). Pass a dict as ``trained`` to receive the models
    (by name, the first seed's), e.g. to save them afterwards."""
    run = Training(config, data, device=device)
    if trained is not None:
        trained.update(run.models)
    yield from run.steps(stop)


def config_from_dict(values: dict) -> TrainConfig:
    """The :class:`TrainConfig` saved as ``asdict(config)`` (in a run record or a training
    state). Raises ValueError naming the fields if it was written by another version."""
    names = set(TrainConfig.__dataclass_fields__)
    unknown, missing = sorted(set(values) - names), sorted(names - set(values))
    if unknown or missing:
        raise ValueError("the config was written by another version of the training engine ("
                         + "; ".join(filter(None, [unknown and f"unknown fields: {', '.join(unknown)}",
                                                   missing and f"missing fields: {', '.join(missing)}"])) + ")")
    augmentation = dict(values["augmentation"])
    for key in ("erasing_scale", "erasing_ratio"):
        augmentation[key] = tuple(augmentation[key])
    return TrainConfig(**{**values, "models": tuple(values["models"]), "milestones": tuple(values["milestones"]),
                          "classes": None if values["classes"] is None else tuple(values["classes"]),
                          "augmentation": Augmentation(**augmentation)})
