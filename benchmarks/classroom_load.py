"""A class on one server: N browser sessions at once against the real app (issue 16).

    python benchmarks/classroom_load.py --sessions 30 [--remote 26] [--duration 120] [--browser-nice 19] [--assert-clean]

Starts ``streamlit run explorer/app.py`` on a free loopback port (the shipped checkpoints, no
ImageNet weights, a short ``server.disconnectedSessionTTL``), then drives N sessions with
Playwright and Debian's Chromium (browser contexts of one browser, opened ``--ramp`` s apart):
half open the Degradation lab and press "Start the class demo", half upload a photo on the
Inspect page (the first of them also uploads a zip of class folders on the Transfer page, so
that the session owns an upload folder); every session switches to the Architecture page and
back every few seconds for ``--duration`` seconds. Then all close, and the benchmark waits
past the TTL.

``--remote M``: the last M sessions are thin clients instead of Chromium tabs
(benchmarks/thin_client.py): the same steps sent over the browser's own WebSocket protocol
(page runs, button triggers, uploads, the live view's timed fragment reruns), with nothing
drawn on this machine. A class's browsers run on the students' laptops; thirty Chromium tabs
on the server's two cores measure Chromium more than the server (it took 1.7 of the 2 cores).
The thin clients' switches are timed on the wire and reported apart; with any thin client in
the crowd, ``--assert-goals`` checks every session's page-switch p95 on the wire.

Data: by default the class demo trains on the synthetic set (no decoding, the same for every
run: a load test of the server, not of JPEG decoding). The app picks real CIFAR-10 when
``../shared/data/cifar10/train`` exists, so the server is started through a small launcher
that points ``explorer.settings.SHARED_DATA`` at a missing folder before ``streamlit run``
(``--data cifar10`` keeps the app's own choice and the user's data cache). The launcher also
writes, every 0.5 s, the server's Python thread names and its scheduler's running and waiting
jobs to a JSON file: Python does not give OS threads its names (``/proc/PID/task/*/comm``
says "python" for all of them), so this is how the training threads ("train-…",
"finetune-…", "lock-step_…") are seen from outside. ``--server.fileWatcherType none``: no
module is reloaded (and the patch kept) while others edit the tree.

Prints: sessions that saw an exception, a "Report this problem" box or "Training failed"
(goal 0) and sessions that stalled (a page that did not answer within its timeout); the queue
places the lab sessions were shown; page-switch p50/p95 (sidebar click -> the new page's title
drawn; also only the switches made while a job trained), the same switches on the wire (the
request frame sent -> the frame with the new page's opening caption received, as Chromium's network
service timed them: what a browser on another machine waits for, before its own drawing) and
classify p50/p95 (arrival on the Inspect page -> the photo's top-5 drawn); where that time goes:
the server's own time per script run (whole page or live-view fragment, timed inside the
server by the launcher) and the cores the server, Chromium and the Playwright driver used
meanwhile (in a real class the browsers run on the students' laptops, here on the server's
cores; ``--browser-nice 19`` lets the server have the cores first, as it would there, and
then the server's own times are the numbers to read: the starved browsers draw, and even
receive, late, and a lab tab may never draw its place in line, which counts as a failure); the
server's RSS before, at the peak and after,
with after/before ("before" follows a warm-up session that visited every page and ran one
class demo to its end: what is allocated once is not a leak; ``--warmup none`` for a cold
server); the training threads, scheduler jobs and upload folders left ``--settle`` s after the
TTL; the tracebacks in the server log. Goal (``--assert-goals``): 30 sessions, 0 failures, page switch
p95 <= 2 s while jobs run (every session's on the wire when there are thin clients, else the
tabs' as drawn), nothing alive and RSS within 15% of before after close.
``--assert-clean`` checks only correctness (the test suite's small version,
tests/test_classroom.py). Only loopback addresses are contacted; everything stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
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
import zipfile
from pathlib import Path

import procfs  # beside this script
from PIL import Image
from thin_client import ThinClient  # beside this script

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")  # Debian's
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
TITLES = {"degradation": "Degradation lab", "inspect_image": "Inspect an image", "transfer": "Transfer learning",
          "architecture": "Architecture: Table 1"}
# The first words of each page's caption, drawn right after its title: what Wire waits for.
# Not the title itself: every run first sends the navigation, which names the pages, and
# three pages' titles are their names.
CAPTIONS = {"degradation": "The paper's Fig. 1 and Fig. 6", "inspect_image": "What does the network think this is",
            "transfer": "Take a trained ResNet without its classifier", "architecture": "Parameters and costs below"}
NAV = {"degradation": "Degradation lab", "inspect_image": "Inspect an image", "transfer": "Transfer learning",
       "architecture": "Architecture"}
PROBLEMS = ("[data-testid='stException']", "text=Report this problem", "text=Training failed")
REMOTE_PROBLEMS = ("Report this problem", "Training failed")  # in a frame's bytes; exceptions are elements
TRAINING_THREADS = ("train-", "finetune-", "lock-step")  # explorer/server/jobs.py and explorer/training/engine.py's names
UPLOAD_PREFIX = "resnet-explorer-uploads-"  # explorer/server/sessions.py
QUEUED = "waiting for a free training slot"  # explorer/server/jobs.py QueuePlace.text
OFFSITE = re.compile(r"^(?!(?:https?|wss?)://127\.0\.0\.1[:/]|data:|blob:)")
TIMEOUT_MS = 180_000  # generous: 30 sessions on 2 cores are slow, not broken
RSS_GOAL, SWITCH_P95_GOAL_S = 1.15, 2.0

# Runs the real `streamlit run` in this process after the two additions the module docstring explains.
# The guard matters: explorer/server/isolation.py's spawned worker imports the main file again as __mp_main__.
BOOT = r"""
import json, os, sys, threading, time
from pathlib import Path


