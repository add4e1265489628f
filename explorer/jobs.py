"""Training runs in a background thread, safe to watch from a UI that reruns.

The worker owns the models; the UI only ever reads a job's ``snapshot()``, a copy taken
under the lock, and shows its ``progress_text()``. The worker never touches the UI. A lab
run (:class:`TrainingJob`) and a fine-tuning run (:class:`FinetuneJob`) share the thread,
the stop flag, the lock and the failure handling (:class:`BackgroundJob`), and the shape of
what a reader sees (:class:`Snapshot`).
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from explorer.data import load_data
from explorer.loop import eta_s, safe_name
from explorer.runs import RunRecord, new_record, save_run
from explorer.scheduler import Scheduler, Ticket, spoken_duration
from explorer.train import TrainConfig, Training, check_config, layer_names, load_training_data
from explorer.transfer import FinetuneConfig, FinetuneResult, FinetuneStep, Finetuning, check_finetune_config


@dataclass(frozen=True)
class QueuePlace:
    """A job waiting for one of the server's training slots (explorer.scheduler, issue 16)."""

    position: int  # 1: the next to start
    wait_s: float | None  # estimated seconds until it starts; None while unknown
    slots: int  # how many training runs the server runs at once

    def text(self) -> str:
        """"waiting for a free training slot: number 2 in line · starts in about 40 s (…)"."""
        place = "next in line" if self.position == 1 else f"number {self.position} in line"
        wait = f" · starts in about {spoken_duration(self.wait_s)}" if self.wait_s is not None else ""
        runs = "1 run" if self.slots == 1 else f"{self.slots} runs"
        return (f"waiting for a free training slot: {place}{wait} (this server trains {runs} at a time "
                f"so that every page stays quick; Stop leaves the queue)")


@dataclass(frozen=True)
class Snapshot:
    """What a reader sees of a job at one instant; subclasses add what their run reports."""

    state: str  # "queued", "loading data", then the run's phases, then "finished", "stopped" or "failed"
    error: str | None
    queue: QueuePlace | None = field(default=None, kw_only=True)  # while "queued"

    @property
    def fraction(self) -> float:
        """How far the current phase is, in [0, 1], for a progress bar."""
        raise NotImplementedError

    def queued_text(self) -> str | None:
        """Its place in the server's queue while it waits (before the first report of the
        place, a moment after Start), else None."""
        if self.queue is not None:
            return self.queue.text()
        return "waiting for a free training slot…" if self.state == "queued" else None


def _time_left(eta_s: float | None) -> str:
    return f" · about {spoken_duration(eta_s)} left" if eta_s is not None else ""


@dataclass(frozen=True)
class JobSnapshot(Snapshot):
    record: RunRecord
    saved_to: Path | None
    total_steps: int
    loading: tuple[int, int] | None = None  # (images decoded, of) while the data set loads

    @property
    def done_steps(self) -> int:
        return self.record.steps[-1]["step"] if self.record.steps else 0

    @property
    def eta_s(self) -> float | None:
        if not self.record.steps or self.state != "training":
            return None
        last = self.record.steps[-1]
        return eta_s(last["elapsed_s"], last["step"], self.total_steps)

    @property
    def fraction(self) -> float:
        if self.state == "loading data":
            decoded, of = self.loading or (0, 0)
            return decoded / of if of else 0.0
        return self.done_steps / self.total_steps if self.total_steps else 0.0

    def progress_text(self) -> str:
        """"training: step 300 of 800 · 410 images/s · about 12 s left", for a progress bar
        (while the data set loads: the images decoded so far; while queued: its place)."""
        if queued := self.queued_text():
            return queued
        if self.state == "loading data":
            decoded, of = self.loading or (0, 0)
            once = (" (a folder is decoded once, then read from the disk cache)"
                    if str(self.record.config.get("data", "")).startswith("folder:") else "")
            return f"loading data: {decoded:,} of {of:,} images{once}" if of else "loading data…"
        text = f"{self.state}: step {self.done_steps:,} of {self.total_steps:,}"
        if self.record.steps:
            # A validation step's rate (every run's last step is one) counts the validation pass.
            recent = self.record.steps[-5:]
            training_only = [s for s in recent if all(m.get("val_error") is None for m in s["models"])]
            text += f" · {(training_only or recent)[-1]['images_per_s']:,.0f} images/s"
        return text + _time_left(self.eta_s)


