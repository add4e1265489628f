"""End-to-end browser test: start the real Streamlit app and drive it with headless Chromium.

Needs Debian's Chromium and the ``playwright`` Python package (its bundled browsers are not
used, so ``playwright install`` is not needed). Enable with::

    apt-get install -y chromium
    pip install playwright

Set ``EXPLORER_SCREENSHOT_DIR`` to keep the screenshot of the Architecture page.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from apptest_helpers import best_shipped_checkpoint
from PIL import Image

from explorer.store.checkpoints import read_manifest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "explorer" / "app.py"
HOST = "127.0.0.1"

_ENABLE = "enable with: apt-get install -y chromium && pip install playwright"


def _find_chromium() -> str | None:
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


CHROMIUM = _find_chromium()
if CHROMIUM is None:
    pytest.skip(f"browser test needs Chromium, which is not installed ({_ENABLE})",
                allow_module_level=True)

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason=f"browser test needs the playwright package, which is not installed ({_ENABLE})",
)

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
HEALTH_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(could not read {path}: {error})"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The running app's base URL; the server is stopped when the module's tests end."""
    port = _free_port()
    # Like conftest's no_imagenet_weights (function-scoped, so not applied here): the app sees
    # what a fresh clone has.
    weights_root = tmp_path_factory.mktemp("browser-weights")
    # The shipped checkpoints and runs, without any ImageNet weight file a developer may have.
    shutil.copytree(ROOT / "pretrained", weights_root / "pretrained", ignore=shutil.ignore_patterns("*.pth"))
    env = {**os.environ, "EXPLORER_PRETRAINED_DIR": str(weights_root / "pretrained"),
           "TORCH_HOME": str(weights_root / "torch"), "EXPLORER_RUNS_DIR": str(weights_root / "runs"),
           "EXPLORER_CACHE_DIR": str(weights_root / "cache")}
    url = f"http://{HOST}:{port}"
    log_fd, log_name = tempfile.mkstemp(prefix="explorer-streamlit-", suffix=".log")
    log_path = Path(log_name)
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", HOST,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    with os.fdopen(log_fd, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    keep_log = True  # kept only when the server never became healthy (its tail is in the failure)
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not _healthy(f"{url}/_stcore/health"):
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with code {process.returncode} before becoming "
                            f"healthy; log {log_path}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy at {url} after {HEALTH_TIMEOUT_S} s; "
                            f"log {log_path}:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield url
        keep_log = False
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if not keep_log:
            log_path.unlink(missing_ok=True)


def _wait_until_idle(page, timeout_s: float = 30) -> None:
    """Wait until Streamlit's "Running…" status widget is gone (or the timeout passes)."""
    status = page.locator("[data-testid='stStatusWidget']")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not status.is_visible():
            return
        page.wait_for_timeout(250)


def _assert_no_error_shown(page) -> None:
    """No traceback (stException) and no caught error's "Report this problem" box on the page."""
    exceptions = page.locator("[data-testid='stException']")
    assert exceptions.count() == 0, "the page shows an exception:\n" + "\n".join(exceptions.all_inner_texts())
    reports = page.get_by_text("Report this problem")
    assert reports.count() == 0, "the page shows an error:\n" + "\n".join(
        page.locator("[data-testid='stAlert']").all_inner_texts())


def _local_only(route) -> None:
    if route.request.url.startswith((f"http://{HOST}:", f"ws://{HOST}:", "data:", "blob:")):
        route.continue_()
    else:
        route.abort()