# One line per script run (wall start, seconds, whether a fragment ran alone) appended to
# runs_file: the server's own share of a page switch, without the browsers' drawing.
def time_script_runs(runs_file):
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    run_script, lock = ScriptRunner._run_script, threading.Lock()

    def timed(self, rerun_data):
        started, clock = time.time(), time.perf_counter()
        try:
            return run_script(self, rerun_data)
        finally:
            line = json.dumps([started, time.perf_counter() - clock, bool(rerun_data.fragment_id_queue)])
            with lock, open(runs_file, "a") as runs:
                runs.write(line + "\n")

    ScriptRunner._run_script = timed


def watch(status):
    from explorer.ui.job_panel import class_server  # the one the pages use (st.cache_resource)

    scheduler = class_server().scheduler
    while True:
        state = {"threads": sorted(t.name for t in threading.enumerate()), "running": scheduler.running_jobs(),
                 "waiting": scheduler.waiting_jobs(), "max_jobs": scheduler.max_jobs, "time": time.time()}
        Path(status + ".new").write_text(json.dumps(state))
        os.replace(status + ".new", status)
        time.sleep(0.5)


if __name__ == "__main__":
    root, status, synthetic, *streamlit_args = sys.argv[1:]
    assert status.endswith("server-state.json"), status
    sys.path.insert(0, root)
    if synthetic == "1":
        import explorer.settings

        explorer.settings.SHARED_DATA = Path(status).with_name("no-shared-data")
    time_script_runs(status.replace("server-state.json", "script-runs.jsonl"))
    threading.Thread(target=watch, args=(status,), name="classroom-watch", daemon=True).start()
    from streamlit.web.cli import main

    sys.argv = ["streamlit", "run", *streamlit_args]
    main(prog_name="streamlit")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS in MiB, threads) of a process, from /proc."""
    return procfs.rss_mib_and_threads(pid)


def cpu_seconds_by_kind(server_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) used so far, per process, by the server (with its child
    processes), Chromium, the Playwright driver and this script, from /proc: where the two
    cores went. Per process, so that a process that ends meanwhile is left out of a difference
    (its time is lost, never subtracted)."""
    server_family = {server_pid} | procfs.children(server_pid)
    used: dict[str, dict[int, float]] = {"server": {}, "chromium": {}, "playwright": {}, "script": {}}
    for process in procfs.processes():
        try:
            comm, fields = procfs.read_stat(process / "stat")
        except OSError:
            continue  # it just ended
        kind = ("server" if int(process.name) in server_family else "script" if int(process.name) == os.getpid()
                else "chromium" if comm.startswith("chrom") else "playwright" if comm.startswith("node") else None)
        if kind:  # this script's own child is the server: not its time
            used[kind][int(process.name)] = procfs.cpu_s(fields, reaped_children=kind != "script")
    return used


def available_gib() -> float:
    """The machine's MemAvailable (the browsers' memory shows here, not in the server's RSS)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


class Server:
    """The app under test, its log, its state file and its temporary folder (uploads)."""

    def __init__(self, folder: Path, *, ttl: int, data: str, max_jobs: int | None):
        self.folder, self.ttl = folder, ttl
        self.log, self.status, self.tmp = folder / "server.log", folder / "server-state.json", folder / "tmp"
        self.runs_file = folder / "script-runs.jsonl"  # written by BOOT's time_script_runs
        self.tmp.mkdir()
        # The shipped checkpoints, without ImageNet weights or the long run's in-progress state (being rewritten).
        shutil.copytree(ROOT / "pretrained", folder / "pretrained",
                        ignore=shutil.ignore_patterns("*.pth", "in-progress"))
        env = {**os.environ, "EXPLORER_PRETRAINED_DIR": str(folder / "pretrained"), "TORCH_HOME": str(folder / "torch"),
               "EXPLORER_RUNS_DIR": str(folder / "runs"), "TMPDIR": str(self.tmp)}
        env.pop("EXPLORER_RAISE_ERRORS", None)  # the tests' setting: errors are shown (and counted), not raised
        if data == "synthetic":
            env.pop("EXPLORER_CIFAR10_DIR", None)
            env["EXPLORER_CACHE_DIR"] = str(folder / "cache")  # no torchvision copy of CIFAR-10 there either
        if max_jobs is not None:
            env["EXPLORER_MAX_JOBS"] = str(max_jobs)
        port = free_port()
        self.url = f"http://{HOST}:{port}"
        boot = folder / "boot.py"  # a file, not `python -c`: Streamlit warns about a REPL under -c
        boot.write_text(BOOT)
        self._log_file = open(self.log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(boot), str(ROOT), str(self.status), "1" if data == "synthetic" else "0",
             str(ROOT / "explorer" / "app.py"), "--server.port", str(port), "--server.address", HOST,
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--server.disconnectedSessionTTL", str(ttl)],
            cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the server did not start; its log:\n{self.log.read_text(errors='replace')[-3000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def state(self) -> dict:
        """The launcher's latest reading: thread names, running and waiting jobs, max_jobs."""
        try:
            return json.loads(self.status.read_text())
        except (OSError, ValueError):
            return {"threads": [], "running": [], "waiting": [], "max_jobs": None, "time": 0.0}

    def state_age_s(self) -> float:
        """Seconds since the launcher last wrote its state (it writes every 0.5 s)."""
        return time.time() - self.state()["time"]

    def script_runs(self, since: float, until: float) -> list[tuple[float, bool]]:
        """(seconds, fragment alone) of the script runs that started between two wall times."""
        try:
            lines = self.runs_file.read_text().splitlines()
        except OSError:
            return []
        runs = [json.loads(line) for line in lines if line.strip()]
        return [(seconds, fragment) for started, seconds, fragment in runs if since <= started <= until]

    def training_threads(self) -> list[str]:
        return [name for name in self.state()["threads"] if name.startswith(TRAINING_THREADS)]

    def children_rss(self) -> float:
        """MiB held by the server's child processes (explorer/server/isolation.py's worker)."""
        total = 0.0
        for child in procfs.children(self.pid):
            try:
                total += proc_status(child)[0]
            except (OSError, KeyError):
                pass  # it just ended
        return total

    def upload_folders(self) -> list[Path]:
        return sorted(self.tmp.glob(f"{UPLOAD_PREFIX}*"))

    def tracebacks(self) -> list[str]:
        """The last line (the exception) of every traceback in the log."""
        found = []
        for block in self.log.read_text(errors="replace").split("Traceback (most recent call last):")[1:]:
            lines = [line for line in block.splitlines() if line.strip() and not line.startswith((" ", "\t"))]
            found.append(lines[0][:300] if lines else "?")
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self._log_file.close()


