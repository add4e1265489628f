"""The parts of a lock-step run (:class:`explorer.training.engine.Training`): each seed's stream of
batches, each model with its optimiser and schedule around :func:`explorer.training.step.train_step`,
the layers the engine wraps a model in (DDP, torch.compile, autocast), the one read of a step's
numbers on the host, the metrics they become, and how each of them is written into, and read back
from, a resumable state (:mod:`explorer.store.state`).

The state's keys are part of its file format: ``model.I.NAME`` and ``optim.I.PARAM.SLOT``
for model I's weights and optimiser slots, ``stream.I.order`` / ``order_rng`` /
``augment_rng`` for stream I; everything else is plain JSON-able data.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from explorer.models import get_model_spec, weighted_layers
from explorer.training.distributed import sum_over_ranks
from explorer.training.recipe import EngineSwitches, TrainConfig
from explorer.training.step import StepMetrics, train_step

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # a run's resolved amp mode -> dtype


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


@contextlib.contextmanager
def seeded(seed: int):
    """torch's global generator seeded for the block and restored after it: model
    initialisation draws from it (``reset_parameters``), and other threads may use it too."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Autocast(nn.Module):
    """Mixed precision as a layer around a model: its forward under ``torch.autocast``, the
    logits handed on in fp32, which is how autocast computes the loss from them anyway
    (cross-entropy is on its fp32 list), so train_step computes the same numbers unchanged."""

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(images).float()


def engine_forward(model: nn.Module, switches: EngineSwitches, amp: str, device: torch.device,
                   distributed: bool) -> nn.Module:
    """``model`` as the engine runs it, each speed switch a layer around it: DistributedDataParallel
    (each rank a slice of every batch, the gradients averaged), torch.compile, then autocast in
    the run's resolved ``amp`` mode ("off", "bf16" or "fp16")."""
    forward = model
    if distributed:
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if switches.compile:
        forward = torch.compile(forward)
    dtype = AUTOCAST_DTYPES.get(amp)
    return Autocast(forward, device.type, dtype) if dtype is not None else forward


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    length = config.schedule_length
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=length)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=length)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=0.1)


class Stream:
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

    def state_dict(self, index: int, tensors: dict[str, torch.Tensor]) -> dict:
        """Put this stream's order and generator states into ``tensors``; return the rest."""
        tensors[f"stream.{index}.order"] = self.order
        tensors[f"stream.{index}.order_rng"] = self.order_generator.get_state()
        if self.augment_generator is not self.order_generator:
            tensors[f"stream.{index}.augment_rng"] = self.augment_generator.get_state()
        return {"seed": self.seed, "cursor": self.cursor}

    def load_state_dict(self, index: int, tensors: dict[str, torch.Tensor], saved: dict) -> None:
        self.order = tensors[f"stream.{index}.order"].to(self.order.device)
        self.order_generator.set_state(tensors[f"stream.{index}.order_rng"])
        if self.augment_generator is not self.order_generator:
            self.augment_generator.set_state(tensors[f"stream.{index}.augment_rng"])
        self.cursor = saved["cursor"]


@dataclass(frozen=True)
class Trained:
    """One model's step as the device left it (no number read yet)."""

    trainee: Trainee
    lr: float  # the rate it stepped at
    metrics: StepMetrics
    images: int  # the batch it stepped on (this rank's slice)
    val_error: float | None = None  # measured right after the step, when it was a validation step

    def counts(self) -> torch.Tensor:
        """(loss summed over the batch, images wrong, images seen): the numbers summed over ranks."""
        seen = torch.tensor(float(self.images), device=self.metrics.loss.device)
        return torch.stack([self.metrics.loss.float() * self.images, self.metrics.wrong.float(), seen])


@dataclass(frozen=True)
class Measured:
    """One model's step read on the host: what :meth:`Trainee.finish` turns into its metrics."""

    loss_sum: float  # cross-entropy summed over the images of every rank
    wrong: float
    seen: float
    grad_norms: tuple[float, ...] | None
    lr: float
    val_error: float | None


def read_on_host(trained: list[Trained]) -> list[Measured]:
    """The numbers of ``trained`` read from the device at once (each read waits for all the work
    queued before it): losses and error counts summed over the ranks, gradient norms as they
    are (DDP averaged the gradients, so every rank has the same). The models must come in the
    same order on every rank."""
    if not trained:
        return []
    counts = sum_over_ranks(torch.stack([done.counts() for done in trained])).tolist()
    norms = [done.metrics.grad_norms for done in trained if done.metrics.grad_norms is not None]
    flat = torch.cat(norms).tolist() if norms else []
    measured = []
    for done, (loss_sum, wrong, seen) in zip(trained, counts):
        grads = None
        if done.metrics.grad_norms is not None:
            size = len(done.metrics.grad_norms)
            grads, flat = tuple(flat[:size]), flat[size:]
        measured.append(Measured(loss_sum, wrong, seen, grads, done.lr, done.val_error))
    return measured


