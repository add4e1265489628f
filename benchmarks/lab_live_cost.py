"""What watching costs: the class demo's training speed with the lab open in a browser vs the CLI.

    python benchmarks/lab_live_cost.py [--steps 800]

1. Runs the class demo (explorer.lab.class_demo_config, real CIFAR-10 when present) from the
   command line, as ``python -m explorer train`` does, and reads steps per second from its
   run record.
2. Starts the real server (``streamlit run`` on a free loopback port), opens the
   Degradation lab in Debian's Chromium (Playwright), presses "Start the class demo" and
   waits until the run finishes with the page open and refreshing; reads the steps per
   second from the run record the lab saves.

Prints both and their ratio, and where the CPU went while the lab trained: CPU seconds per
wall second of the server's training threads, its other threads (the script runs that
redraw the page, the websocket) and Chromium's processes. Goal (issue "The class demo that
convinces"): lab ≥ 0.8× the CLI. Only loopback addresses are contacted. Check ``uptime`` first.
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

from classroom_load import CHROMIUM, CHROMIUM_ARGS, HOST, Server

from explorer.lab import class_demo_config


TICKS = os.sysconf("SC_CLK_TCK")


async def local_only(route) -> None:
    if route.request.url.startswith((f"http://{HOST}:", f"ws://{HOST}:", "data:", "blob:")):
        await route.continue_()
    else:
        await route.abort()


def _cpu_s(stat_path: Path) -> float:
    """utime + stime of a /proc/.../stat, in seconds (the name field may hold spaces)."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the server (training and page runs: Python does not name its OS
    threads, so they cannot be told apart from outside) and Chromium's processes."""
    split = {"server": _cpu_s(Path(f"/proc/{server_pid}/stat")), "Chromium": 0.0}
    for process in Path("/proc").iterdir():
        try:
            if process.name.isdigit() and "chrom" in (process / "comm").read_text():
                split["Chromium"] += _cpu_s(process / "stat")
        except OSError:
            continue
    return split


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
        before, started = cpu_split(server_pid), time.monotonic()
        deadline = time.monotonic() + timeout_s
        while not list(runs_dir.glob("*.json")) and time.monotonic() < deadline:
            await page.wait_for_timeout(1000)
        after, wall = cpu_split(server_pid), time.monotonic() - started
        await browser.close()
    print(f"while the lab trained ({wall:.0f} s), CPU seconds per second: "
          + ", ".join(f"{kind} {(after[kind] - before[kind]) / wall:.2f}" for kind in before))
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