async def refuse(route) -> None:
    await route.abort()


class Wire:
    """A tab's page switches timed on the wire: from the frame that asks for the new page
    leaving the browser to the frame carrying its opening caption arriving, as Chromium's network
    service stamped them (DevTools protocol; its clock is CLOCK_MONOTONIC, as time.monotonic()).
    That is the server's share of a switch as a browser on another machine would see it,
    without this machine's drawing; a class's browsers run on the students' laptops."""

    def __init__(self):
        self.switches: list[tuple[float, bool]] = []  # (seconds, a job was training when asked)
        self._pending: tuple[bytes, float, bool] | None = None  # (caption, asked at, training)
        self._request: float | None = None

    async def attach(self, context, page) -> None:
        devtools = await context.new_cdp_session(page)
        devtools.on("Network.webSocketFrameSent", self._sent)
        devtools.on("Network.webSocketFrameReceived", self._received)
        await devtools.send("Network.enable")

    def arm(self, caption: str, training: bool) -> None:
        """Just before the click: time the next request and the first frame holding ``caption``.
        A switch still unresolved when the next one is armed is dropped, not guessed."""
        self._pending, self._request = (caption.encode(), time.monotonic(), training), None

    def _sent(self, event: dict) -> None:
        if self._pending is not None and self._request is None and event["timestamp"] >= self._pending[1]:
            self._request = event["timestamp"]

    def _received(self, event: dict) -> None:
        if self._pending is None or self._request is None:
            return
        response = event["response"]
        payload = response["payloadData"]
        frame = base64.b64decode(payload) if response["opcode"] == 2 else payload.encode()
        if self._pending[0] in frame:
            self.switches.append((event["timestamp"] - self._request, self._pending[2]))
            self._pending = None


