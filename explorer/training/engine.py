"""Training as a stream of step metrics: several models in lock-step on the same batches.

Every model sees exactly the same augmented batch at every step, so curves differ only
because the architectures differ (a fair version of the paper's Fig. 6). With
``repeat`` > 1 every model is trained once per seed, all in lock-step; the models of one
seed share that seed's batches, so a band over seeds shows how much of a gap is noise.

The loop is plain PyTorch; it never prints. :class:`Training` yields a :class:`StepRecord`
per step and the caller (the degradation lab page, the CLI, a test) decides what to show.
Setting ``stop`` ends the run before the next step starts. :meth:`Training.state_dict`
is everything needed to continue the run exactly (see :mod:`explorer.store.state`).

One model's step is :func:`explorer.training.step.train_step`, plain PyTorch; this module
composes it into a lock-step run. A step trains every model on its seed's batch (in lanes, one
thread each, with ``model_threads`` > 1), then reads all their numbers from the device at once
(``one_sync``; else once per model), then turns them into metrics. DDP, torch.compile and
autocast wrap each model (:func:`explorer.training.lockstep.engine_forward`).

The recipe (:class:`TrainConfig`, the presets, the checks) lives in :mod:`explorer.training.recipe`,
each model's and each seed's part of a step in :mod:`explorer.training.lockstep`, the validation pass
in :mod:`explorer.training.evaluate` (shared with fine-tuning); all of it is importable from here.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import torch
from torch import nn

from explorer.data import InMemoryData, augment, load_data
from explorer.devices import resolve_amp
from explorer.models import build_model, get_model_spec, weighted_layers
from explorer.training.distributed import rank_and_world_size
from explorer.training.evaluate import evaluate
from explorer.training.lockstep import (
    ModelMetrics,
    StepRecord,
    Stream,
    Trained,
    Trainee,
    engine_forward,
    read_on_host,
    seeded,
)
from explorer.training.recipe import (
    AMP_MODES,
    DATA_SEED,
    PRESETS,
    SCHEDULES,
    EngineSwitches,
    TrainConfig,
    check_config,
    config_from_dict,
    preset,
)

__all__ = ["AMP_MODES", "DATA_SEED", "PRESETS", "SCHEDULES", "EngineSwitches", "ModelMetrics", "StepRecord",
           "TrainConfig", "Training", "check_config", "config_from_dict", "evaluate", "layer_names",
           "load_training_data", "preset", "train"]


def layer_names(config: TrainConfig) -> dict[str, list[str]]:
    """Each model's weighted layers, input to output: the rows of the gradient heatmaps."""
    return {name: list(_weighted_layer_names(name, config.width, config.shortcut)) for name in config.models}


@functools.lru_cache(maxsize=64)
def _weighted_layer_names(model: str, width: int, shortcut: str) -> tuple[str, ...]:
    # Once per architecture: even on the meta device, building the class demo's four nets took
    # 0.3 s, and every Start in a class of students asked for them again.
    return tuple(layer for layer, _ in weighted_layers(build_model(model, device="meta", width=width, shortcut=shortcut)))


def load_training_data(config: TrainConfig, loader=load_data, **options) -> InMemoryData:
    """The data set of ``config`` at its image size, split with :data:`DATA_SEED`
    (``options``, e.g. ``progress``, go to the loader)."""
    return loader(config.data, image_size=config.image_size, val_size=config.val_size, seed=DATA_SEED, **options)


def checked_amp(requested: str, device: torch.device) -> str:
    """What autocast computes in for the config's ``amp`` on ``device`` ("auto" resolved: "off",
    "bf16" or "fp16"); ValueError where the device cannot."""
    amp = resolve_amp(requested, device)
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"fp16 mixed precision needs a CUDA device, not {device.type} (bf16 runs on CPUs too).")
    if amp == "bf16" and device.type not in ("cuda", "cpu"):
        raise ValueError(f"bf16 mixed precision runs on CUDA or the CPU, not {device.type}.")
    return amp


@dataclass(frozen=True)
class _Work:
    """One seed's share of a step: its batch, and what to measure besides the loss."""

    images: torch.Tensor
    labels: torch.Tensor
    step: int
    record_grads: bool
    validating: bool