@contextlib.contextmanager
def _local_page(height: int, width: int = 1400):
    """A fresh headless Chromium page that may reach only the local app (fonts, telemetry and
    CDNs are refused), closed afterwards."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", _local_only)
            yield page
        finally:
            browser.close()


def test_architecture_page_renders(app_url, tmp_path):
    with _local_page(1000, width=1600) as page:
        _check_architecture_page(page, app_url, tmp_path)


def _check_architecture_page(page, app_url: str, tmp_path: Path) -> None:
    page.goto(app_url, wait_until="domcontentloaded")
    nav = page.locator("[data-testid='stSidebarNav']")
    nav.wait_for(timeout=90_000)
    sync_api.expect(page.get_by_role("heading", name="ResNet Explorer").first).to_be_visible(timeout=60_000)

    # The sidebar link, not the home page's card link "Open Architecture".
    nav.get_by_role("link", name="Architecture").first.click()
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=120_000)
    page.get_by_text("Table 1, regenerated").first.wait_for(timeout=120_000)
    _wait_until_idle(page)

    _assert_no_error_shown(page)

    # st.dataframe draws its cells on a canvas, so the tables' own text (e.g. "conv2_x") is not
    # in the DOM. Check what is: the headers, the FlopCounterMode caption, the Table 1 column
    # chips and the zoo chart's axis labels (resnet152), and Table 1's caption (conv3_x).
    expected = ("Architecture: Table 1, measured from the live models", "The model zoo",
                "FlopCounterMode", "Table 1, regenerated", "resnet152", "conv3_x", "One model in detail",
                "3×3 max pool, stride 2")  # Table 1 is an HTML table: its cells are in the DOM
    body = page.locator("body")
    for text in expected:
        sync_api.expect(body).to_contain_text(text, timeout=30_000)
    # Table 1 (a KaTeX-heavy HTML table below the fold) is in the DOM before it is laid out:
    # wait until it is shown, so the rendered text below has it.
    page.get_by_text("3×3 max pool, stride 2").first.wait_for(state="visible", timeout=30_000)
    body_text = page.inner_text("body")
    missing = [text for text in expected if text not in body_text]
    assert not missing, f"{missing} not on the Architecture page; page text:\n{body_text[:3000]}"
    _assert_no_error_shown(page)

    out_dir = Path(os.environ.get("EXPLORER_SCREENSHOT_DIR") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    screenshot = out_dir / "architecture.png"
    # The README's picture: Table 1 as the paper typesets it, its heading at the top of the view.
    page.get_by_role("heading", name="Table 1, regenerated").first.evaluate("heading => heading.scrollIntoView()")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshot))
    assert screenshot.exists() and screenshot.stat().st_size > 10_000, screenshot
    print(f"\nscreenshot: {screenshot}")


def test_degradation_lab_runs_the_class_demo_in_the_browser(app_url, tmp_path):
    """One click starts the class demo; the progress moves, the gap caption appears; Stop stops it.
    With ``EXPLORER_SCREENSHOT_DIR`` set, the README's screenshot: the projector's 1600×1000
    view of the live chart after the demo's minute (or its end)."""
    keep = os.environ.get("EXPLORER_SCREENSHOT_DIR")
    with _local_page(1000 if keep else 1400, 1600 if keep else 1400) as page:
        sent = []  # (time, payload) of every websocket message the browser sends the server
        page.on("websocket", lambda socket: socket.on(
            "framesent", lambda payload: sent.append((time.monotonic(), payload))))
        page.goto(f"{app_url}/degradation", wait_until="domcontentloaded")
        demo = page.get_by_role("button", name=re.compile(r"Start the class demo"))
        demo.wait_for(timeout=90_000)
        _wait_until_idle(page)
        demo.click()
        page.get_by_text(re.compile(r"training: step ([5-9]|\d\d+) of")).first.wait_for(timeout=240_000)
        assert demo.is_disabled() and page.get_by_role("button", name="Stop").is_enabled()  # redrawn for the run
        page.get_by_text(re.compile(r"plain-56 is \d+ points (worse|better) than plain-20")).first.wait_for(
            timeout=60_000)
        if keep:  # the README's picture: the chart after the demo's minute, as the projector shows it
            with contextlib.suppress(sync_api.TimeoutError):
                page.get_by_text(re.compile(r"finished: step")).first.wait_for(timeout=75_000)
            page.locator("[data-testid='stPlotlyChart']").first.scroll_into_view_if_needed()
            page.mouse.wheel(0, 250)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(Path(keep) / "lab.png"))
            _assert_no_error_shown(page)
            return
        assert _rerun_requests(sent, since=time.monotonic() - 6) >= 2  # the live view refreshes every 2.5 s
        page.get_by_role("button", name="Stop").click()
        page.get_by_text(re.compile(r"stopped: step \d+ of")).first.wait_for(timeout=60_000)
        _assert_no_error_shown(page)
        assert page.locator("[data-testid='stPlotlyChart']").count() >= 1
        # A stopped run is drawn once: its tab asks the server for nothing more (ui.job_view).
        _wait_until_idle(page)
        quiet_from = time.monotonic()
        page.wait_for_timeout(6_000)
        assert _rerun_requests(sent, since=quiet_from) == 0
        assert page.get_by_role("button", name="Resume").is_enabled()
        if not keep:
            page.screenshot(path=str(tmp_path / "lab.png"), full_page=True)


