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

from explorer.devices import synchronize
from explorer.models import build_model, get_model_spec
from explorer.weights import WeightsError, find_weights, load_weights_file


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


def _median_seconds(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_speed(names: Iterable[str], device: torch.device, *, batch_size: int = 8,
                  image_size: int | None = None, repeats: int = 3,
                  flush_denormals: bool = True) -> Iterator[SpeedRow]:
    """Yield one row per model, so a caller can show progress between models.

    Inference only (``torch.inference_mode``), one warm-up pass before timing, denormal
    floats flushed to zero while timing (``flush_denormals=False`` to compare). The image
    size defaults to each model's own input size (224 for ImageNet models).
    """
    if batch_size < 1 or repeats < 1:
        raise ValueError("batch_size and repeats must be at least 1.")
    for name in names:
        spec = get_model_spec(name)
        channels, height, width = spec.input_size
        if image_size is not None:
            height = width = image_size
        start = time.perf_counter()
        model = build_model(name)
        path = find_weights(spec)
        trained = False
        if path is not None:
            try:
                load_weights_file(model, path)
                trained = True
            except WeightsError:
                trained = False  # timing a random model is still a valid timing
        model.to(device)
        synchronize(device)
        load_s = time.perf_counter() - start

        weights_mb = sum(t.numel() * t.element_size()
                         for t in [*model.parameters(), *model.buffers()]) / 2**20
        one = torch.randn(1, channels, height, width, device=device)
        many = torch.randn(batch_size, channels, height, width, device=device)
        with torch.inference_mode(), flushed_denormals(flush_denormals) as flushed:
            model(one)  # warm-up: lazy initialisation, cuDNN algorithm search
            latency = _median_seconds(lambda: model(one), device, repeats)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            batch_time = _median_seconds(lambda: model(many), device, repeats)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        # The row is yielded outside the ``with``: the caller's code never runs flushed.
        yield SpeedRow(name, str(device), trained, load_s, weights_mb, peak,
                       latency * 1e3, batch_size / batch_time, batch_size, flushed)
        del model, one, many
        if device.type == "cuda":
            torch.cuda.empty_cache()
