"""The machine: which accelerator to run on (CUDA, then Apple's MPS, then the CPU), and how busy
other processes keep its cores.

Cores, for the scheduler's thread share: On a laptop the browser showing the lab shares the two cores with the server. A training job
with a team of two torch threads runs about twice as fast as with one while nothing else
runs, but when another process takes a core, OpenMP's second thread spin-waits for it and
the job crawls (benchmarks/scheduler_threads.py: 0.2× at load 12). So a lone job takes every
core only while the others are quiet, measured here from Linux's ``/proc/stat`` (all cores'
busy time) less this process's own CPU time. Elsewhere the answer is unknown (None).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch


def available_devices() -> list[str]:
    """Device names usable here, best first (the default is the first one)."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if torch.backends.mps.is_available():
        names.append("mps")
    names.append("cpu")
    return names


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device if it is usable here, else the best available one.

    Raises ``ValueError`` for a device that is named but not available (say ``cuda`` on a
    laptop), so a typo on the command line never silently falls back to the CPU.
    """
    if requested is None or requested == "auto":
        return torch.device(available_devices()[0])
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise ValueError(f"Unknown device {requested!r}: use one of {available_devices()}.") from error
    if device.type not in available_devices():
        raise ValueError(
            f"Device {requested!r} is not available on this machine; "
            f"available: {', '.join(available_devices())}."
        )
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so wall-clock timings measure the work and not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def has_native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU with bf16, or a CPU with
    AMX or AVX-512 BF16. There bf16 autocast trains 1.6-1.7× faster than fp32 at paper width and
    1.4× on the class demo (benchmarks/engine_speed.py, 2-core Xeon with AMX); elsewhere bf16 is
    emulated, about ten times slower (0.1× on a 2-core EPYC without AVX-512)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(probe() for probe in probes if probe is not None)


def resolve_amp(amp: str, device: torch.device | str) -> str:
    """What autocast computes in for a config's ``amp``: "auto" is "bf16" where ``device``
    has it in hardware (:func:`has_native_bf16`) and "off" elsewhere; other modes as given."""
    if amp != "auto":
        return amp
    return "bf16" if has_native_bf16(device) else "off"


def machine_description(device: torch.device | str) -> str:
    """What a number was measured on, for manifests and records: "NVIDIA H200" for a GPU;
    for a CPU its model name and core count, "AMD EPYC, 2 cores" (from /proc/cpuinfo on Linux)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


# How busy the cores are (used for the scheduler's thread share and the speed check).

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_s() -> float | None:
    """CPU seconds all cores have been busy since boot (None without /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    return (user + nice + system + irq + softirq + steal) / _TICKS


def process_busy_s() -> float:
    """CPU seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


class OtherLoad:
    """Cores other processes kept busy over the last ``window_s`` seconds or more: ``cores()``
    updates at most once a window and returns the latest reading (None until one exists)."""

    def __init__(self, window_s: float = 3.0, *, clock: Callable[[], float] = time.monotonic,
                 machine: Callable[[], float | None] = machine_busy_s,
                 process: Callable[[], float] = process_busy_s):
        self.window_s = window_s
        self._clock, self._machine, self._process = clock, machine, process
        self._last: tuple[float, float, float] | None = None
        self._cores: float | None = None

    def cores(self) -> float | None:
        now = self._clock()
        if self._last is not None and now - self._last[0] < self.window_s:
            return self._cores  # called between training steps: read /proc only once a window
        machine = self._machine()
        if machine is None:
            return None
        if self._last is None:
            self._last = (now, machine, self._process())
        else:
            then, machine_then, process_then = self._last
            process = self._process()
            self._cores = max(0.0, (machine - machine_then) - (process - process_then)) / (now - then)
            self._last = (now, machine, process)
        return self._cores