def _rerun_requests(sent: list, since: float) -> int:
    """The browser's requests to rerun the script or a fragment after ``since``: every such
    BackMsg names the page's script hash (32 hex digits); the app heartbeat names nothing."""
    def names_a_hash(payload) -> bool:
        text = payload.decode("latin-1") if isinstance(payload, bytes) else payload
        return re.search(r"[0-9a-f]{32}", text) is not None
    return sum(1 for at, payload in sent if at >= since and names_a_hash(payload))


def test_inspect_page_classifies_an_upload_and_explains_it(app_url, tmp_path):
    """The shipped CIFAR-10 model classifies the samples, then an uploaded photo, in a real browser."""
    with _local_page(1800) as page:
        page.goto(f"{app_url}/inspect_image", wait_until="domcontentloaded")
        page.get_by_text("What the network thinks").first.wait_for(timeout=120_000)
        page.get_by_text("Grad-CAM for").first.wait_for(timeout=120_000)
        _wait_until_idle(page)
        body = page.locator("body")
        default = read_manifest(ROOT / "pretrained")[best_shipped_checkpoint(ROOT / "pretrained")]
        sync_api.expect(body).to_contain_text(f"{default.model} trained by this project on cifar10", timeout=30_000)

        photo = tmp_path / "my photo.png"
        Image.open(ROOT / "explorer" / "samples" / "ship.jpg").resize((96, 96)).save(photo)
        page.locator("input[type='file']").set_input_files(str(photo))
        page.get_by_text("my photo.png: what the net sees").first.wait_for(timeout=120_000)
        # The upload replaces the default samples once the rerun has finished.
        page.get_by_text("sample: automobile: what the net sees").first.wait_for(state="detached", timeout=120_000)
        _wait_until_idle(page)
        _assert_no_error_shown(page)
        assert page.locator("[data-testid='stPlotlyChart']").count() >= 2  # top-5, CAMs
        out_dir = Path(os.environ.get("EXPLORER_SCREENSHOT_DIR") or tmp_path)
        out_dir.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out_dir / "inspect.png"), full_page=True)
        # The other looks compute when their tab opens (a rerun of the page).
        page.get_by_role("tab", name="Feature maps").click()
        page.get_by_text(re.compile(r"outputs \d+ channels of")).first.wait_for(timeout=120_000)
        _wait_until_idle(page)
        _assert_no_error_shown(page)
        assert page.get_by_text("my photo.png: what the net sees").count() == 1  # the upload is still there


def test_why_shortcuts_page_shows_the_surfaces_and_computes_fig7(app_url, tmp_path):
    """The page opens with the shipped loss surfaces, and Fig. 7 computes with its verdict."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.route("**/*", _local_only)
            page.goto(f"{app_url}/why_shortcuts", wait_until="domcontentloaded")
            button = page.get_by_role("button", name="Compute the responses")
            button.wait_for(timeout=90_000)
            _wait_until_idle(page)
            button.click()
            page.get_by_text(re.compile(r"ResNet-(20|56)'s responses \(mean std")).first.wait_for(timeout=240_000)
            _assert_no_error_shown(page)
            assert page.locator("[data-testid='stPlotlyChart']").count() >= 2  # Fig. 7 and the path lengths
            out_dir = Path(os.environ.get("EXPLORER_SCREENSHOT_DIR") or tmp_path)
            out_dir.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out_dir / "why_shortcuts.png"))
        finally:
            browser.close()


def test_transfer_page_opens_idle_and_asks_the_server_for_nothing(app_url):
    """The fine-tuning tab with no job: its hint, Start enabled, Stop disabled, and no refresh
    requests while nothing runs (ui.job_view; the view polled twice a second before)."""
    with _local_page(1000) as page:
        sent = []
        page.on("websocket", lambda socket: socket.on(
            "framesent", lambda payload: sent.append((time.monotonic(), payload))))
        page.goto(f"{app_url}/transfer", wait_until="domcontentloaded")
        page.get_by_text("then press Start fine-tuning").first.wait_for(timeout=120_000)
        _wait_until_idle(page)
        _assert_no_error_shown(page)
        assert page.get_by_role("button", name="Start fine-tuning").is_enabled()
        assert page.get_by_role("button", name="Stop").is_disabled()
        quiet_from = time.monotonic()
        page.wait_for_timeout(3_000)
        assert _rerun_requests(sent, since=quiet_from) == 0