class Session:
    """One browser tab's life: its kind ("lab" or "inspect"), what it measured and what it saw."""

    remote = False  # a Chromium tab on this machine (RemoteSession: a thin client)

    def __init__(self, index: int, kind: str, zip_upload: bool = False):
        self.index, self.kind, self.zip_upload = index, kind, zip_upload
        self.switches: list[tuple[float, bool]] = []  # (seconds, a job was training meanwhile)
        self.wire = Wire()  # the same switches, timed on the wire
        self.predictions: list[float] = []
        self.problems: list[str] = []  # an error shown: a traceback, a report box, a failed run
        self.stalls: list[str] = []  # the page did not answer within its timeout
        self.positions: set[int] = set()  # queue places shown (1: "next in line")
        self.first_estimate: str | None = None  # the first "starts in about N s" shown
        self.started = False  # the lab's run got a slot (loading, training, finished)
        self.progress_seen: list[str] = []  # the distinct progress texts, in order (first words)
        self.queue_texts: list[str] = []  # the first and the latest queue text shown
        self.zip_unpacked = False
        self.architecture = [0, 0]  # visits to the Architecture page, those that showed Table 1 by the end

    async def check(self, page) -> None:
        for selector in PROBLEMS:
            locator = page.locator(selector)
            if await locator.count():
                alerts = page.locator("[data-testid='stAlert']")
                shown = " | ".join(await alerts.all_inner_texts()) if await alerts.count() else ""
                text = (await locator.first.inner_text())[:300]
                self.problems.append(f"{selector}: {text} {shown[:400]}".replace("\n", " "))

    async def switch(self, page, to: str, training) -> None:
        busy = training()
        start = time.perf_counter()
        self.wire.arm(CAPTIONS[to], busy)
        await page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=NAV[to]).first.click()
        await page.get_by_role("heading", name=TITLES[to]).first.wait_for(timeout=TIMEOUT_MS)
        self.switches.append((time.perf_counter() - start, busy or training()))

    async def predicted(self, page, photo: Path, started: float | None = None) -> None:
        start = started or time.perf_counter()
        uploader = page.locator("[data-testid='stFileUploader']").first
        await uploader.locator("input[type='file']").set_input_files(str(photo), timeout=TIMEOUT_MS)
        await page.get_by_text(f"{photo.name}: what the net sees").first.wait_for(timeout=TIMEOUT_MS)
        self.predictions.append(time.perf_counter() - start)

    def read_progress(self, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        if text.startswith(QUEUED):
            self.queue_texts[1:] = [text[len(QUEUED) + 2:].split(" (this server")[0]]
            place = re.search(r"number (\d+) in line", text)
            self.positions.add(int(place.group(1)) if place else 1 if "next in line" in text else 0)
            wait = re.search(r"starts in about \d+ (?:s|min|h)(?: \d+ min)?", text)
            if wait and self.first_estimate is None:
                self.first_estimate = f"{wait.group(0)} at place {max(self.positions)}"
        else:
            self.started = True
        head = text.split(":")[0]
        if head == "stopped" and "stopped" not in self.progress_seen:  # nobody here pressed Stop
            self.problems.append(f"the lab's run stopped by itself while its tab was open: {text[:120]}")
        if not self.progress_seen or self.progress_seen[-1] != head:
            self.progress_seen.append(head)

    async def watch_lab(self, page, seconds: float, *, after_click: bool = False) -> None:
        """Read the lab's progress bar (its text: the queue place or the run's state): wait for it
        to be drawn (a loaded server draws it late), then keep reading it for ``seconds``. The
        page's "Press Start the class demo" note instead means this open tab lost its job."""
        bar = page.locator("[data-testid='stProgress']")
        lost = page.get_by_text("set up your own run, or replay a recorded run below")
        # Just after the click the old page (no job yet) is still shown: wait for the bar only.
        await (bar if after_click else bar.or_(lost)).first.wait_for(timeout=TIMEOUT_MS)
        if not await bar.count():
            self.problems.append("the lab's job is gone while its tab is open (the session was released?)")
            return
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.read_progress(await bar.first.inner_text(timeout=2000))
            except Exception:  # noqa: BLE001 - the fragment redrew it meanwhile
                pass
            if time.monotonic() >= deadline:
                return
            await page.wait_for_timeout(500)

    async def upload_zip(self, page, archive: Path, training) -> None:
        """A zip of class folders on the Transfer page: the session's upload folder is made."""
        await self.switch(page, "transfer", training)
        uploader = page.locator("[data-testid='stFileUploader']").filter(has_text="Zip of class folders")
        for _ in range(10):  # a click landing while the page switch's own rerun draws can be lost: again
            await page.get_by_text("Zip of class folders", exact=True).first.click(timeout=TIMEOUT_MS)
            try:
                await uploader.first.wait_for(timeout=15_000)
                break
            except Exception:  # noqa: BLE001 - playwright's TimeoutError: the radio did not take
                continue
        await uploader.locator("input[type='file']").set_input_files(str(archive), timeout=TIMEOUT_MS)
        await page.get_by_text(re.compile(r"images in 2 classes")).first.wait_for(timeout=TIMEOUT_MS)
        self.zip_unpacked = True
        await self.check(page)

    async def begin(self, page, url: str, home: str, files: dict[str, Path], training) -> None:
        await page.goto(f"{url}/{home}", wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        await page.get_by_role("heading", name=TITLES[home]).first.wait_for(timeout=TIMEOUT_MS)
        if self.kind == "lab":
            start = page.get_by_role("button", name=re.compile("Start the class demo"))
            await start.wait_for(timeout=TIMEOUT_MS)
            await start.click()
            await self.watch_lab(page, 2, after_click=True)
        else:
            await self.predicted(page, files["photos"][self.index])
            if self.zip_upload:
                await self.upload_zip(page, files["zip"], training)
                await self.switch(page, home, training)

    async def run(self, browser, url: str, files: dict[str, Path], until: float, training) -> None:
        context = None
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)  # clicks too: a loaded page answers late, it is not broken
            await context.route(OFFSITE, refuse)
            page = await context.new_page()
            await self.wire.attach(context, page)
            home = "degradation" if self.kind == "lab" else "inspect_image"
            await self.begin(page, url, home, files, training)
            while time.monotonic() < until:
                if self.kind == "lab":
                    await self.watch_lab(page, 3)
                else:
                    await page.wait_for_timeout(3000)
                await self.check(page)
                await self.switch(page, "architecture", training)
                await page.wait_for_timeout(2000)
                await self.check(page)
                self.architecture[0] += 1
                self.architecture[1] += bool(await page.get_by_text("Table 1, regenerated").count())
                arrived = time.perf_counter()
                await self.switch(page, home, training)
                if self.kind == "inspect":
                    await self.predicted(page, files["photos"][self.index], arrived)
                await self.check(page)
        except Exception as error:  # noqa: BLE001 - a page that never answered
            self.stalls.append(f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}")
        finally:
            if context is not None:
                await context.close()


class RemoteSession(Session):
    """A session as a student's laptop makes it: the same steps as a Chromium tab, sent over
    Streamlit's WebSocket protocol by benchmarks/thin_client.py, with no browser on this
    machine. Its page switches are timed on the wire (the request sent -> the first frame
    holding the new page's opening caption received), so they count in ``wire.switches``
    only: there is no drawing here, a laptop draws."""

    remote = True

    def __init__(self, index: int, kind: str, zip_upload: bool = False):
        super().__init__(index, kind, zip_upload)
        self._checked = 0.0  # frames up to this arrival time were searched for problems

    def check_frames(self, client) -> None:
        for message in client.inbox.exceptions:
            self.problems.append(f"exception element: {message}")
        client.inbox.exceptions.clear()
        for arrived, frame in client.inbox.frames:
            if arrived > self._checked and any(text.encode() in frame for text in REMOTE_PROBLEMS):
                self.problems.append(f"a frame shows a problem: {frame[:300]!r}")
        self._checked = max([self._checked] + [arrived for arrived, _ in client.inbox.frames])

    async def switch_remote(self, client, to: str, training) -> float:
        """Switch pages; returns when the request left (the Chromium tabs' Wire times the same
        span, and marks it as while training by the state when asked)."""
        busy = training()
        sent = await client.switch(to)
        seconds = await client.wait_for(CAPTIONS[to], sent, timeout=TIMEOUT_MS / 1000)
        self.wire.switches.append((seconds, busy))
        return sent

    async def predicted_remote(self, client, photo: Path, started: float | None = None) -> None:
        start = started or time.monotonic()
        sent = await client.upload("Photos", photo, timeout=TIMEOUT_MS / 1000)
        await client.wait_for(f"{photo.name}: what the net sees", sent, timeout=TIMEOUT_MS / 1000)
        self.predictions.append(time.monotonic() - start)

    async def watch_lab_remote(self, client, seconds: float, since: float, *, after_click: bool = False) -> None:
        """As ``Session.watch_lab``: wait for the progress bar's text (or the note that the job
        is gone, not just after the click: the run before it may still be sending that note),
        then read it every 0.5 s for ``seconds``."""
        lost = b"set up your own run, or replay a recorded run below"
        await client.wait_until(lambda: bool(client.inbox.progress) or not after_click and any(
            at >= since and lost in frame for at, frame in client.inbox.frames), TIMEOUT_MS / 1000)
        if not client.inbox.progress:
            self.problems.append("the lab's job is gone while its tab is open (the session was released?)")
            return
        deadline = time.monotonic() + seconds
        while True:
            self.read_progress(client.inbox.progress)
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.5)

    async def run(self, _browser, url: str, files: dict[str, Path], until: float, training) -> None:
        try:
            async with ThinClient(url) as client:
                await self._steps(client, files, until, training)
        except Exception as error:  # noqa: BLE001 - a page that never answered, a closed connection
            self.stalls.append(f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}")

    async def _steps(self, client, files: dict[str, Path], until: float, training) -> None:
        """Session.begin and Session.run's loop, over the protocol."""
        home = "degradation" if self.kind == "lab" else "inspect_image"
        sent = await client.open(home)
        await client.wait_for(CAPTIONS[home], sent, timeout=TIMEOUT_MS / 1000)
        if self.kind == "lab":
            sent = await client.click(re.compile("Start the class demo"), timeout=TIMEOUT_MS / 1000)
            await self.watch_lab_remote(client, 2, sent, after_click=True)
        else:
            await self.predicted_remote(client, files["photos"][self.index])
            if self.zip_upload:
                await self.switch_remote(client, "transfer", training)
                sent = await client.choose("Data set", "Zip of class folders", timeout=TIMEOUT_MS / 1000)
                await client.wait_for("Zip of class folders (cat/1.jpg", sent, timeout=TIMEOUT_MS / 1000)
                sent = await client.upload("Zip of class folders", files["zip"], timeout=TIMEOUT_MS / 1000)
                await client.wait_for("images in 2 classes", sent, timeout=TIMEOUT_MS / 1000)
                self.zip_unpacked = True
                await self.switch_remote(client, home, training)
        self.check_frames(client)
        home_since = time.monotonic()
        while time.monotonic() < until:
            if self.kind == "lab":
                await self.watch_lab_remote(client, 3, home_since)
            else:
                await asyncio.sleep(3)
            self.check_frames(client)
            asked = time.monotonic()
            await self.switch_remote(client, "architecture", training)
            await asyncio.sleep(2)
            self.check_frames(client)
            self.architecture[0] += 1
            self.architecture[1] += any(at >= asked and b"Table 1, regenerated" in frame
                                        for at, frame in client.inbox.frames)
            arrived = time.monotonic()
            home_since = await self.switch_remote(client, home, training)
            if self.kind == "inspect":
                await self.predicted_remote(client, files["photos"][self.index], arrived)
            self.check_frames(client)


