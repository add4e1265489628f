"""Training as a stream of step metrics: several models in lock-step on the same batches.

Every model sees exactly the same augmented batch at every step, so curves differ only
because the architectures differ (a fair version of the paper's Fig. 6). The loop is plain
PyTorch; it never prints. It yields a :class:`StepRecord` per step and the caller (the
degradation lab page, the CLI, a test) decides what to show. Setting ``stop`` ends the run
before the next step starts.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from explorer.data import Augmentation, InMemoryData, augment, normalize
from explorer.distributed import rank_and_world_size, sum_over_ranks
from explorer.models import build_model, get_model_spec


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
    width: int = 16  # filters in the first stage (16/32/64 in the paper)
    image_size: int = 32  # pixels; smaller images make a faster demo
    shortcut: str = "A"  # "A": zero-padding identity (the paper's CIFAR choice); "B": projection
    augmentation: Augmentation = field(default_factory=Augmentation)
    val_size: int | None = None  # None: 5k of CIFAR's 50k (§4.2's 45k/5k split), else 10%
    val_every: int = 500  # steps between validation passes
    val_limit: int | None = None  # images per validation pass (None: the whole split)
    window: int = 50  # steps the reported training error is averaged over
    grad_every: int = 10  # steps between per-layer gradient-norm records
    seed: int = 0


PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    # Class demo, chosen with benchmarks/degradation_demo.py on a 2-core CPU. At this size a
    # step costs mostly per-layer overhead, so narrow nets (6/12/24 filters) on 16×16 images
    # with batch 32 give the most steps per second. Measured: plain-56 trails plain-20 by 10
    # points after 14 s on real CIFAR-10 and 33 s on the synthetic set (4 filters: 22 s on
    # CIFAR-10, but nothing learned the synthetic set in 400 steps; 8 filters and batch 64:
    # no 10-point gap within 120 s on CIFAR-10). The whole demo takes about 65 s.
    "demo": TrainConfig(
        steps=400, batch_size=32, milestones=(300,), width=6, image_size=16,
        val_every=50, val_limit=1000, window=25, grad_every=5,
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
                         ("width", config.width), ("image size", config.image_size)):
        if value < 1:
            raise ValueError(f"The {label} must be at least 1, got {value}.")
    if not config.lr > 0:
        raise ValueError(f"The learning rate must be positive, got {config.lr}.")
    if config.shortcut not in ("A", "B"):
        raise ValueError(f"Shortcut option must be 'A' or 'B', got {config.shortcut!r}.")
    if config.image_size < 4:
        raise ValueError("Images must be at least 4×4 pixels: the nets halve them twice.")
    if data is not None and config.batch_size > len(data.train_labels):
        raise ValueError(f"The batch size ({config.batch_size}) is larger than the "
                         f"{len(data.train_labels)} training images; lower it.")


def _lr_at(config: TrainConfig, step: int) -> float:
    return config.lr * 0.1 ** sum(step >= m for m in config.milestones)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Error rate (fraction wrong) on uint8 images, in eval mode (BatchNorm running stats)."""
    was_training = model.training
    model.eval()
    wrong = 0
    for start in range(0, len(labels), batch_size):
        logits = model(normalize(images[start:start + batch_size]))
        wrong += (logits.argmax(1) != labels[start:start + batch_size]).sum().item()
    model.train(was_training)
    return wrong / max(1, len(labels))


class _Trainee:
    """One model with its optimiser and running statistics."""

    def __init__(self, name: str, config: TrainConfig, num_classes: int, device: torch.device):
        self.name = name
        self.model = build_model(name, device=device, width=config.width, shortcut=config.shortcut,
                                 num_classes=num_classes).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, foreach=True)
        self.forward: nn.Module = self.model  # DistributedDataParallel(model) under torchrun
        self.layers = [p for _, p in weighted_layers(self.model)]
        self.warming_up = get_model_spec(name).depth >= config.warmup_depth
        self.recent: deque[tuple[float, int]] = deque(maxlen=config.window)
        self.stopped: str | None = None
        self.last: ModelMetrics | None = None

    def train_error(self) -> float:
        wrong = sum(w for w, _ in self.recent)
        return wrong / max(1, sum(n for _, n in self.recent))