class Training:
    """A lock-step run of ``config.models`` (× ``config.seeds``) on ``data``.

    ``data`` may live on any device; it is moved to ``device`` once. Models whose loss
    becomes NaN or infinite stop with a message while the others go on.

    Inside a torch.distributed process group (``torchrun``, see explorer.training.distributed) the
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
        self.amp = checked_amp(config.engine.amp, self.device)  # what autocast computes in
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = config.engine.cudnn_benchmark
        self.config = config
        self.data = data.restricted(config.classes, config.train_limit).to(self.device)
        self.per_rank = config.batch_size // self.world_size
        n_train = len(self.data.train_labels)
        self.streams = [Stream(seed, n_train, self.device, self.rank, self.world_size) for seed in config.seeds]
        self.trainees = [self._trainee(name, seed) for seed in config.seeds for name in config.models]
        self._pool: ThreadPoolExecutor | None = None  # while steps() runs, with model_threads > 1
        self.step = 0  # steps done
        self.elapsed_s = 0.0  # training wall time before this process (a resumed run)
        # torch threads the run may use, split among its model threads; None: the count of the
        # thread that steps it, read when stepping begins (a lab job sets its scheduler share).
        self.threads: int | None = None
        self._stepping_threads = 1

    def _trainee(self, name: str, seed: int) -> Trainee:
        """``name`` initialised from ``seed`` alone, so the same seed builds the same net in any run."""
        config = self.config
        with seeded(seed):
            model = build_model(name, device=self.device, width=config.width, shortcut=config.shortcut,
                                num_classes=self.data.num_classes).train()
        if config.engine.channels_last:
            model = model.to(memory_format=torch.channels_last)
        forward = engine_forward(model, config.engine, self.amp, self.device, distributed=self.world_size > 1)
        return Trainee(name, seed, model, config, forward=forward, amp=self.amp)

    @property
    def models(self) -> dict[str, nn.Module]:
        """The trained models by name (the first seed's, for saving checkpoints)."""
        return {t.name: t.model for t in self.trainees if t.seed == self.config.seed}

    def steps(self, stop: threading.Event | None = None) -> Iterator[StepRecord]:
        """Train from the current step to ``config.steps``, yielding a record per step."""
        # Read before the model threads size their own teams: torch.get_num_threads answers
        # with the count last set by any thread, not the calling thread's team.
        self._stepping_threads = torch.get_num_threads()
        model_threads = self.config.engine.model_threads
        if model_threads > 1 and len(self.trainees) > 1:
            with ThreadPoolExecutor(model_threads, thread_name_prefix="lock-step") as self._pool:
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
        """Every model's train_step on its seed's batch, then their numbers read on the host
        (once for all of them with ``one_sync``, else once per model), then their metrics."""
        config = self.config
        record_grads = step % config.grad_every == 0 or step == 1
        validating = self.rank == 0 and (step % config.val_every == 0 or step == config.steps)
        trained: list[Trained] = []
        for stream in self.streams:
            indices = stream.next_indices(config.batch_size, self.rank, self.per_rank)
            work = _Work(self._augment(self.data.train_images[indices], stream), self.data.train_labels[indices],
                         step, record_grads, validating)
            group = [t for t in self.trainees if t.seed == stream.seed and not t.stopped]
            trained += self._train_group(group, work)
        # The config's order, whatever the lanes: every rank must stack (and sum) the models alike.
        trained.sort(key=lambda done: self.trainees.index(done.trainee))
        reads = [trained] if config.engine.one_sync else [[done] for done in trained]
        measured = [values for read in reads for values in read_on_host(read)]
        for done, values in zip(trained, measured):
            done.trainee.finish(step, values, config)
        stepped = {done.trainee for done in trained}
        return tuple(t.last if t in stepped else t.stopped_metrics() for t in self.trainees)

    def _train_group(self, group: list[Trainee], work: _Work) -> list[Trained]:
        """One seed's models on its batch: one after another in this thread, or in lanes at once."""
        lanes = self._lanes(group) if self._pool is not None else [group]
        if len(lanes) == 1:
            return [self._train(trainee, work) for trainee in group]
        per_lane = max(1, self._threads() // len(lanes))
        futures = [self._pool.submit(self._train_lane, lane, per_lane, work) for lane in lanes]
        return [done for future in futures for done in future.result()]

    def _train_lane(self, lane: list[Trainee], threads: int, work: _Work) -> list[Trained]:
        torch.set_num_threads(threads)  # this thread's own team (and the count new threads copy)
        return [self._train(trainee, work) for trainee in lane]

    def _train(self, trainee: Trainee, work: _Work) -> Trained:
        done = trainee.train_on(work.images, work.labels, work.step, self.config, work.record_grads)
        # Validated where it trained: the stepping thread validating every model in turn, on
        # one core, held the demo's lanes back (5.7 against 7.0 steps/s without validation).
        return replace(done, val_error=self._val_error(trainee.model)) if work.validating else done

    def _threads(self) -> int:
        return self.threads or self._stepping_threads

    def _lanes(self, group: list[Trainee]) -> list[list[Trainee]]:
        """``group`` split into the lanes trained at once, one per model thread but no more
        than the run's threads: deepest net first, each into the lane with the fewest layers
        so far (the step waits for its slowest lane; the demo's four nets pair a 56- with a
        20-layer net in each)."""
        count = min(self.config.engine.model_threads, len(group), self._threads())
        if count <= 1:
            return [group]
        lanes: list[list[Trainee]] = [[] for _ in range(count)]
        layers = [0] * count
        for trainee in sorted(group, key=lambda t: -get_model_spec(t.name).depth):
            lightest = layers.index(min(layers))
            lanes[lightest].append(trainee)
            layers[lightest] += get_model_spec(trainee.name).depth
        return lanes

    def _val_error(self, model: nn.Module) -> float:
        """``model``'s error on the validation split (its first ``val_limit`` images)."""
        config = self.config
        images, labels = self.data.val_images[:config.val_limit], self.data.val_labels[:config.val_limit]
        return evaluate(model, images, labels, channels_last=config.engine.channels_last,
                        inference=config.engine.inference_mode).error

    def _augment(self, images: torch.Tensor, stream: Stream) -> torch.Tensor:
        augmentation = self.config.augmentation
        if augmentation.erasing_p > 0:
            # Random erasing (torchvision v2) draws from torch's global generator: seed it from
            # this stream for the call, so a run (and a resumed run) erases the same boxes.
            seed = int(torch.randint(2**62, (1,), generator=stream.augment_generator, device=images.device))
            with seeded(seed):
                batch = augment(images, augmentation, stream.augment_generator)
        else:
            batch = augment(images, augmentation, stream.augment_generator)
        return batch.contiguous(memory_format=torch.channels_last) if self.config.engine.channels_last else batch

    # --- resuming (the keys are explorer.training.lockstep's) ------------------------------------------

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, plain data): every model's weights and optimizer state, each stream's
        order and generators, torch's global generator, the schedules and the counters."""
        tensors: dict[str, torch.Tensor] = {"rng.global": torch.get_rng_state()}
        trainees = [trainee.state_dict(index, tensors) for index, trainee in enumerate(self.trainees)]
        streams = [stream.state_dict(index, tensors) for index, stream in enumerate(self.streams)]
        return tensors, {"step": self.step, "elapsed_s": self.elapsed_s, "trainees": trainees, "streams": streams}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], plain: dict) -> None:
        """Continue from :meth:`state_dict` (of a run with the same config)."""
        expected = [(t.name, t.seed) for t in self.trainees]
        saved = [(t["name"], t["seed"]) for t in plain["trainees"]]
        if saved != expected:
            raise ValueError(f"The state holds the models {saved}, this run trains {expected}.")
        torch.set_rng_state(tensors["rng.global"])
        for index, (trainee, saved_trainee) in enumerate(zip(self.trainees, plain["trainees"])):
            trainee.load_state_dict(index, tensors, saved_trainee)
        for index, (stream, saved_stream) in enumerate(zip(self.streams, plain["streams"])):
            stream.load_state_dict(index, tensors, saved_stream)
        self.step, self.elapsed_s = plain["step"], plain["elapsed_s"]


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