async def warm_up(browser, url: str, photo: Path, train: bool, echo) -> None:
    """One session visits every page the crowd uses (the model loaded, Table 1 computed in
    explorer/server/isolation.py's worker, pandas imported) and, with ``train``, runs the class demo to
    its end, so that "before" holds what the first run allocates once and the queue's wait
    estimates know a real run's length (a stopped run would count as a short one); then closes."""
    session = Session(-1, "inspect")
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    started = time.monotonic()
    try:
        await context.route(OFFSITE, refuse)
        page = await context.new_page()
        await page.goto(f"{url}/inspect_image", wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        await page.get_by_role("heading", name=TITLES["inspect_image"]).first.wait_for(timeout=TIMEOUT_MS)
        await session.predicted(page, photo)
        await session.switch(page, "architecture", lambda: False)
        await page.get_by_text("Table 1, regenerated").first.wait_for(timeout=TIMEOUT_MS)
        await session.switch(page, "degradation", lambda: False)
        if train:
            await page.get_by_role("button", name=re.compile("Start the class demo")).click(timeout=TIMEOUT_MS)
            await page.get_by_text(re.compile(r"finished: step ")).first.wait_for(timeout=900_000)
        await session.switch(page, "transfer", lambda: False)
        await page.wait_for_timeout(1000)
        await session.check(page)
    finally:
        await context.close()
    if session.problems:
        raise RuntimeError(f"the warm-up session saw an error: {session.problems}")
    echo(f"warm-up session: {time.monotonic() - started:.0f} s" + (" (a whole class demo)" if train else ""))


def sample_files(folder: Path, sessions: int) -> dict:
    """A small photo per session for the Inspect page (and one for the warm-up), each turned a
    little, so each student's photo is new to the server's classifier as in a class; and a zip
    of two class folders for the Transfer page."""
    ship = Image.open(ROOT / "explorer" / "samples" / "ship.jpg").resize((96, 96))
    photos = []
    for index in range(sessions + 1):
        photos.append(folder / f"photo-{index}.png")
        ship.rotate(3 * index).save(photos[-1])
    archive = folder / "two-classes.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in ("cat", "dog", "cat", "dog"):
            image = io.BytesIO()
            Image.open(ROOT / "explorer" / "samples" / f"{name}.jpg").resize((32, 32)).save(image, "PNG")
            zipped.writestr(f"{name}/{len(zipped.namelist())}.png", image.getvalue())
    return {"photos": photos, "zip": archive}


def lower_browser_priority(nice: int) -> int:
    """Give this script's Chromium the cores last. Playwright starts Chromium in a session of
    its own, and Linux shares the CPU between sessions' autogroups whatever their processes'
    nice values, so what counts is the autogroup's nice (/proc/PID/autogroup, sched(7)); each
    process's own nice (its main thread's) is set too, for kernels without autogroups.
    Returns the processes changed."""
    family, found = {os.getpid()}, [os.getpid()]
    while found:
        children = procfs.children(found.pop()) - family
        family |= children
        found.extend(children)
    changed = 0
    for pid in family - {os.getpid()}:
        try:
            if procfs.read_stat(Path(f"/proc/{pid}/stat"))[0].startswith("chrom"):
                os.setpriority(os.PRIO_PROCESS, pid, nice)
                with contextlib.suppress(OSError):  # kernels without autogroup scheduling
                    Path(f"/proc/{pid}/autogroup").write_text(str(nice))
                changed += 1
        except OSError:
            continue  # it just ended
    return changed


async def drive(server: Server, sessions: int, duration: float, ramp: float, warmup: str, settle: float,
                files: dict[str, Path], echo, browser_nice: int = 0, remote: int = 0) -> tuple[list[Session], dict]:
    from playwright.async_api import async_playwright

    readings = {"before": None, "samples": [], "uploads_peak": 0}
    training = lambda: bool(server.state()["running"])  # noqa: E731

    async def sample():
        while True:
            readings["samples"].append(proc_status(server.pid))
            readings["children_peak"] = max(readings.get("children_peak", 0.0), server.children_rss())
            readings["uploads_peak"] = max(readings["uploads_peak"], len(server.upload_folders()))
            readings["available_min"] = min(readings["available_min"], available_gib())
            await asyncio.sleep(1)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if browser_nice:
            echo(f"Chromium at nice {browser_nice} ({lower_browser_priority(browser_nice)} processes and their autogroup)")
        try:
            if warmup != "none":
                await warm_up(browser, server.url, files["photos"][-1], warmup == "train", echo)
                await asyncio.sleep(3)
            readings["before"] = proc_status(server.pid)
            readings["crowd_from"], readings["cpu_from"] = time.time(), cpu_seconds_by_kind(server.pid)
            readings["available_before"] = readings["available_min"] = available_gib()
            echo(f"server before: {readings['before'][0]:,.0f} MiB RSS, {readings['before'][1]} threads, "
                 f"child processes {server.children_rss():,.0f} MiB"
                 + (" (after the warm-up)" if warmup != "none" else " (cold: no warm-up)"))
            sampler = asyncio.create_task(sample())
            # The last `remote` sessions are thin clients; the first inspect session of each kind unpacks the zip.
            first_remote = sessions - remote
            crowd = [(RemoteSession if i >= first_remote else Session)(
                i, "lab" if i % 2 == 0 else "inspect", zip_upload=i in (1, first_remote + (first_remote % 2 == 0)))
                for i in range(sessions)]
            until = time.monotonic() + ramp * sessions + duration

            async def later(session: Session):
                await asyncio.sleep(ramp * session.index)
                await session.run(browser, server.url, files, until, training)

            await asyncio.gather(*(later(s) for s in crowd))
            closed_at = time.monotonic()
            readings["crowd_until"], readings["cpu_until"] = time.time(), cpu_seconds_by_kind(server.pid)
            waiting = asyncio.create_task(after_close(server, closed_at, settle))
            await asyncio.sleep(min(5.0, server.ttl))  # the peak may come as the jobs stop
            sampler.cancel()
        finally:
            await browser.close()
        readings["late"] = await waiting
    return crowd, readings


def percentiles(values: list[float]) -> dict | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            "n": len(ordered)}


