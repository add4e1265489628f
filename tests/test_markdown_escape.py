"""Text from a link, a file name or an upload is never rendered as Markdown (issue 37):
``explorer.ui.common.escaped`` on hostile strings, the lab opened with a hostile link, and
(where Chromium is installed) Streamlit's own renderer drawing the escaped strings."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from apptest_helpers import open_page
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.ui.common import ZERO_WIDTH_SPACE, escaped

HOSTILE = [
    "[Log in again](http://ev.il/x)", "![x](http://ev.il/p.png)", "http://ev.il/x", "HTTPS://EV.IL", "www.ev.il/x",
    "mail a@ev.il", ":smile: :+1: :material/home: :material_home: :streamlit:", "$x^2$ and $$y$$",
    ":red[red] :blue-background[b] :small[s] :help", "<b>bold</b> <img src=http://ev.il/q.png> &lt;i&gt; &amp;",
    "*em* _em_ **strong** __strong__ ~~del~~ `code`", "# heading", "- item", "+ item", "1. item", "7) item",
    "> quote", "| a | b |", "[ref]: http://ev.il", "x\n# h\n- l\r\n---", "\\[escaped\\]", "<http://ev.il>",
    "a -> b <- c -- d >= e", "[x][1] [1]: http://ev.il", "foo_bar_baz", "\\\\[x](http://ev.il)", "{#id .class}",
]
# Characters that start Markdown anywhere in a line: each must come out behind a backslash.
SPECIAL = set("\\`*_{}[]<>#+!|~$&:")


def unescaped(text: str) -> str:
    """What a Markdown renderer shows for ``escaped``'s output: the escapes undone, the
    zero-width spaces invisible."""
    return re.sub(r"\\(.)", r"\1", text).replace(ZERO_WIDTH_SPACE, "")


def bare_specials(text: str) -> list[str]:
    """Special characters of ``text`` not behind a backslash."""
    found, index = [], 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] in SPECIAL:
            found.append(text[index])
        index += 1
    return found


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_comes_out_literal(text):
    shown = escaped(text)
    assert bare_specials(shown) == []
    assert "\n" not in shown and "\r" not in shown  # no second line to start a list or a heading on
    assert unescaped(shown) == re.sub(r"[\r\n]+", " ", text)  # what the reader sees is what was given
    assert not re.search(r"(?i)https?://|www\.|@\w", shown.replace("\\", ""))  # no bare URL or address to link
    assert not re.match(r"\s*([-+=>]|\d+[.)])", shown)  # no list, quote or rule at the start


def test_names_without_markdown_read_the_same_in_the_source():
    for plain in ("resnet20-cifar10", "photo (1).jpg", "cat, dog; 5 epochs.", "folder/with spaces"):
        assert escaped(plain) == plain


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters=ZERO_WIDTH_SPACE), max_size=80))
def test_any_text_comes_out_literal(text):
    shown = escaped(text)
    assert bare_specials(shown) == []
    assert unescaped(shown) == re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", text)


def test_a_hostile_link_shows_no_link_and_the_lab_goes_on_working():
    at = open_page("../pages/degradation.py", {"preset": "[Log in again](http://ev.il/x)",
                                                "models": "![x](http://ev.il/p.png),resnet20", "seed": "$1$"})
    notices = [w.value for w in at.warning if "From the link" in w.value]
    assert len(notices) == 3
    for notice in notices:
        assert bare_specials(notice.removeprefix("From the link: ")) == [] and "](" not in notice.replace("\\]", "")
        assert "http://" not in notice
    assert "Log in again" in notices[0] and "ev.il/p.png" in unescaped(notices[1])  # quoted, as characters
    assert at.multiselect(key="lab.models").value == ["resnet20"]
    at.number_input(key="lab.seed").set_value(3).run()  # the session goes on
    assert not at.exception and at.query_params["seed"] in ("3", ["3"])
    assert "ev.il" not in " ".join(str(v) for v in at.query_params.values())


# --- Streamlit's own renderer, in Chromium (as tests/test_browser.py: skipped without it) ---

PAGE = """
import json, sys
import streamlit as st
from explorer.ui.common import escaped
for i, text in enumerate(json.loads(sys.argv[1])):
    with st.container(key=f"case{i}"):
        st.markdown(escaped(text))
with st.container(key="control"):
    st.markdown("[a](http://ev.il/x) :smile: $x$ http://ev.il")
"""
RENDERED = "a, img, em, strong, code, del, h1, h2, h3, h4, h5, h6, li, blockquote, table, hr, .katex, span[role=img]"


def _chromium() -> str | None:
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (apt-get install -y chromium) and playwright")
def test_streamlit_renders_the_escaped_text_as_plain_characters(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    script = tmp_path / "page.py"
    script.write_text(PAGE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true", "--server.port",
         str(port), "--browser.gatherUsageStats", "false", "--", json.dumps(HOSTILE)],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=_chromium(),
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page()
            fetched = []
            page.on("request", lambda request: fetched.append(request.url))
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector(".st-key-control .katex", timeout=60_000)  # the control did render
            for index, text in enumerate(HOSTILE):
                box = page.locator(f".st-key-case{index} [data-testid=stMarkdownContainer]")
                assert box.evaluate(f"e => e.querySelectorAll('{RENDERED}').length") == 0, text
                shown = box.inner_text().replace(ZERO_WIDTH_SPACE, "")
                assert shown.split() == re.sub(r"[\r\n]+", " ", text).split(), text
            control = page.locator(".st-key-control").evaluate(f"e => e.querySelectorAll('{RENDERED}').length")
            assert control >= 3  # the check itself sees a link, an emoji and a formula when they are there
            browser.close()
        assert not [url for url in fetched if "ev.il" in url]  # no image was fetched
    finally:
        server.terminate()
        server.wait(timeout=10)
