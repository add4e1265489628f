"""A class on one server: N browser sessions at once against the real app.

    python benchmarks/classroom_load.py --sessions 6 [--duration 120]

Starts ``streamlit run explorer/app.py`` on a free loopback port (with the shipped
checkpoints, no ImageNet weights), then drives N sessions with Playwright and Debian's
Chromium (browser contexts of one browser): half open the Degradation lab and press Start
(the class demo on the synthetic set), half upload a photo on the Inspect page; every
session switches to the Architecture page and back every few seconds, for ``--duration``
seconds. Then all close.

Prints, per kind of session and overall: sessions that saw an exception, a "Report this
problem" box or "Training failed" (goal: 0), sessions that stalled (a page that did not
answer within its timeout: an overloaded server, not an error), page-switch p50/p95 (click in the sidebar ->
the new page's title drawn), prediction p50/p95 (arrival on the Inspect page -> the uploaded
photo's top-5 drawn), and the server's RSS and thread count before, at the peak and after
the sessions closed. Only loopback addresses are contacted; everything stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
TITLES = {"degradation": "Degradation lab", "inspect_image": "Inspect an image",
          "architecture": "Architecture: Table 1"}
NAV = {"degradation": "Degradation lab", "inspect_image": "Inspect an image", "architecture": "Architecture"}
PROBLEMS = ("[data-testid='stException']", "text=Report this problem", "text=Training failed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS in MiB, threads) of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    shutil.copytree(ROOT / "pretrained", folder / "pretrained", ignore=shutil.ignore_patterns("*.pth"))
    env = {**os.environ, "EXPLORER_PRETRAINED_DIR": str(folder / "pretrained"), "TORCH_HOME": str(folder / "torch"),
           "EXPLORER_RUNS_DIR": str(folder / "runs"), "EXPLORER_CACHE_DIR": str(folder / "cache")}
    env.pop("EXPLORER_RAISE_ERRORS", None)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "explorer" / "app.py"), "--server.port", str(port),
         "--server.address", HOST, "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=open(folder / "server.log", "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not start; log: {folder / 'server.log'}")


async def local_only(route) -> None:
    if route.request.url.startswith((f"http://{HOST}:", f"ws://{HOST}:", "data:", "blob:")):
        await route.continue_()
    else:
        await route.abort()


class Session:
    def __init__(self, index: int, kind: str):
        self.index, self.kind = index, kind
        self.switches: list[float] = []
        self.predictions: list[float] = []
        self.problems: list[str] = []  # an error shown: a traceback, a report box, a failed run
        self.stalls: list[str] = []  # the page did not answer within its timeout

    async def check(self, page) -> None:
        for selector in PROBLEMS:
            locator = page.locator(selector)
            if await locator.count():
                alerts = page.locator("[data-testid='stAlert']")
                shown = " | ".join(await alerts.all_inner_texts()) if await alerts.count() else ""
                text = (await locator.first.inner_text())[:200].replace("\n", " ")
                self.problems.append(f"{selector}: {text} {shown[:400]}".replace("\n", " "))

    async def switch(self, page, to: str) -> None:
        start = time.perf_counter()
        await page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=NAV[to]).first.click()
        await page.get_by_role("heading", name=TITLES[to]).first.wait_for(timeout=120_000)
        self.switches.append(time.perf_counter() - start)

    async def predicted(self, page, photo: Path, started: float | None = None) -> None:
        start = started or time.perf_counter()
        await page.locator("input[type='file']").set_input_files(str(photo), timeout=180_000)
        await page.get_by_text(f"{photo.name}: what the net sees").first.wait_for(timeout=180_000)
        self.predictions.append(time.perf_counter() - start)

    async def run(self, browser, url: str, photo: Path, until: float) -> None:
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = await context.new_page()
            await page.route("**/*", local_only)
            home = "degradation" if self.kind == "lab" else "inspect_image"
            await page.goto(f"{url}/{home}", wait_until="domcontentloaded")
            await page.get_by_role("heading", name=TITLES[home]).first.wait_for(timeout=180_000)
            if self.kind == "lab":
                start = page.get_by_role("button", name=re.compile("Start the class demo"))
                await start.wait_for(timeout=180_000)
                await start.click()
            else:
                await self.predicted(page, photo)
            while time.monotonic() < until:
                await page.wait_for_timeout(3000)
                await self.check(page)
                await self.switch(page, "architecture")
                await page.wait_for_timeout(2000)
                await self.check(page)
                arrived = time.perf_counter()
                await self.switch(page, home)
                if self.kind == "inspect":
                    await self.predicted(page, photo, arrived)
                await self.check(page)
        except Exception as error:  # noqa: BLE001 - a page that never answered
            self.stalls.append(f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
        finally:
            await context.close()


def percentiles(values: list[float]) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.1f} s, p95 {p95:.1f} s (n={len(ordered)})"


async def drive(url: str, sessions: int, duration: float, photo: Path, pid: int) -> list[Session]:
    from playwright.async_api import async_playwright

    peak = [proc_status(pid)]

    async def sample():
        while True:
            peak.append(proc_status(pid))
            await asyncio.sleep(1)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        sampler = asyncio.create_task(sample())
        until = time.monotonic() + duration
        crowd = [Session(i, "lab" if i % 2 == 0 else "inspect") for i in range(sessions)]
        await asyncio.gather(*(s.run(browser, url, photo, until) for s in crowd))
        sampler.cancel()
        await browser.close()
    print(f"server peak: {max(r for r, _ in peak):,.0f} MiB RSS, {max(t for _, t in peak)} threads")
    return crowd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of switching pages")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after closing before the last reading")
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        raise SystemExit("needs Debian's Chromium: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="classroom-load-") as folder:
        folder = Path(folder)
        log = Path(tempfile.gettempdir()) / "classroom-load-server.log"  # kept: tracebacks of reported errors
        photo = folder / "photo.png"
        Image.open(ROOT / "explorer" / "samples" / "ship.jpg").resize((96, 96)).save(photo)
        process, url = start_server(folder)
        try:
            time.sleep(2)
            before = proc_status(process.pid)
            print(f"{args.sessions} sessions for {args.duration:.0f} s against {url}; load {os.getloadavg()[0]:.2f}")
            print(f"server before: {before[0]:,.0f} MiB RSS, {before[1]} threads")
            crowd = asyncio.run(drive(url, args.sessions, args.duration, photo, process.pid))
            time.sleep(args.settle)
            after = proc_status(process.pid)
            print(f"server {args.settle:.0f} s after every tab closed: {after[0]:,.0f} MiB RSS, {after[1]} threads")
            for kind in ("lab", "inspect"):
                group = [s for s in crowd if s.kind == kind]
                failed = [s for s in group if s.problems]
                stalled = [s for s in group if s.stalls]
                print(f"{kind}: {len(failed)} of {len(group)} sessions saw an error, {len(stalled)} stalled; page switch "
                      f"{percentiles([t for s in group for t in s.switches])}"
                      + (f"; predictions {percentiles([t for s in group for t in s.predictions])}"
                         if kind == "inspect" else ""))
                for session in failed + stalled:
                    print(f"  session {session.index}: {(session.problems + session.stalls)[:3]}")
            everyone = [t for s in crowd for t in s.switches]
            print(f"all: {sum(1 for s in crowd if s.problems)} sessions saw an error, "
                  f"{sum(1 for s in crowd if s.stalls)} stalled; page switch {percentiles(everyone)}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            shutil.copy(folder / "server.log", log)
            print(f"server log: {log}")


if __name__ == "__main__":
    main()