def shown(stats: dict | None) -> str:
    return "—" if stats is None else f"p50 {stats['p50']:.1f} s, p95 {stats['p95']:.1f} s (n={stats['n']})"


async def after_close(server: Server, closed_at: float, settle: float) -> dict:
    """Wait past the TTL (plus ``settle``) from the last tab's close, noting when the last
    training thread ended (the launcher's state file is rewritten every 0.5 s)."""
    gone_after = None
    deadline = closed_at + server.ttl + settle
    while time.monotonic() < deadline:
        if gone_after is None and not server.training_threads():
            gone_after = time.monotonic() - closed_at
        await asyncio.sleep(0.25)
    state = server.state()
    return {"training_threads": server.training_threads(), "running": state["running"], "waiting": state["waiting"],
            "threads_gone_after_s": gone_after, "upload_folders_left": len(server.upload_folders()),
            "release_threads": [name for name in state["threads"] if name.startswith("release-")],
            "waited_s": server.ttl + settle, "ttl_s": server.ttl, "settle_s": settle,
            "state_age_s": server.state_age_s(),
            "rss_after": proc_status(server.pid)}


def queue_summary(labs: list[Session], max_jobs) -> dict:
    waited = [s for s in labs if s.positions - {0}]
    positions = sorted(set().union(*(s.positions for s in labs)) - {0})
    estimate = next((f"{s.first_estimate} (session {s.index})" for s in labs if s.first_estimate), None)
    return {"lab_sessions": len(labs), "waited": len(waited), "started": sum(s.started for s in labs),
            "positions": positions, "first_estimate": estimate, "max_jobs": max_jobs,
            "neither": [s.index for s in labs if not s.started and not s.positions - {0}]}