class BackgroundJob:
    """A worker thread with a stop flag, a lock for what it shares, a state and an error.
    Subclasses do their run in :meth:`_work`; an exception there becomes the job's error.

    Started with a :class:`~explorer.scheduler.Scheduler` (the app's, issue 16), the work
    waits for one of the server's training slots first: the job is "queued" meanwhile, its
    snapshot says its place, and Stop takes it out of the queue. Without one (the CLI, the
    tests) it starts at once."""

    def __init__(self, name: str, config, device: torch.device | str, loader: Callable):
        self.config = config
        self.device = torch.device(device)
        self._loader = loader
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = "loading data"
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._scheduler: Scheduler | None = None
        self._session: str | None = None
        self._ticket: Ticket | None = None
        self._queue: QueuePlace | None = None
        self._first_state = self._state  # what the work starts in, once out of the queue

    def start(self, scheduler: Scheduler | None = None, *, session: str | None = None):
        """Start the worker thread; with ``scheduler``, it first waits for a slot there
        (``session`` names the tab, so the scheduler can drop its waiting jobs when it closes)."""
        self._scheduler, self._session = scheduler, session
        if scheduler is not None:
            self._first_state, self._state = self._state, "queued"
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def waiting(self) -> bool:
        """Started, and still waiting in the server's queue for a training slot."""
        with self._lock:
            return self._state == "queued" and self.running

    def snapshot(self) -> Snapshot:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            with self._slot() as ticket:
                if ticket is None:  # stopped, or its tab closed, while it waited
                    with self._lock:
                        self._state, self._queue = "stopped", None
                    return
                with self._lock:
                    self._ticket, self._queue = (ticket if isinstance(ticket, Ticket) else None), None
                    if self._state == "queued":
                        self._state = self._first_state
                self._work()
                if self._ticket is not None:
                    self._ticket.completed = self._state == "finished"
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._fail(error)
        finally:
            self._after()

    def _slot(self):
        if self._scheduler is None:
            return contextlib.nullcontext(True)
        return self._scheduler.slot(self._thread.name, session=self._session, cancelled=self._stop.is_set,
                                    on_position=self._queued)

    def _queued(self, position: int, wait_s: float | None) -> None:
        with self._lock:
            self._queue = QueuePlace(position, wait_s, self._scheduler.max_jobs)

    def _pace(self, eta_s: float | None) -> int | None:
        """Between steps, in the worker: follow the slot's share of the torch threads (returned;
        None outside a slot) and tell the queue how long this run has left (its wait estimates)."""
        if self._ticket is not None:
            self._ticket.report(eta_s=eta_s)
            return self._ticket.pace()

    def _work(self) -> None:
        raise NotImplementedError

    def _after(self) -> None:
        """Runs once the work is over, whether it finished, stopped or failed."""

    def _set_end_state(self) -> None:
        """Under the lock, once the work is done: "stopped" if asked to stop, else "finished"."""
        self._state = "stopped" if self._stop.is_set() else "finished"

    def _fail(self, error: Exception) -> None:
        """Record an error for the UI: the thread must never die silently."""
        with self._lock:
            self._state = "failed"
            self._error = str(error) or type(error).__name__


