"""Widgets and cached loaders every page shares: errors, the device, the architecture measurements.

Measurements that patch process-wide PyTorch state (FlopCounterMode's global hooks, torch.fx
tracing) run in the server's one isolation worker (:func:`isolation_worker`), never in a thread
of this server; their results are frozen dataclasses, cached once per server and shared by
every session.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import traceback
from collections.abc import Callable

import streamlit as st
import torch

from explorer import devices, settings
from explorer.models import get_model_spec
from explorer.paper import diagrams, table1
from explorer.server.isolation import IsolationWorker
from explorer.settings import RAISE_ERRORS_ENV
from explorer.store import weights

DEVICE_KEY = "device"
_LOG = logging.getLogger("explorer")
# Tests set this so that AppTest still sees a page's exception after the message is shown.
REPORT_LABEL = "Report this problem"


# What Streamlit's Markdown (GitHub's, plus LaTeX, emoji, icons and colour directives) can
# start with, anywhere in a line: links and images, emphasis, code, HTML, entities, tables,
# $LaTeX$, :directives[…]. A backslash makes each literal (CommonMark escapes any ASCII
# punctuation). "-", ".", "(", ")" and the like do nothing inside a line once "[" and "]"
# are escaped, and stay as they are: "resnet20-cifar10 (5 epochs)" reads the same in the source.
_INLINE = re.compile(r"([\\`*_{}\[\]<>#+!|~$&:])")
# At the start of a line a few more begin a block: "- " or "= " (a list, a heading's rule), "12. " (a list).
_LINE_START = re.compile(r"^(\s*)([-=]|\d+(?=[.)]))")
# Some of Streamlit's Markdown works on the text the escapes leave, after parsing, so no
# backslash stops it: bare URLs ("http://…", "www.…") and e-mail addresses become links, and
# ":material_x:", ":streamlit:" and ":smile:" become icons. A zero-width space inside each
# marker does (invisible, and not a character any of them allows).
_AFTER_PARSING = re.compile(r"(?i)(?<=:)(?=//|[\w+-])|(?<=www)(?=\.)|(?<=@)")
_ARROWS = re.compile(r"(^|\s)([-<>~])(>|-|=|->)(?=\s|$)")  # " -> " would become " → ", " -- " " — " (typography)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")  # a line break would start a new block (a list, a quote)
ZERO_WIDTH_SPACE = "\u200b"


def escaped(text) -> str:
    """``text`` (a link's value, a file or folder name, an upload's name, an error quoting
    one) as it must go into ``st.markdown``, ``st.warning``, a caption or a label: shown
    literally, never rendered. ``[Log in](http://ev.il)`` stays those characters, not a link;
    ``![x](http://ev.il/p.png)`` makes the browser fetch nothing; ``$x$`` is no formula.
    Line breaks become spaces, and the escapes are backslashes (``.replace("\\", "")``
    gives the text back, but for zero-width spaces after ``:``, ``www`` and ``@`` and inside
    `` -> ``). Checked against Streamlit's own renderer in Chromium (tests/test_markdown_escape.py)."""
    text = _AFTER_PARSING.sub(ZERO_WIDTH_SPACE, _CONTROL.sub(" ", str(text)))
    text = _ARROWS.sub(lambda m: m[1] + m[2] + ZERO_WIDTH_SPACE + m[3], text)
    text = _INLINE.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: m[1] + ("\\" + m[2] if m[2] in "-=" else m[2] + "\\"), text, count=1)


def keep_form_state(prefix: str) -> None:
    """Keep the values of every widget whose key starts with ``prefix`` across page switches.

    Streamlit forgets a widget's value once a run of another page does not draw it; writing
    the value back as plain session state on every run (before any page draws) keeps it."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        st.session_state[key] = st.session_state[key]


def report_errors(render: Callable[[], None]) -> Callable[[], None]:
    """Wrap a page run or a fragment: an unexpected exception becomes a short message and a
    collapsed report (the traceback, for a bug report) instead of a traceback on the
    projector; the server log keeps the full traceback. Streamlit's own st.stop/st.rerun
    are BaseExceptions and pass through."""
    @functools.wraps(render)
    def guarded() -> None:
        try:
            render()
        except Exception as error:  # noqa: BLE001 - shown to the user, logged in full
            _LOG.exception("Unhandled error in %s", getattr(render, "__qualname__", render))
            summary = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            summary = escaped(summary)  # an exception's text may quote a path or a name the user gave
            st.error(f"Something went wrong here: **{type(error).__name__}**{': ' + summary if summary else ''}. "
                     "The rest of the app still works; change a setting or reload the page to try again.")
            with st.expander(REPORT_LABEL):
                st.caption("Paste this into a bug report. The server's log has the same traceback.")
                st.code(traceback.format_exc(), language="text")
            if os.environ.get(RAISE_ERRORS_ENV):
                raise
    return guarded


def device_picker() -> None:
    """Sidebar: the device in use, cuda → mps → cpu by default, with an override."""
    options = devices.available_devices()
    if st.session_state.get(DEVICE_KEY) not in options:
        st.session_state[DEVICE_KEY] = options[0]
    st.sidebar.selectbox(
        "Device", options, key=DEVICE_KEY,
        help="Where models run. The best one found is chosen first: CUDA GPU, then Apple MPS, then CPU.",
    )
    device = current_device()
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    st.sidebar.caption(f"Running on **{label}** · PyTorch {torch.__version__}")


def current_device() -> torch.device:
    return devices.pick_device(st.session_state.get(DEVICE_KEY))


# This server process's one worker process for the measurements (explorer.server.isolation),
# owned by the app. Not a cache_resource: clearing Streamlit's caches (the Refresh of a page,
# every test) must not spawn a new process; the worker starts on first use and exits when idle.
ISOLATION_WORKER = IsolationWorker()


def isolation_worker() -> IsolationWorker:
    return ISOLATION_WORKER


def run_isolated(function, *args):
    """``function(*args)`` in the server's isolation worker."""
    return isolation_worker().run(function, *args)


@st.cache_resource(show_spinner="Measuring the model on PyTorch's meta device…")
def analysis(name: str) -> table1.Analysis:
    return run_isolated(table1.analyze, name)


@st.cache_resource(show_spinner="Measuring every registered model…")
def zoo_rows(family: str = "imagenet") -> list[table1.ZooRow]:
    return run_isolated(table1.zoo_rows, family)


@st.cache_resource(show_spinner="Building Table 1 from the live models…")
def paper_table(names: tuple[str, ...]) -> dict[str, list[str]]:
    return run_isolated(table1.paper_table, list(names))


@st.cache_resource(show_spinner="Tracing the blocks with torch.fx…")
def block_diagrams(name: str) -> list[diagrams.BlockDiagram]:
    return run_isolated(diagrams.block_diagrams, name)


def untrained_banner(names: list[str]) -> None:
    """A banner when some models would run with random weights, with the exact fix."""
    statuses = [weights.weights_status(get_model_spec(name)) for name in names]
    missing = [s for s in statuses if s.filename and not s.present]
    if not missing:
        return
    missing_names = " ".join(s.name for s in missing)
    st.warning(
        f"**No ImageNet weights found for {missing_names.replace(' ', ', ')}: these models are untrained** "
        "(random initialisation). Architecture numbers are exact regardless; predictions "
        "would be meaningless.\n\n"
        f"To get the weights, run `python -m explorer weights download {missing_names}` "
        f"or copy torchvision's files (e.g. `{missing[0].filename}`) into "
        f"`{settings.pretrained_dir()}` or `{weights.hub_checkpoint_dir()}`.",
        icon=":material/warning:",
    )
