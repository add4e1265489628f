"""Measurements that patch process-wide PyTorch state run in a worker process.

Two library tools this app relies on change the whole process while they run:

* ``torch.fx.symbolic_trace`` (the block diagrams) replaces ``torch.nn.Module.__call__`` and
  ``__getattr__`` until the trace returns, so a forward pass in any other thread (a lab
  run, another session's Grad-CAM) is routed into the tracer and fails ("module is not
  installed as a submodule");
* ``torch.utils.flop_counter.FlopCounterMode`` (Table 1's multiply-adds) installs *global*
  module hooks (``torch.utils.module_tracker``), which every other thread's forward pass
  then runs through, mixing that thread's modules into the count.

The app is one process serving many sessions, so these run here, in one spawned worker
process where nothing else computes; what comes back is plain data (frozen dataclasses,
strings). Measured on the 2-core CPU (closing note of the concurrency issue): the worker
starts in about 2.5 s once, then a call costs what it costs in-process (block diagrams of
ResNet-50: 0.05 s; every registered model's analysis: 3.3 s). The alternative, a
process-wide readers–writer lock that every forward pass takes, would freeze every
session's training and predictions for the length of each measurement (3.3 s for the zoo),
and any forward that forgot the lock would still break.

The worker is started on first use and shut down after :data:`IDLE_SHUTDOWN_S` idle
seconds, so an idle server does not keep a second copy of PyTorch in memory. The app holds one
:class:`IsolationWorker` for the whole server (explorer.ui.common); a test builds its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
import types
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")

IDLE_SHUTDOWN_S = 300.0  # seconds without a call before the worker process exits


class IsolationWorker:
    """One spawned worker process that runs the measurements, started on first use and shut
    down after ``idle_shutdown_s`` seconds without a call."""

    def __init__(self, idle_shutdown_s: float = IDLE_SHUTDOWN_S):
        self.idle_shutdown_s = idle_shutdown_s
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._calls_in_flight = 0
        self._idle_timer: threading.Timer | None = None

    def run(self, function: Callable[..., T], *args) -> T:
        """``function(*args)`` in the worker process; its exceptions are raised here.

        ``function`` must be importable by name (a module-level function) and its arguments and
        result picklable. Calls from several threads are served one after another by the
        single worker (they are short, and the measurements share its caches). A worker that
        died (killed, out of memory) is replaced once.
        """
        for attempt in range(2):
            future = self._submit(function, args)
            try:
                return future.result()
            except BrokenProcessPool:
                self._discard_broken_worker()
                if attempt:
                    raise
            finally:
                self._call_finished()
        raise AssertionError("unreachable")

    @property
    def running(self) -> bool:
        """Whether the worker process is up."""
        with self._lock:
            return self._executor is not None

    def shutdown_if_idle(self) -> bool:
        """Stop the worker process if no call is running; True if it was stopped."""
        with self._lock:
            if self._executor is None or self._calls_in_flight:
                return False
            executor, self._executor = self._executor, None
        executor.shutdown(wait=True)
        return True

    def close(self) -> None:
        """Stop the worker process now, without waiting for it (the app's resources cleared)."""
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, function, args):
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            if self._executor is None:
                # spawn, never fork: forking a process with live OpenMP and server threads can deadlock.
                self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            self._calls_in_flight += 1
            with _bare_main():  # the first submit starts the worker process
                return self._executor.submit(function, *args)

    def _call_finished(self) -> None:
        with self._lock:
            self._calls_in_flight -= 1
            if self._calls_in_flight == 0 and self._executor is not None:
                self._idle_timer = threading.Timer(self.idle_shutdown_s, self.shutdown_if_idle)
                self._idle_timer.daemon = True
                self._idle_timer.start()

    def _discard_broken_worker(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


@contextlib.contextmanager
def _bare_main():
    """spawn imports the parent's ``__main__`` again in the worker. Under ``streamlit run``
    that is the page script Streamlit last ran as ``__main__`` (explorer/app.py): the worker
    ran the whole app in bare mode, 730 MiB and a screen of warnings (benchmarks/
    classroom_load.py). A bare ``__main__`` (no file, no spec) is not imported at all. The
    running script keeps its own module's namespace, so swapping the entry is safe."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