class Trainee:
    """One model of one seed with its optimiser, schedule and running statistics. ``forward``
    is the model as the engine runs it (:func:`engine_forward`); ``amp`` the run's resolved
    mixed precision ("off", "bf16" or "fp16"). Its weighted layers' gradient norms are recorded."""

    def __init__(self, name: str, seed: int, model: nn.Module, config: TrainConfig, *,
                 forward: nn.Module | None = None, amp: str = "off"):
        self.name = name
        self.seed = seed
        self.model = model
        self.forward = model if forward is None else forward
        self.autocast_dtype = AUTOCAST_DTYPES.get(amp)  # None: fp32
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")  # fp16 runs on CUDA only
        self.optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, nesterov=config.nesterov, foreach=True)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.layers = [weight for _, weight in weighted_layers(model)]
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

    def train_on(self, images: torch.Tensor, labels: torch.Tensor, step: int, config: TrainConfig,
                 record_grads: bool) -> Trained:
        """This model's part of ``step``: one :func:`train_step` at :meth:`lr_now`'s rate, then
        the schedule moves on. Nothing is read from the device."""
        lr = self.lr_now(config, step)
        with self._rate(lr):
            metrics = train_step(self.forward, self.optimizer, images, labels, label_smoothing=config.label_smoothing,
                                 layers=self.layers if record_grads else (), scaler=self.scaler)
        if self.scheduler.last_epoch < config.schedule_length:  # an extended run holds the last rate
            self.scheduler.step()
        return Trained(self, lr, metrics, len(labels))

    @contextlib.contextmanager
    def _rate(self, lr: float):
        """The optimiser at ``lr`` for one step only, so the scheduler never sees a warm-up."""
        groups = self.optimizer.param_groups
        scheduled = [group["lr"] for group in groups]
        for group in groups:
            group["lr"] = lr
        try:
            yield
        finally:
            for group, rate in zip(groups, scheduled):
                group["lr"] = rate

    def finish(self, step: int, measured: Measured, config: TrainConfig) -> ModelMetrics:
        """Turn this model's numbers of ``step``, read on the host, into its metrics; a loss
        that is no longer finite stops the model."""
        loss_value = measured.loss_sum / measured.seen
        if not math.isfinite(loss_value):
            self.stopped = (f"{self.name} stopped at step {step}: the loss became "
                            f"{loss_value}. Try a lower learning rate.")
            self.last = ModelMetrics(self.name, loss_value, self.train_error(), None, measured.lr, None,
                                     self.stopped, self.seed)
            return self.last
        self.recent.append((round(measured.wrong), round(measured.seen)))
        train_error = self.train_error()
        if self.warming_up and train_error < config.warmup_until_error and len(self.recent) >= 10:
            self.warming_up = False
        self.last = ModelMetrics(self.name, loss_value, train_error, measured.val_error, measured.lr,
                                 measured.grad_norms, None, self.seed)
        return self.last

    def stopped_metrics(self) -> ModelMetrics:
        """What a stopped model reports at later steps: its last numbers, nothing measured."""
        if self.last is not None:
            return replace(self.last, val_error=None, grad_norms=None)
        return ModelMetrics(self.name, math.nan, math.nan, None, 0.0, None, self.stopped, self.seed)

    def state_dict(self, index: int, tensors: dict[str, torch.Tensor]) -> dict:
        """Put this model's weights and optimiser slots into ``tensors``; return the rest."""
        for name, value in self.model.state_dict().items():
            tensors[f"model.{index}.{name}"] = value
        optimizer = self.optimizer.state_dict()
        for param, slots in optimizer["state"].items():
            for slot, value in slots.items():
                tensors[f"optim.{index}.{param}.{slot}"] = value
        scheduler = {k: v for k, v in self.scheduler.state_dict().items() if k != "milestones"}
        return {"name": self.name, "seed": self.seed, "param_groups": optimizer["param_groups"],
                "scheduler": scheduler, "recent": list(self.recent), "warming_up": self.warming_up,
                "stopped": self.stopped, "last": None if self.last is None else _metrics_dict(self.last)}

    def load_state_dict(self, index: int, tensors: dict[str, torch.Tensor], saved: dict) -> None:
        prefix = f"model.{index}."
        self.model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)},
                                   strict=True)
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(f"optim.{index}."):
                _, _, param, slot = key.split(".", 3)
                slots.setdefault(int(param), {})[slot] = value
        self.optimizer.load_state_dict({"state": slots, "param_groups": saved["param_groups"]})
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), **saved["scheduler"]})
        self.recent.extend(tuple(pair) for pair in saved["recent"])
        self.warming_up = saved["warming_up"]
        self.stopped = saved["stopped"]
        self.last = None if saved["last"] is None else _metrics_from_dict(saved["last"])


def _metrics_dict(metrics: ModelMetrics) -> dict:
    return {**vars(metrics), "grad_norms": None if metrics.grad_norms is None else list(metrics.grad_norms)}


def _metrics_from_dict(values: dict) -> ModelMetrics:
    grads = values.get("grad_norms")
    return ModelMetrics(**{**values, "grad_norms": None if grads is None else tuple(grads)})
