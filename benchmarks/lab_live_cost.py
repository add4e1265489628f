"""What watching costs: the class demo's training speed with the lab open in a browser vs the CLI.

    python benchmarks/lab_live_cost.py [--steps 800]

1. Runs the class demo (explorer.paper.degradation.class_demo_config, real CIFAR-10 when present) from the
   command line, as ``python -m explorer train`` does, and reads steps per second from its
   run record.
2. Starts the real server (``streamlit run`` on a free loopback port), opens the
   Degradation lab in Debian's Chromium (Playwright), presses "Start the class demo" and
   waits until the run finishes with the page open and refreshing; reads the steps per
   second from the run record the lab saves.

Prints both and their ratio, and where the CPU went while the lab trained: CPU seconds per
wall second of the server's training threads, its other threads (the script runs that
redraw the page, the websocket) and Chromium's processes; then the same for 20 s with the
finished run's tab left open (what a class's forgotten tabs cost the server). Goal (issue "The class demo that
convinces"): lab ≥ 0.8× the CLI. Only loopback addresses are contacted. Check ``uptime`` first.

Measured (2 cores, the background training paused, real CIFAR-10, 300 steps):

| server | CLI steps/s | lab steps/s | ratio | CPU s/s: training, pages, Chromium |
|---|---:|---:|---:|---|
| Streamlit's defaults | 5.49–5.89 | 3.16–3.93 | 0.62–0.70 | 1.32–1.43, 0.19–0.24, 0.19–0.24 |
| ``runner.postScriptGC = false`` | 5.94 | 4.51 | 0.76 | 1.69, 0.03, 0.19 |
| and the chart every 2.5 s (was 1.5), 150 points per curve (was 300), heatmaps updated in place (a stable key) | 4.43, 4.09 | 4.03, 3.40 | 0.91, 0.83 | 1.73, 0.03–0.04, 0.16–0.17 |
| the same page with its buttons in one row, the three-class demo, on a slower host (no AVX-512), twice | 3.81, 3.77 | 3.07, 3.05 | 0.81, 0.81 | 1.69–1.70, 0.05, 0.18 |

A finished run's tab left open, 20 s (another day, a slower host of the same kind, the two
pages side by side in one session):

| live view | server pages | Chromium | CPU s/s in all |
|---|---:|---:|---:|
| fragments refreshing every 2.5 s and 10 s whether or not a job runs | 0.033 | 0.087 | 0.120 |
| ``ui.job_view``: drawn once when the job has ended | 0.012 | 0.015 | 0.027 (4.4× less) |

py-spy on the server (first row) put 70% of the page threads' samples in the full
``gc.collect()`` Streamlit runs after every script run, the chart's fragment included:
.streamlit/config.toml turns it off.

The last row is another machine of the same kind, on another day: this one trained the demo
at 4.1–4.9 steps/s from the CLI where the first gave 5.5–6.3, and its speed drifted within the
hour, so only the ratio of the two runs side by side means anything. A heatmap keyed by the
run's length was a new chart every refresh (mounted afresh by the browser); keyed by model it
is updated in place.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import procfs
from classroom_load import CHROMIUM, CHROMIUM_ARGS, HOST, Server

from explorer.paper.degradation import class_demo_config

IDLE_S = 20  # seconds the finished run's tab is watched


async def local_only(route) -> None:
    if route.request.url.startswith((f"http://{HOST}:", f"ws://{HOST}:", "data:", "blob:")):
        await route.continue_()
    else:
        await route.abort()


class CpuMeter:
    """Where the CPU goes while the lab trains: the server's training threads, its other
    threads (the script runs that redraw the page, the websocket) and Chromium's processes.

    Python does not name its OS threads, but the training thread lowers its own priority
    (explorer.server.scheduler's ``TRAINING_NICE``) and the OpenMP workers it starts inherit it: a
    thread with a nice value above the server's is training. A thread that ends takes its
    counters out of /proc/PID/task, so :meth:`sample` (call it every second or so) keeps each
    training thread's last reading; the pages' share is the process's total (which keeps the
    time of ended threads) less training's."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self._training_s: dict[str, float] = {}  # thread id -> CPU seconds at its last sample
        self._start = self._totals()

    def sample(self) -> None:
        server_nice = procfs.nice(procfs.stat_fields(Path(f"/proc/{self.server_pid}/stat")))
        for thread in Path(f"/proc/{self.server_pid}/task").iterdir():
            try:
                fields = procfs.stat_fields(thread / "stat")
            except OSError:  # it ended meanwhile
                continue
            if procfs.nice(fields) > server_nice:
                self._training_s[thread.name] = procfs.cpu_s(fields)

    def _totals(self) -> dict[str, float]:
        self.sample()
        chromium = 0.0
        for process in procfs.processes():
            try:
                name, fields = procfs.read_stat(process / "stat")
                if "chrom" in name:
                    chromium += procfs.cpu_s(fields)
            except OSError:
                continue
        training = sum(self._training_s.values())
        server = procfs.cpu_s(procfs.stat_fields(Path(f"/proc/{self.server_pid}/stat")))
        return {"server training": training, "server pages": server - training, "Chromium": chromium}

    def per_second(self, wall_s: float) -> dict[str, float]:
        """CPU seconds per wall second of each kind since this meter was made."""
        end = self._totals()
        return {kind: (end[kind] - self._start[kind]) / wall_s for kind in end}


