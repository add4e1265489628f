"""Which accelerator to run on: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

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
    import os
    import platform

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