def train(config: TrainConfig, data: InMemoryData, *, device: torch.device | str = "cpu",
          stop: threading.Event | None = None,
          trained: dict[str, nn.Module] | None = None) -> Iterator[StepRecord]:
    """Train ``config.models`` in lock-step and yield a record after every step.

    ``data`` may live on any device; it is moved to ``device`` once. Models whose loss
    becomes NaN or infinite stop with a message while the others go on. Pass a dict as
    ``trained`` to receive the models (by name), e.g. to save them afterwards.

    Inside a torch.distributed process group (``torchrun``, see explorer.distributed) the
    models are wrapped in DistributedDataParallel and each rank trains on its own slice
    of every global batch of ``config.batch_size`` images; losses and error counts are
    summed over ranks, so every rank reports (and warms up on) the same numbers. Only
    rank 0 measures the validation error.
    """
    check_config(config, data)
    rank, world_size = rank_and_world_size()
    if config.batch_size % world_size:
        raise ValueError(f"The batch size ({config.batch_size}) must divide evenly over the "
                         f"{world_size} processes.")
    per_rank = config.batch_size // world_size
    device = torch.device(device)
    data = data.to(device)
    torch.manual_seed(config.seed)
    # Every rank draws the same shuffled order (so the slices of a batch never overlap);
    # augmentation draws its own stream per rank. One process keeps the single stream.
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augment_generator = (generator if world_size == 1 else
                         torch.Generator(device=device).manual_seed(config.seed + 1 + rank))
    trainees = [_Trainee(name, config, data.num_classes, device) for name in config.models]
    if world_size > 1:
        for trainee in trainees:
            trainee.forward = DistributedDataParallel(
                trainee.model, device_ids=[device.index] if device.type == "cuda" else None)
    if trained is not None:
        trained.update({t.name: t.model for t in trainees})
    n_train = len(data.train_labels)
    order = torch.randperm(n_train, generator=generator, device=device)
    cursor = 0
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        if stop is not None and stop.is_set():
            return
        if cursor + config.batch_size > n_train:  # a new epoch: reshuffle
            order = torch.randperm(n_train, generator=generator, device=device)
            cursor = 0
        step_start = time.perf_counter()
        indices = order[cursor + rank * per_rank:cursor + (rank + 1) * per_rank]
        cursor += config.batch_size
        images = augment(data.train_images[indices], config.augmentation, augment_generator)
        labels = data.train_labels[indices]
        measure_val = rank == 0 and (step % config.val_every == 0 or step == config.steps)
        record_grads = step % config.grad_every == 0 or step == 1
        metrics = []
        for trainee in trainees:
            if trainee.stopped:
                metrics.append(replace(trainee.last, val_error=None, grad_norms=None) if trainee.last else
                               ModelMetrics(trainee.name, math.nan, math.nan, None, 0.0, None, trainee.stopped))
                continue
            lr = config.warmup_lr if trainee.warming_up else _lr_at(config, step)
            for group in trainee.optimizer.param_groups:
                group["lr"] = lr
            logits = trainee.forward(images)
            loss = F.cross_entropy(logits, labels)
            trainee.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            wrong_here = (logits.argmax(1) != labels).sum()
            loss_sum, wrong, seen = sum_over_ranks(
                torch.stack([loss.detach() * len(labels), wrong_here.to(loss.dtype),
                             torch.tensor(float(len(labels)), device=device)])).tolist()
            loss_value = loss_sum / seen
            if not math.isfinite(loss_value):
                trainee.stopped = (f"{trainee.name} stopped at step {step}: the loss became "
                                   f"{loss_value}. Try a lower learning rate.")
                metrics.append(ModelMetrics(trainee.name, loss_value, trainee.train_error(), None, lr,
                                            None, trainee.stopped))
                trainee.last = metrics[-1]
                continue
            grads = None
            if record_grads:
                grads = tuple(torch.stack([p.grad.norm() for p in trainee.layers]).tolist())
            trainee.optimizer.step()
            trainee.recent.append((round(wrong), round(seen)))
            train_error = trainee.train_error()
            if trainee.warming_up and train_error < config.warmup_until_error and len(trainee.recent) >= 10:
                trainee.warming_up = False
            val_error = (evaluate(trainee.model, data.val_images[:config.val_limit],
                                  data.val_labels[:config.val_limit]) if measure_val else None)
            trainee.last = ModelMetrics(trainee.name, loss_value, train_error, val_error, lr, grads)
            metrics.append(trainee.last)
        step_time = time.perf_counter() - step_start
        active = sum(1 for t in trainees if not t.stopped) or 1
        yield StepRecord(step, step * config.batch_size / n_train, time.perf_counter() - start,
                         config.batch_size * active / max(step_time, 1e-9), tuple(metrics))
        if all(t.stopped for t in trainees):
            return
