"""Load every depth on a device and time it: the "does ResNet-152 run here?" check.

The timing runs with denormal floats flushed to zero (``torch.set_flush_denormal``): on a
CPU, arithmetic on numbers below 1.2e-38 can take a hundred times longer, which would make a
timing depend on the weights' values instead of on the model's cost. The flag is per thread
(x86's MXCSR register), so it covers the thread that runs the timing; intra-op worker threads
keep the mode they started with.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from explorer.devices import OtherLoad, synchronize
from explorer.models import build_model, get_model_spec
from explorer.store.weights import WeightsError, find_weights, load_weights_file


@dataclass(frozen=True)
class SpeedRow:
    name: str
    device: str
    trained: bool  # False: random initialisation, no ImageNet weights on this machine
    load_s: float  # build + load weights + move to the device
    weights_mb: float  # parameters and buffers
    peak_memory_mb: float | None  # CUDA only: peak allocated during the batch-N pass
    latency_ms: float  # median of `repeats` batch-1 forward passes
    throughput: float  # images/s, median of `repeats` batch-N forward passes
    batch_size: int
    denormals_flushed: bool = False  # timed with denormal floats flushed to zero


_SMALLEST_NORMAL = torch.finfo(torch.float32).tiny  # 1.18e-38: below it, floats are denormal


def denormals_are_flushed() -> bool:
    """Whether this thread treats denormal floats as zero: half the smallest normal float,
    times one, is 0 with flushing on and itself with it off."""
    return torch.tensor([_SMALLEST_NORMAL / 2]).mul(1.0).item() == 0.0


@contextlib.contextmanager
def flushed_denormals(enabled: bool = True) -> Iterator[bool]:
    """Inside the ``with``, denormal floats are flushed to zero on this thread (``enabled``);
    the previous mode comes back on leaving. Yields whether flushing is on (False on a CPU
    without the SSE3 flags, where ``torch.set_flush_denormal`` refuses)."""
    before = denormals_are_flushed()
    try:
        yield torch.set_flush_denormal(enabled) and enabled
    finally:
        torch.set_flush_denormal(before)


def _seconds(run: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


@dataclass(frozen=True)
class SpeedReport:
    """One timing of several models, taken in interleaved rounds."""

    rows: list[SpeedRow]
    rounds: int  # every model was timed once per round, in turn; each number is the median
    threads: int  # torch intra-op threads of the timing thread
    other_load: float | None  # cores other processes kept busy meanwhile (None: unknown here)

    @property
    def busy(self) -> bool | None:
        """Whether other work took a noticeable share of the machine while timing."""
        return None if self.other_load is None else self.other_load >= BUSY_CORES

    def busy_text(self) -> str:
        if self.other_load is None:
            return "Whether other programs were busy meanwhile is not known on this system."
        if self.busy:
            return (f"The machine was busy: other programs kept {self.other_load:.1f} cores working while "
                    "this ran, so every time is slower than on a quiet machine (the order is still fair: "
                    "each round timed every model in turn).")
        return f"The machine was quiet (other programs used {self.other_load:.1f} cores)."


BUSY_CORES = 0.3  # explorer.devices's threshold for "quiet"
CALIBRATION_MODEL = "resnet18"


def _loaded(name: str, device: torch.device) -> tuple[torch.nn.Module, bool, float]:
    start = time.perf_counter()
    model = build_model(name)
    path = find_weights(get_model_spec(name))
    trained = False
    if path is not None:
        try:
            load_weights_file(model, path)
            trained = True
        except WeightsError:
            trained = False  # timing a random model is still a valid timing
    model.to(device).eval()
    synchronize(device)
    return model, trained, time.perf_counter() - start


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[int]:
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _timed_rounds(models: dict, inputs: dict, device: torch.device, rounds: int,
                  progress: Callable[[int, int], None] | None):
    """Warm every model up, then time each in turn, ``rounds`` times: (batch-1 seconds, batch-N
    seconds, CUDA peak MB) per model."""
    latency: dict[str, list[float]] = {name: [] for name in models}
    batch: dict[str, list[float]] = {name: [] for name in models}
    peak: dict[str, float | None] = {name: None for name in models}
    for name, model in models.items():
        model(inputs[name][0])  # warm-up: lazy initialisation, cuDNN algorithm search
    total, done = 2 * len(models) * rounds, 0
    for _ in range(rounds):
        for name, model in models.items():
            one, many = inputs[name]
            latency[name].append(_seconds(lambda: model(one), device))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            batch[name].append(_seconds(lambda: model(many), device))
            if device.type == "cuda":
                peak[name] = torch.cuda.max_memory_allocated(device) / 2**20
            done += 2
            if progress is not None:
                threads = torch.get_num_threads()
                progress(done, total)
                torch.set_num_threads(threads)  # a scheduled job's pace may re-share the cores: time as begun
    return latency, batch, peak


def measure_speed(names: Iterable[str], device: torch.device, *, batch_size: int = 4,
                  image_size: int | None = None, rounds: int = 3, threads: int | None = 1,
                  flush_denormals: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> SpeedReport:
    """Time batch-1 latency and batch-N throughput of every model, fairly on a shared machine.

    Every model is loaded first (load time measured), warmed up once, then timed in
    ``rounds`` interleaved rounds (A, B, C, A, B, C, …): a burst of other work slows every
    model's pass in that round alike, instead of one model's whole measurement. Each number
    is the median over the rounds. The timing thread uses ``threads`` torch threads (1 by
    default: one core's work, so time per image rises with the model's multiply-adds, as in
    Table 1, instead of with how well a model keeps several cores busy); ``None`` keeps the
    thread count as it is. Inference only, denormal floats flushed to zero while timing.
    ``progress(done, total)`` is called after each timed pass. The image size defaults to each
    model's own input size (224 for ImageNet models).
    """
    names = list(names)
    if batch_size < 1 or rounds < 1:
        raise ValueError("batch_size and rounds must be at least 1.")
    other = OtherLoad(window_s=0.0)
    other.cores()  # the first reading: the report's is the load over the whole timing
    loaded = {name: _loaded(name, device) for name in names}
    inputs = {}
    for name in names:
        channels, height, width = get_model_spec(name).input_size
        if image_size is not None:
            height = width = image_size
        inputs[name] = (torch.randn(1, channels, height, width, device=device),
                        torch.randn(batch_size, channels, height, width, device=device))
    with torch.inference_mode(), _threads(threads) as used, flushed_denormals(flush_denormals) as flushed:
        models = {name: loaded[name][0] for name in names}
        latency, batch, peak = _timed_rounds(models, inputs, device, rounds, progress)
    rows = []
    for name in names:
        model, trained, load_s = loaded[name]
        weights_mb = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 2**20
        rows.append(SpeedRow(name, str(device), trained, load_s, weights_mb, peak[name],
                             statistics.median(latency[name]) * 1e3, batch_size / statistics.median(batch[name]),
                             batch_size, flushed))
    del loaded, inputs
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return SpeedReport(rows, rounds, used, other.cores())


def estimate_speed_seconds(names: Iterable[str], seconds_per_gmac: float, *, batch_size: int = 4,
                           rounds: int = 3) -> float:
    """How long :func:`measure_speed` will take, from one calibrated pass's seconds per 10⁹
    multiply-adds (:func:`calibrate`): warm-up plus every round's batch-1 and batch-N passes,
    each model's time proportional to its multiply-adds (Table 1's FLOPs), plus loading."""
    names = list(names)
    work = sum(_gmacs(name) * (1 + rounds * (1 + batch_size)) for name in names)
    return work * seconds_per_gmac + sum(LOAD_SECONDS_PER_GMAC * _gmacs(name) for name in names)


# Building a torchvision ResNet (its random initialisation) or loading its weights grows with
# its size: measured 0.27 s for ResNet-18 (1.8 GMACs) to 2.3 s for ResNet-152 (11.3), 2-core CPU.
LOAD_SECONDS_PER_GMAC = 0.2


def _gmacs(name: str) -> float:
    """The paper's multiply-adds (Table 1's FLOPs) of ``name``, ×10⁹, at its own input size."""
    spec = get_model_spec(name)
    if spec.paper is not None and spec.paper.gmacs is not None:
        return spec.paper.gmacs
    raise ValueError(f"{name} has no multiply-add count in the registry to estimate its time from.")


def calibrate(device: torch.device, threads: int | None = 1) -> float:
    """Seconds per 10⁹ multiply-adds on this machine: one timed batch-1 pass of ResNet-18
    (after a warm-up), at the thread count :func:`measure_speed` uses. Takes about 0.2 s on a
    2-core CPU."""
    model = build_model(CALIBRATION_MODEL).to(device).eval()
    one = torch.randn(1, *get_model_spec(CALIBRATION_MODEL).input_size, device=device)
    with torch.inference_mode(), _threads(threads), flushed_denormals():
        model(one)
        seconds = min(_seconds(lambda: model(one), device) for _ in range(2))
    return seconds / _gmacs(CALIBRATION_MODEL)
