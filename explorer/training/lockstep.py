"""The parts of a lock-step run (:class:`explorer.training.engine.Training`): each seed's stream of
batches, each model with its optimiser and schedule, the metrics they report, and how each
of them is written into, and read back from, a resumable state (:mod:`explorer.store.state`).

The state's keys are part of its file format: ``model.I.NAME`` and ``optim.I.PARAM.SLOT``
for model I's weights and optimiser slots, ``stream.I.order`` / ``order_rng`` /
``augment_rng`` for stream I; everything else is plain JSON-able data.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
import torch
import torch.nn.functional as F
from torch import nn

from explorer.training.distributed import sum_over_ranks
from explorer.models import get_model_spec
from explorer.training.recipe import TrainConfig


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


class Trainee:
    """One model of one seed with its optimiser, schedule and running statistics.
    ``layers`` are its weighted layers' parameters, whose gradient norms are recorded; ``amp``
    is what autocast computes in ("off", "bf16" or "fp16", the run's resolved mode)."""

    def __init__(self, name: str, seed: int, model: nn.Module, layers: list[nn.Parameter], config: TrainConfig,
                 amp: str = "off"):
        self.name = name
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)  # None: fp32
        self.seed = seed
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, nesterov=config.nesterov, foreach=True)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.forward: nn.Module = torch.compile(model) if config.compile else model
        self.layers = layers
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

    def forward_backward(self, images, labels, config: TrainConfig, scaler, device_type: str, record_grads: bool):
        """Loss and gradients of one batch; returns (loss sum, wrong, seen) and, if asked,
        the weighted layers' gradient norms, both still on the device (synced later)."""
        autocast = (torch.autocast(device_type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else contextlib.nullcontext())
        with autocast:
            logits = self.forward(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.unscale_(self.optimizer)  # gradient norms in true units
        wrong = (logits.argmax(1) != labels).sum()
        stats = torch.stack([loss.detach().float() * len(labels), wrong.float(),
                             torch.tensor(float(len(labels)), device=loss.device)])
        grads = torch.stack(torch._foreach_norm([p.grad for p in self.layers])) if record_grads else None
        return stats, grads

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

    def finish(self, step: int, stats, norms, lr: float, config: TrainConfig,
               validate: Callable[[nn.Module], float] | None) -> ModelMetrics:
        """Turn this model's synced numbers into its metrics; ``validate`` (when it is time)
        measures the validation error."""
        if isinstance(stats, torch.Tensor):  # one sync per model (one_sync off)
            stats = sum_over_ranks(stats).tolist()
            norms = None if norms is None else tuple(norms.tolist())
        loss_sum, wrong, seen = stats
        loss_value = loss_sum / seen
        if not math.isfinite(loss_value):
            self.stopped = (f"{self.name} stopped at step {step}: the loss became "
                            f"{loss_value}. Try a lower learning rate.")
            self.last = ModelMetrics(self.name, loss_value, self.train_error(), None, lr, None, self.stopped, self.seed)
            return self.last
        self.recent.append((round(wrong), round(seen)))
        train_error = self.train_error()
        if self.warming_up and train_error < config.warmup_until_error and len(self.recent) >= 10:
            self.warming_up = False
        val_error = validate(self.model) if validate is not None else None
        self.last = ModelMetrics(self.name, loss_value, train_error, val_error, lr, norms, None, self.seed)
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
