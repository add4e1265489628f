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
seconds, so an idle server does not keep a second copy of PyTorch in memory.
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

_lock = threading.Lock()
_executor: ProcessPoolExecutor | None = None
_calls_in_flight = 0
_idle_timer: threading.Timer | None = None


def run_isolated(function: Callable[..., T], *args) -> T:
    """``function(*args)`` in the worker process; its exceptions are raised here.

    ``function`` must be importable by name (a module-level function) and its arguments and
    result picklable. Calls from several threads are served one after another by the
    single worker (they are short, and the measurements share its caches). A worker that
    died (killed, out of memory) is replaced once.
    """
    for attempt in range(2):
        future = _submit(function, args)
        try:
            return future.result()
        except BrokenProcessPool:
            _discard_broken_worker()
            if attempt:
                raise
        finally:
            _call_finished()
    raise AssertionError("unreachable")


def _submit(function, args):
    global _executor, _calls_in_flight
    with _lock:
        if _idle_timer is not None:
            _idle_timer.cancel()
        if _executor is None:
            # spawn, never fork: forking a process with live OpenMP and server threads can deadlock.
            _executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        _calls_in_flight += 1
        with _bare_main():  # the first submit starts the worker process
            return _executor.submit(function, *args)


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


def _call_finished() -> None:
    global _calls_in_flight, _idle_timer
    with _lock:
        _calls_in_flight -= 1
        if _calls_in_flight == 0 and _executor is not None:
            _idle_timer = threading.Timer(IDLE_SHUTDOWN_S, shutdown_if_idle)
            _idle_timer.daemon = True
            _idle_timer.start()


def _discard_broken_worker() -> None:
    global _executor
    with _lock:
        if _executor is not None:
            _executor.shutdown(wait=False, cancel_futures=True)
            _executor = None


def shutdown_if_idle() -> bool:
    """Stop the worker process if no call is running; True if it was stopped."""
    global _executor
    with _lock:
        if _executor is None or _calls_in_flight:
            return False
        executor, _executor = _executor, None
    executor.shutdown(wait=True)
    return True


def worker_running() -> bool:
    with _lock:
        return _executor is not None