class TrainingJob(BackgroundJob):
    """A lab run in a background thread. A stopped job can be continued exactly where it
    stopped with :meth:`resumed` (the lab's Resume button): same models, optimisers, data
    order and record."""

    def __init__(self, config: TrainConfig, *, device: torch.device | str, name: str,
                 save_dir: Path | None = None, loader: Callable = load_data):
        check_config(config)  # bad settings fail here, in the caller, not in the thread
        super().__init__(f"train-{name}", config, device, loader)
        self.save_dir = save_dir
        self._record = new_record(name, config, self.device, layer_names(config))
        self._saved_to: Path | None = None
        self._training: Training | None = None
        self._loading: tuple[int, int] | None = None

    def snapshot(self) -> JobSnapshot:
        """A consistent copy for a reader. Step entries are never changed once appended, so
        copying the lists (not the entries) is enough and stays cheap for long runs."""
        with self._lock:
            record = copy.copy(self._record)
            record.steps = list(self._record.steps)
            record.messages = list(self._record.messages)
            return JobSnapshot(state=self._state, error=self._error, record=record, saved_to=self._saved_to,
                               total_steps=self.config.steps, loading=self._loading, queue=self._queue)

    @property
    def can_resume(self) -> bool:
        with self._lock:
            return (not self.running and self._state == "stopped" and self._training is not None
                    and self._training.step < self.config.steps)

    def resumed(self) -> TrainingJob:
        """A new (not yet started) job that continues this stopped one."""
        if not self.can_resume:
            raise ValueError("Only a stopped run that has steps left can be resumed.")
        job = TrainingJob(self.config, device=self.device, name=self._record.name, save_dir=self.save_dir,
                          loader=self._loader)
        job._record, job._saved_to, job._training = self._record, self._saved_to, self._training
        job._record.finished = False
        job._state = "training"
        return job

    def _loaded(self, done: int, total: int) -> None:
        with self._lock:
            self._loading = (done, total)

    def _work(self) -> None:
        if self._training is None:
            data = load_training_data(self.config, self._loader, progress=self._loaded)
            training = Training(self.config, data, device=self.device)
            with self._lock:
                self._training, self._state = training, "training"
                self._record.classes = list(training.data.classes)
        self._training.threads = self._pace(None)  # the model threads (if any) share the slot's threads
        for record in self._training.steps(self._stop):
            with self._lock:
                self._record.append(record)
            self._training.threads = self._pace(eta_s(record.elapsed_s, record.step, self.config.steps))
        with self._lock:
            self._set_end_state()
            self._record.finished = self._state == "finished"

    def _after(self) -> None:
        if self.save_dir is None or not self._record.steps:
            return
        with self._lock:
            # Names carry the data source ("folder:/a/b"): keep the file name one plain segment.
            name = safe_name(self._record.name, "_") or "run"
            path = self._saved_to or self.save_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.json"
            try:
                self._saved_to = save_run(self._record, path)
            except OSError as error:
                self._error = f"{self._error + '; ' if self._error else ''}could not save the run: {error}"


@dataclass(frozen=True)
class FinetuneSnapshot(Snapshot):  # state: "loading data", "features", "training", then the end states
    last: FinetuneStep | None
    history: list[dict]  # per finished epoch: train and validation accuracy
    result: FinetuneResult | None

    @property
    def fraction(self) -> float:
        return self.last.done / self.last.total if self.last is not None else 0.0

    def progress_text(self, epochs: int, running: bool) -> str:
        """"training: 300 of 1,760 steps · epoch 1.7 of 5 · about 12 s left", for a progress bar."""
        last = self.last
        if queued := self.queued_text():
            return queued
        if last is None:
            return "loading the data set…"
        what = "computing the backbone's features" if last.phase == "features" else "training"
        unit = "images" if last.phase == "features" else "steps"
        state = self.state if self.state in ("finished", "stopped", "failed") else what
        text = f"{state}: {last.done:,} of {last.total:,} {unit}"
        if last.phase == "training":
            text += f" · epoch {last.epoch:.1f} of {epochs}"
        return text + (_time_left(last.eta_s) if running else "")


class FinetuneJob(BackgroundJob):
    """A fine-tuning run for the transfer-learning page; the trained model is in the
    snapshot's ``result`` once finished, for the page to save."""

    def __init__(self, config: FinetuneConfig, *, device: torch.device | str, loader: Callable = load_data):
        check_finetune_config(config)
        super().__init__(f"finetune-{config.backbone}", config, device, loader)
        self._last: FinetuneStep | None = None
        self._history: list[dict] = []
        self._result: FinetuneResult | None = None

    def snapshot(self) -> FinetuneSnapshot:
        with self._lock:
            return FinetuneSnapshot(state=self._state, error=self._error, last=self._last,
                                    history=list(self._history), result=self._result, queue=self._queue)

    def _work(self) -> None:
        data = self._loader(self.config.data, image_size=self.config.data_size,
                            val_size=self.config.val_size, seed=self.config.seed)
        run = Finetuning(self.config, data, self.device)
        for step in run.steps(self._stop):
            with self._lock:
                self._state, self._last = step.phase, step
                if step.val_accuracy is not None:
                    self._history.append(step.history_row())
            self._pace(step.eta_s)
        with self._lock:
            self._result = run.result
            self._set_end_state()