def steps_per_second(record_path: Path) -> tuple[int, float]:
    last = json.loads(record_path.read_text())["steps"][-1]
    return last["step"], last["step"] / last["elapsed_s"]


def cli_speed(config, folder: Path) -> tuple[int, float]:
    out = folder / "cli.json"
    command = [sys.executable, "-m", "explorer", "train", "--preset", "demo", "--models", ",".join(config.models),
               "--data", config.data, "--classes", ",".join(config.classes), "--steps", str(config.steps),
               "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "EXPLORER_CACHE_DIR":
                                                                   str(folder / "cache")})
    return steps_per_second(out)


async def lab_speed(url: str, runs_dir: Path, timeout_s: float, server_pid: int) -> tuple[int, float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1600, "height": 1000})
        await page.route("**/*", local_only)
        await page.goto(f"{url}/degradation", wait_until="domcontentloaded")
        button = page.get_by_role("button", name="Start the class demo", exact=False)
        await button.first.wait_for(timeout=120_000)
        await button.first.click()
        await page.get_by_text("training: step").first.wait_for(timeout=timeout_s * 1000)
        meter, started = CpuMeter(server_pid), time.monotonic()
        deadline = time.monotonic() + timeout_s
        while not list(runs_dir.glob("*.json")) and time.monotonic() < deadline:
            meter.sample()
            await page.wait_for_timeout(1000)
        wall = time.monotonic() - started
        used = meter.per_second(wall)
        # The finished run left open, as a class leaves its tabs (issue 16): what it still costs.
        await page.get_by_text("finished: step").first.wait_for(timeout=60_000)
        await page.wait_for_timeout(3000)
        idle, idle_started = CpuMeter(server_pid), time.monotonic()
        await page.wait_for_timeout(IDLE_S * 1000)
        idle_used = idle.per_second(time.monotonic() - idle_started)
        await browser.close()
    print(f"while the lab trained ({wall:.0f} s), CPU seconds per second: "
          + ", ".join(f"{kind} {value:.2f}" for kind, value in used.items()))
    print(f"the finished run's tab left open ({IDLE_S} s), CPU seconds per second: "
          + ", ".join(f"{kind} {value:.3f}" for kind, value in idle_used.items() if kind != "server training"))
    saved = sorted(runs_dir.glob("*.json"))
    if not saved:
        raise SystemExit(f"the lab's run did not finish within {timeout_s:.0f} s")
    return steps_per_second(saved[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps of the demo (default: the preset's)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    config = class_demo_config()
    if args.steps:
        config = replace(config, steps=args.steps)
    print(f"class demo on {config.data}, {config.steps} steps; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="lab-live-cost-") as folder:
        folder = Path(folder)
        steps, cli = cli_speed(config, folder)
        print(f"CLI: {steps} steps at {cli:.2f} steps/s")
        server_folder = folder / "server"
        server_folder.mkdir()
        server = Server(server_folder, ttl=10, data="cifar10", max_jobs=None)
        try:
            steps, lab = asyncio.run(lab_speed(server.url, server_folder / "runs", args.timeout, server.pid))
        finally:
            server.stop()
        print(f"lab open in Chromium: {steps} steps at {lab:.2f} steps/s")
        print(f"ratio lab / CLI: {lab / cli:.2f}  (goal ≥ 0.8)")


if __name__ == "__main__":
    main()