def summarize(crowd: list[Session], readings: dict, late: dict, server: Server) -> dict:
    labs = [s for s in crowd if s.kind == "lab"]
    switches = [t for s in crowd for t, _ in s.switches]
    before, peak = readings["before"], max(r for r, _ in readings["samples"] + [readings["before"]])
    return {
        "sessions": len(crowd),
        "errors": {s.index: s.problems[:3] for s in crowd if s.problems},
        "stalls": {s.index: s.stalls[:1] for s in crowd if s.stalls},
        "queue": queue_summary(labs, server.state().get("max_jobs")),
        "switch": percentiles(switches),
        "switch_while_training": percentiles([t for s in crowd for t, busy in s.switches if busy]),
        "switch_wire": percentiles([t for s in crowd if not s.remote for t, _ in s.wire.switches]),
        "switch_wire_while_training": percentiles([t for s in crowd if not s.remote
                                                   for t, busy in s.wire.switches if busy]),
        "remote_sessions": sum(s.remote for s in crowd),
        "switch_remote": percentiles([t for s in crowd if s.remote for t, _ in s.wire.switches]),
        "switch_remote_while_training": percentiles([t for s in crowd if s.remote
                                                     for t, busy in s.wire.switches if busy]),
        "classify": percentiles([t for s in crowd if not s.remote for t in s.predictions]),
        "classify_remote": percentiles([t for s in crowd if s.remote for t in s.predictions]),
        "switch_all_wire_while_training": percentiles([t for s in crowd for t, busy in s.wire.switches if busy]),
        "server_runs": server_runs(server, readings),
        "cpu": cpu_split(readings),
        "rss": {"before": before[0], "peak": peak, "after": late["rss_after"][0],
                "ratio": late["rss_after"][0] / before[0], "children_peak": readings.get("children_peak", 0.0)},
        "machine_available_gib": {"before": readings["available_before"], "min": readings["available_min"]},
        "threads": {"before": before[1], "peak": max(t for _, t in readings["samples"] + [before]),
                    "after": late["rss_after"][1]},
        "after_ttl": {k: v for k, v in late.items() if k != "rss_after"},
        "uploads": {"made_peak": readings["uploads_peak"], "zips_unpacked": sum(s.zip_unpacked for s in crowd),
                    "left": late["upload_folders_left"]},
        "tracebacks": server.tracebacks(),
        "architecture": {"visits": sum(s.architecture[0] for s in crowd),
                         "table_shown": sum(s.architecture[1] for s in crowd)},
        "progress": {s.index: s.progress_seen for s in labs},
        "queue_texts": {s.index: s.queue_texts for s in labs if s.queue_texts},
    }


def server_runs(server: Server, readings: dict) -> dict:
    """The server's own time for the crowd's script runs: whole-page runs (a page switch, a
    click, an upload) and fragment runs (a live view's refresh), p50/p95 each."""
    runs = server.script_runs(readings["crowd_from"], readings["crowd_until"])
    return {"page": percentiles([t for t, fragment in runs if not fragment]),
            "fragment": percentiles([t for t, fragment in runs if fragment])}


def cpu_split(readings: dict) -> dict:
    """Cores used on average during the crowd phase, by the server and by the browsers."""
    seconds = max(readings["crowd_until"] - readings["crowd_from"], 1e-9)
    before, after = readings["cpu_from"], readings["cpu_until"]
    return {kind: sum(used - before[kind].get(pid, 0.0) for pid, used in after[kind].items()) / seconds
            for kind in before} | {"seconds": seconds, "cores": os.cpu_count()}


def clean_failures(summary: dict) -> list[str]:
    """What breaks correctness (no timing): errors, stalls, a lab session that neither trained
    nor was shown its place, training left alive or queued, uploads not deleted, tracebacks."""
    late, queue = summary["after_ttl"], summary["queue"]
    checks = {"sessions saw an error": summary["errors"], "sessions stalled": summary["stalls"],
              "lab sessions neither trained nor showed a queue place": queue["neither"],
              "training threads alive after the TTL": late["training_threads"],
              "jobs still in the scheduler after the TTL": late["running"] + late["waiting"],
              "upload folders left after the TTL": summary["uploads"]["left"],
              "tracebacks in the server log": summary["tracebacks"],
              "the server's state file is stale (threads not seen)": late["state_age_s"] > 5}
    return [f"{name}: {value}" for name, value in checks.items() if value]


def goal_failures(summary: dict) -> list[str]:
    """The issue's goals. With thin clients in the crowd, the page switch is every session's
    on the wire, the thin clients' and the tabs' together (the drawing happens on a student's
    laptop); else the Chromium tabs', as drawn."""
    failures = clean_failures(summary)
    if summary["remote_sessions"]:
        busy, whose = summary["switch_all_wire_while_training"], "on the wire, "
    else:
        busy, whose = summary["switch_while_training"] or summary["switch"], ""
    if busy is None or busy["p95"] > SWITCH_P95_GOAL_S:
        failures.append(f"{whose}page switch p95 while training {shown(busy)} > {SWITCH_P95_GOAL_S} s")
    if summary["rss"]["ratio"] > RSS_GOAL:
        failures.append(f"RSS after/before {summary['rss']['ratio']:.2f} > {RSS_GOAL}")
    return failures


