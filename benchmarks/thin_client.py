"""One Streamlit session driven over the app's own WebSocket protocol, without a browser.

A class's browsers run on the students' laptops: on the class's server a session costs what
its WebSocket asks for (script runs, the live views' timed refreshes, uploads), not the
drawing. On a 2-core machine thirty Chromium tabs beside the server take the cores
themselves (benchmarks/classroom_load.py measured Chromium at 1.7 of the 2), so this client
speaks the protocol the browser speaks (``streamlit.proto``'s BackMsg out, ForwardMsg in, on
``/_stcore/stream``; uploads by HTTP PUT to the URLs the server hands out) and asks for
exactly what a tab asks for, at almost no CPU of its own: the crowd's load reaches the server
as it would from a room of laptops.

What it does as a tab does: opens a page by its URL path; switches pages as a sidebar click
does (the target's script hash); presses a button (its widget id, found by label, as a
trigger) and picks a radio option; uploads a file into a file uploader; answers the server's
``auto_rerun`` messages (``st.fragment(run_every=…)``, the lab's live view) with the
fragment's timed reruns, dropping them all when a whole-page run starts and replacing one
whose interval changes, as the browser does; names the cacheable elements it holds in every
rerun (``cached_message_hashes``), so the server sends a reference instead of an unchanged
Table 1 or figure, and reads the referenced element from its own cache.

What it leaves out: the page's HTML and JavaScript (fetched once when a tab opens, then
cached by the browser), ``/media`` files (``st.image``) and the app heartbeat. Its clock is
this script's event loop, shared by every thin client: a frame's arrival is stamped when
the loop gets to it, so on a loaded machine its times are, if anything, too long.

Received frames are kept ``keep_frames_s`` seconds, to search their bytes for a text
(protobuf strings are UTF-8 in the frame); the progress bar's text and exception elements
are read as they arrive. Only the loopback server under test is contacted.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

XSRF_COOKIE = "_streamlit_xsrf"  # streamlit/web/server/starlette/starlette_server_config.py
# The browser forgets a cached element not used in this many finished script runs
# (Streamlit's global.maxCachedMessageAge, default 2).
MAX_CACHED_MESSAGE_AGE = 2


@dataclass
class Widget:
    id: str
    kind: str  # the element's type: "button", "file_uploader", "radio", …
    label: str
    options: tuple[str, ...] = ()


@dataclass
class Inbox:
    """What a frame brought, as the client reads it."""

    frames: collections.deque[tuple[float, bytes]] = field(default_factory=collections.deque)  # (arrival, frame)
    widgets: dict[str, Widget] = field(default_factory=dict)  # by widget id
    progress: str = ""  # the latest progress bar's text
    exceptions: list[str] = field(default_factory=list)  # st.exception elements' messages


class ThinClient:
    """A browser tab without the browser: ``async with ThinClient(url) as client``, then
    ``await client.open("degradation")``, ``switch``, ``click``, ``choose``, ``upload`` and
    ``wait_for``. Received frames are kept ``keep_frames_s`` seconds (longer than any wait)."""

    def __init__(self, base_url: str, *, keep_frames_s: float = 240.0):
        self.base_url, self.keep_frames_s = base_url.rstrip("/"), keep_frames_s
        self.inbox = Inbox()
        self.session_id = ""
        self.pages: dict[str, str] = {}  # URL path ("" for the home page) -> script hash
        self.query_string = ""
        self._socket = None
        self._reader: asyncio.Task | None = None
        self._fragments: dict[str, tuple[asyncio.Task, float]] = {}  # fragment id -> (timed reruns, interval)
        self._cache: dict[str, list] = {}  # hash -> [frame, age]: cacheable elements held, as the browser's cache
        self._closing = False
        self._upload_answers: dict[str, asyncio.Future] = {}
        self._arrived = asyncio.Event()
        self._current_path = ""  # the page shown, by URL path
        self._states: dict[str, object] = {}  # the shown page's widget values set so far, by widget id
        self._cookie = ""
        self.closed_by_server: str | None = None

    async def __aenter__(self) -> "ThinClient":
        self._cookie = cookie = await asyncio.to_thread(self._xsrf_cookie)
        ws_url = self.base_url.replace("http", "ws", 1) + "/_stcore/stream"
        self._socket = await websockets.connect(
            ws_url, subprotocols=["streamlit", cookie] if cookie else ["streamlit"], origin=self.base_url,
            additional_headers={"Cookie": f"{XSRF_COOKIE}={cookie}"} if cookie else None, max_size=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        self._closing = True
        self._stop_timers()
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()

    def _xsrf_cookie(self) -> str:
        """The XSRF cookie a browser sends back with uploads: the health check that the
        page's script makes first sets it."""
        with urllib.request.urlopen(self.base_url + "/_stcore/health", timeout=60) as response:
            for header in response.headers.get_all("Set-Cookie") or []:
                if header.startswith(XSRF_COOKIE + "="):
                    return header.split(";", 1)[0].split("=", 1)[1]
        return ""

    # -- receiving ---------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for frame in self._socket:
                self._take(frame if isinstance(frame, bytes) else frame.encode())
            if not self._closing:
                self.closed_by_server = "the server closed the connection"
        except websockets.ConnectionClosed as closed:
            self.closed_by_server = f"connection closed: {closed}"
        except Exception as error:  # noqa: BLE001 - a frame this client cannot read: say so, do not hang
            self.closed_by_server = f"reading a frame failed: {error!r}"
        finally:
            self._arrived.set()

    def _take(self, frame: bytes) -> None:
        now = time.monotonic()
        inbox = self.inbox
        inbox.frames.append((now, frame))
        while inbox.frames and inbox.frames[0][0] < now - self.keep_frames_s:
            inbox.frames.popleft()
        message = ForwardMsg()
        message.ParseFromString(frame)
        kind = message.WhichOneof("type")
        if kind == "ref_hash" and message.ref_hash in self._cache:  # an element it holds: read that one
            held = self._cache[message.ref_hash]
            frame, held[1] = held[0], 0
            inbox.frames.append((now, frame))
            message.ParseFromString(frame)
            kind = message.WhichOneof("type")
        elif message.metadata.cacheable and message.hash:
            self._cache[message.hash] = [frame, 0]
        if kind == "script_finished":  # every held element ages by one run; the old ones are forgotten
            for key, held in list(self._cache.items()):
                held[1] += 1
                if held[1] > MAX_CACHED_MESSAGE_AGE:
                    del self._cache[key]
        if kind == "new_session":
            self.session_id = message.new_session.initialize.session_id
            if not message.metadata.run.fragment_ids:  # a whole-page run: its fragments register anew
                self._stop_timers()
        elif kind == "navigation":
            self.pages = {page.url_pathname: page.page_script_hash for page in message.navigation.app_pages}
        elif kind == "page_info_changed":
            self.query_string = message.page_info_changed.query_string
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            self._element(message.delta.new_element)
        elif kind == "auto_rerun":
            fragment, interval = message.auto_rerun.fragment_id, message.auto_rerun.interval
            running = self._fragments.get(fragment)
            if running is None or running[1] != interval:
                if running is not None:
                    running[0].cancel()
                self._fragments[fragment] = (asyncio.create_task(self._timed_reruns(fragment, interval)), interval)
        elif kind == "stop_auto_rerun":
            for fragment in message.stop_auto_rerun.fragment_ids:
                running = self._fragments.pop(fragment, None)
                if running is not None:
                    running[0].cancel()
        elif kind == "file_urls_response":
            answer = self._upload_answers.pop(message.file_urls_response.response_id, None)
            if answer is not None and not answer.done():
                answer.set_result(message.file_urls_response)
        self._arrived.set()

    def _element(self, element) -> None:
        kind = element.WhichOneof("type")
        body = getattr(element, kind, None)
        if kind == "progress":
            self.inbox.progress = element.progress.text
        elif kind == "exception":
            self.inbox.exceptions.append(f"{element.exception.type}: {element.exception.message}"[:300])
        widget_id = getattr(body, "id", "") if body is not None else ""
        if isinstance(widget_id, str) and widget_id.startswith("$$ID-"):
            self.inbox.widgets[widget_id] = Widget(widget_id, kind, getattr(body, "label", ""),
                                                   tuple(getattr(body, "options", ())))

    def _stop_timers(self) -> None:
        for task, _ in self._fragments.values():
            task.cancel()
        self._fragments.clear()

    async def _timed_reruns(self, fragment_id: str, interval: float) -> None:
        """What the browser does on ``auto_rerun``: rerun the fragment every ``interval`` s."""
        while True:
            await asyncio.sleep(interval)
            message = BackMsg()
            state = message.rerun_script
            state.query_string, state.fragment_id, state.is_auto_rerun = self.query_string, fragment_id, True
            state.page_script_hash = self.pages.get(self._current_path, "")
            state.cached_message_hashes.extend(self._cache)
            await self._send(message)

    # -- sending -----------------------------------------------------------------------------

    async def _send(self, message: BackMsg) -> None:
        try:
            await self._socket.send(message.SerializeToString())
        except websockets.ConnectionClosed as closed:
            self.closed_by_server = f"connection closed: {closed}"

    async def _rerun(self, path: str, widgets=()) -> float:
        """Ask for a whole run of the page at ``path``; returns the monotonic time the request left."""
        message = BackMsg()
        state = message.rerun_script
        state.query_string = self.query_string
        state.page_script_hash, state.page_name = self.pages.get(path, ""), path
        if path != self._current_path:
            self._states.clear()  # the old page's widgets are gone, as in a browser
        state.widget_states.widgets.extend([*self._states.values(), *widgets])
        state.cached_message_hashes.extend(self._cache)
        self._states.update({w.id: w for w in widgets if not w.HasField("trigger_value")})
        self._current_path = path
        self.inbox.widgets.clear()
        self.inbox.progress = ""
        sent = time.monotonic()
        await self._send(message)
        return sent

    async def open(self, path: str, query_string: str = "") -> float:
        """Load ``/path`` as a browser's address bar does; returns when the request left."""
        self.query_string = query_string
        return await self._rerun(path)

    async def switch(self, path: str) -> float:
        """A sidebar click: the target page's script hash (known once the first run has
        sent the navigation); returns when the request left."""
        await self.wait_until(lambda: path in self.pages, timeout=180)
        self.query_string = ""
        return await self._rerun(path)

    async def click(self, label: str | re.Pattern, timeout: float = 180) -> float:
        """Press the button whose label matches (a trigger, as a browser sends a click)."""
        widget = await self.widget("button", label, timeout)
        message_widget = _widget_state(widget.id, trigger_value=True)
        return await self._rerun(self._current_path, widgets=[message_widget])

    async def choose(self, label: str | re.Pattern, option: str, timeout: float = 180) -> float:
        """Pick ``option`` in the radio whose label matches (its value is the option's text:
        this Streamlit's radio keeps a string, not an index)."""
        widget = await self.widget("radio", label, timeout)
        if option not in widget.options:
            raise ValueError(f"{option!r} is not one of the radio's options {widget.options}")
        return await self._rerun(self._current_path, widgets=[_widget_state(widget.id, string_value=option)])

    async def upload(self, label: str | re.Pattern, photo: Path, timeout: float = 180) -> float:
        """Put ``photo`` into the file uploader whose label matches, as a browser does: ask for
        an upload URL, PUT the file there (multipart, with the XSRF header and cookie), then
        rerun with the uploader's new state. Returns when the rerun request left."""
        widget = await self.widget("file_uploader", label, timeout)
        request_id = uuid.uuid4().hex
        answer = asyncio.get_running_loop().create_future()
        self._upload_answers[request_id] = answer
        message = BackMsg()
        message.file_urls_request.request_id = request_id
        message.file_urls_request.session_id = self.session_id
        message.file_urls_request.file_names.append(photo.name)
        await self._send(message)
        urls = await asyncio.wait_for(answer, timeout)
        if urls.error_msg:
            raise RuntimeError(f"upload refused: {urls.error_msg}")
        target = urls.file_urls[0]
        data = photo.read_bytes()
        await asyncio.to_thread(self._put, target.upload_url, photo.name, data)
        info_state = _widget_state(widget.id)
        info = info_state.file_uploader_state_value.uploaded_file_info.add()
        info.name, info.size, info.file_id = photo.name, len(data), target.file_id
        info.file_urls.CopyFrom(target)
        return await self._rerun(self._current_path, widgets=[info_state])

    def _put(self, upload_url: str, name: str, data: bytes) -> None:
        url = upload_url if upload_url.startswith("http") else self.base_url + "/" + upload_url.lstrip("/")
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(url, data=body, method="PUT", headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": self._cookie,
            "Cookie": f"{XSRF_COOKIE}={self._cookie}", "Origin": self.base_url})
        with urllib.request.urlopen(request, timeout=180) as response:
            response.read()

    # -- waiting -----------------------------------------------------------------------------

    async def wait_until(self, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.closed_by_server:
                raise ConnectionError(self.closed_by_server)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not seen within {timeout:.0f} s")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass

    async def wait_for(self, text: str, since: float, timeout: float = 180) -> float:
        """Seconds from ``since`` (monotonic) to the first frame received after it that holds
        ``text``."""
        needle = text.encode()
        found: list[float] = []

        def seen() -> bool:
            found[:] = [at for at, frame in self.inbox.frames if at >= since and needle in frame][:1]
            return bool(found)

        await self.wait_until(seen, timeout)
        return found[0] - since

    async def widget(self, kind: str, label: str | re.Pattern, timeout: float = 180) -> Widget:
        pattern = label if isinstance(label, re.Pattern) else re.compile(re.escape(label))

        def matching() -> list[Widget]:
            return [w for w in self.inbox.widgets.values() if w.kind == kind and pattern.search(w.label)]

        await self.wait_until(lambda: bool(matching()), timeout)
        return matching()[0]


def _widget_state(widget_id: str, **value):
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return WidgetState(id=widget_id, **value)