def report(summary: dict, echo) -> None:
    queue, rss, late, up = summary["queue"], summary["rss"], summary["after_ttl"], summary["uploads"]
    echo(f"errors: {len(summary['errors'])} of {summary['sessions']} sessions saw an exception, a report box or "
         f"a failed run; {len(summary['stalls'])} stalled")
    for index, seen in {**summary["errors"], **summary["stalls"]}.items():
        echo(f"  session {index}: {seen}")
    span = (f"{queue['positions'][0]}–{queue['positions'][-1]}" if len(queue["positions"]) > 1
            else "".join(map(str, queue["positions"])) or "none")
    echo(f"queue ({queue['max_jobs']} slot(s)): {queue['waited']} of {queue['lab_sessions']} lab sessions waited, "
         f"{queue['started']} got a slot; positions seen {span}; first wait estimate shown: "
         f"{queue['first_estimate'] or '—'}; neither trained nor shown a place: {queue['neither'] or 'none'}")
    for index, texts in list(summary["queue_texts"].items())[:3]:
        echo(f"  session {index} was shown: " + " … later: ".join(f"“{text}”" for text in texts))
    echo(f"page switch in the Chromium tabs {shown(summary['switch'])}; while a job trained "
         f"{shown(summary['switch_while_training'])}")
    echo(f"  on the wire (request sent -> the new page's opening caption received, this machine's drawing left out): "
         f"{shown(summary['switch_wire'])}; while a job trained {shown(summary['switch_wire_while_training'])}")
    if summary["remote_sessions"]:
        echo(f"page switch in the {summary['remote_sessions']} thin clients (on the wire, as from laptops): "
             f"{shown(summary['switch_remote'])}; while a job trained {shown(summary['switch_remote_while_training'])}")
    runs, cpu = summary["server_runs"], summary["cpu"]
    echo(f"  the server's own time per script run: whole page {shown(runs['page'])}; live-view fragment "
         f"{shown(runs['fragment'])}")
    echo(f"  cores used during the {cpu['seconds']:.0f} s of the crowd (of {cpu['cores']}): server {cpu['server']:.2f}, "
         f"Chromium {cpu['chromium']:.2f}, Playwright driver {cpu['playwright']:.2f}, this script (thin clients, "
         f"Playwright's Python side) {cpu['script']:.2f}")
    echo(f"classify (photo's top-5 drawn) in the Chromium tabs {shown(summary['classify'])}; in the thin clients "
         f"(its text received) {shown(summary['classify_remote'])}; Architecture page: Table 1 arrived within 2 s on "
         f"{summary['architecture']['table_shown']} of {summary['architecture']['visits']} visits")
    echo(f"server RSS before {rss['before']:,.0f} MiB, peak {rss['peak']:,.0f} MiB, after {rss['after']:,.0f} MiB: "
         f"after/before {rss['ratio']:.2f} ({'within' if rss['ratio'] <= RSS_GOAL else 'NOT within'} 15%); threads "
         f"{summary['threads']['before']} / {summary['threads']['peak']} / {summary['threads']['after']}; child "
         f"processes at most {rss['children_peak']:,.0f} MiB")
    memory = summary["machine_available_gib"]
    echo(f"machine memory available: {memory['before']:.1f} GiB before, at least {memory['min']:.1f} GiB during the "
         f"run (the browsers included: about {(memory['before'] - memory['min']) / summary['sessions']:.2f} GiB "
         f"a session)")
    gone = late["threads_gone_after_s"]
    ended = f"none left {gone:.1f} s after the close" if gone is not None else "some never ended"
    echo(f"{late['waited_s']:.0f} s after the last tab closed (TTL {late['ttl_s']} s + {late['settle_s']:.0f} s): "
         f"{len(late['training_threads'])} training threads alive {late['training_threads'] or ''}({ended})")
    echo(f"  scheduler: {len(late['running'])} running, {len(late['waiting'])} waiting; upload folders: "
         f"{up['made_peak']} made ({up['zips_unpacked']} zips unpacked), {up['left']} left; release threads "
         f"still going: {len(late['release_threads'])}")
    echo(f"tracebacks in the server log: {len(summary['tracebacks'])}"
         + "".join(f"\n  {line}" for line in summary["tracebacks"][:10]))


def run_benchmark(sessions: int = 6, duration: float = 120.0, *, ttl: int = 10, settle: float = 15.0,
                  ramp: float = 1.0, data: str = "synthetic", warmup: str = "train", max_jobs: int | None = None,
                  browser_nice: int = 0, remote: int = 0, keep_log: Path | None = None, echo=print) -> dict:
    """Start the server, drive the crowd, wait past the TTL; returns the summary (and prints it)."""
    if not CHROMIUM:
        raise RuntimeError("needs Debian's Chromium: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="classroom-load-") as folder:
        folder = Path(folder)
        files = sample_files(folder, sessions)
        server = Server(folder, ttl=ttl, data=data, max_jobs=max_jobs)
        try:
            echo(f"{sessions} sessions ({(sessions + 1) // 2} lab, {sessions // 2} inspect; "
                 f"{sessions - remote} Chromium tabs, {remote} thin clients) for {duration:.0f} s "
                 f"against {server.url}; class demo on {data}; TTL {ttl} s; load "
                 f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
            crowd, readings = asyncio.run(drive(server, sessions, duration, ramp, warmup, settle, files, echo,
                                                browser_nice, min(remote, sessions)))
            summary = summarize(crowd, readings, readings["late"], server)
            report(summary, echo)
            summary["load_after"] = os.getloadavg()
            return summary
        finally:
            server.stop()
            if keep_log is not None:
                shutil.copy(server.log, keep_log)
                echo(f"server log: {keep_log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of switching pages")
    parser.add_argument("--ttl", type=int, default=10, help="server.disconnectedSessionTTL in seconds")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after the TTL before the last reading")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds between two sessions' starts")
    parser.add_argument("--data", choices=("synthetic", "cifar10"), default="synthetic",
                        help="the class demo's data: synthetic (forced), or the app's choice (real CIFAR-10 if here)")
    parser.add_argument("--max-jobs", type=int, default=None, help="$EXPLORER_MAX_JOBS for the server")
    parser.add_argument("--warmup", choices=("train", "pages", "none"), default="train",
                        help="before measuring: one session visits the pages and runs a class demo (train), "
                             "only visits them (pages), or nothing (none: RSS 'before' of a cold server)")
    parser.add_argument("--browser-nice", type=int, default=0,
                        help="run Chromium at this nice value (19: the server gets the cores first, as on a class's "
                             "server whose browsers run on the students' laptops; the browsers then starve)")
    parser.add_argument("--remote", type=int, default=0,
                        help="how many of the sessions are thin clients (benchmarks/thin_client.py: the browser's "
                             "WebSocket protocol without a browser, as from students' laptops) instead of Chromium "
                             "tabs on this machine; the goal's page switch is then every session's, on the wire")
    parser.add_argument("--assert-clean", action="store_true", help="exit 1 on any correctness failure")
    parser.add_argument("--assert-goals", action="store_true", help="exit 1 unless the issue's goals are met")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()
    summary = run_benchmark(args.sessions, args.duration, ttl=args.ttl, settle=args.settle, ramp=args.ramp,
                            data=args.data, warmup=args.warmup, max_jobs=args.max_jobs,
                            browser_nice=args.browser_nice, remote=args.remote, keep_log=Path(tempfile.gettempdir()) / "classroom-load-server.log")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))
    failures = goal_failures(summary) if args.assert_goals else clean_failures(summary) if args.assert_clean else []
    for failure in failures:
        print(f"FAILED: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
