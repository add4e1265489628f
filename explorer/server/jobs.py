"""Training runs in a background thread, safe to watch from a UI that reruns.

The worker owns the models; the UI only ever reads a job's ``snapshot()``, a copy taken
under the lock, and shows its ``progress_text()``. The worker never touches the UI. A lab
run (:class:`TrainingJob`) and a fine-tuning run (:class:`FinetuneJob`) share the thread,
the stop flag, the lock and the failure handling (:class:`BackgroundJob`), and the shape of
what a reader sees (explorer.server.snapshots); so do the "Why shortcuts work" computations
(explorer.server.compute_jobs.ComputeJob).

In the app a job runs under the server's rules (explorer.server.scheduler, issue 37): Start is
refused with a sentence when the session already has its job or the queue is full, and a job
that holds its slot for the time limit (settings.JOB_SECONDS) stops at its next step boundary,
keeping its steps; its snapshot says so (explorer.server.snapshots.TimeLimit). A job that has ended lets go of
its data set and models, keeping only what the page shows (the record, the metrics, a
fine-tuned model to save), unless a stopped lab run can still be resumed.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from explorer.data import load_data
from explorer.server.estimates import STEP_TIMES
from explorer.server.scheduler import Scheduler, Ticket
from explorer.server.snapshots import FinetuneSnapshot, JobSnapshot, JobState, QueuePlace, Snapshot, TimeLimit
from explorer.store.runs import new_record, save_new_run, save_run
from explorer.training.engine import TrainConfig, Training, check_config, layer_names, load_training_data
from explorer.training.evaluate import eta_s
from explorer.transfer.finetune import (
    FinetuneConfig,
    FinetuneResult,
    FinetuneStep,
    Finetuning,
    check_finetune_config,
)


class BackgroundJob:
    """A worker thread with a stop flag, a lock for what it shares, a state and an error.
    Subclasses do their run in :meth:`_work`; an exception there becomes the job's error.

    Started with a :class:`~explorer.server.scheduler.Scheduler` (the app's, issue 16), the work
    waits for one of the server's training slots first: the job is "queued" meanwhile, its
    snapshot says its place, and Stop takes it out of the queue. Its state is a
    :class:`~explorer.server.snapshots.JobState`. Without one (the CLI, the
    tests) it starts at once."""

    kind = "a job"  # what another page calls it: "a lab run (Degradation lab)", ...

    def __init__(self, name: str, config, device: torch.device | str, loader: Callable):
        self.config = config
        self.device = torch.device(device)
        self._loader = loader
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = JobState.LOADING
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._scheduler: Scheduler | None = None
        self._session: str | None = None
        self._ticket: Ticket | None = None
        self._queue: QueuePlace | None = None
        self._place: Ticket | None = None  # its place in the queue, taken by start()
        self._timed_out = False  # the server's time limit stopped it
        self._first_state = self._state  # what the work starts in, once out of the queue

    def start(self, scheduler: Scheduler | None = None, *, session: str | None = None, client: str | None = None):
        """Start the worker thread; with ``scheduler``, it first waits for a slot there
        (``session`` names the tab, so the scheduler can drop its waiting jobs when it closes;
        ``client``, the browser's address, is whose turn it is). The place in the queue is
        taken here, in the caller: a refusal (explorer.server.scheduler.QueueRefused: the session has
        its job already, the queue is full) is raised to it and no thread starts."""
        self._scheduler, self._session = scheduler, session
        if scheduler is not None:
            self._place = scheduler.enqueue(self._thread.name, session=session, client=client)
            self._first_state, self._state = self._state, JobState.QUEUED
        try:
            self._thread.start()
        except BaseException:
            if self._place is not None:
                self._place.done()
            raise
        return self

    def status_text(self) -> str:
        """One line of where it is ("training: step 30 of 300 · …"), for a page that shows
        another page's job."""
        return self.snapshot().state

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
            return self._state == JobState.QUEUED and self.running

    def snapshot(self) -> Snapshot:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            with self._slot() as ticket:
                if ticket is None:  # stopped, or its tab closed, while it waited
                    with self._lock:
                        self._state, self._queue = JobState.STOPPED, None
                    return
                with self._lock:
                    self._ticket, self._queue = (ticket if isinstance(ticket, Ticket) else None), None
                    if self._state == JobState.QUEUED:
                        self._state = self._first_state
                self._work()
                if self._ticket is not None:
                    self._ticket.completed = self._state == JobState.FINISHED
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._fail(error)
        finally:
            try:
                self._after()
            finally:
                self._release()

    def _slot(self):
        if self._scheduler is None:
            return contextlib.nullcontext(True)
        return self._scheduler.slot(self._thread.name, session=self._session, cancelled=self._stop.is_set,
                                    on_position=self._queued, ticket=self._place)

    def _limit(self) -> TimeLimit | None:
        """The time limit as a snapshot shows it (under the lock); None without one."""
        seconds = self._scheduler.time_limit_s if self._scheduler is not None else None
        if seconds is None:
            return None
        left = self._ticket.time_left_s if self._ticket is not None else None
        return TimeLimit(seconds, None if left is None else max(0.0, left), self._timed_out)

    def _queued(self, position: int, wait_s: float | None) -> None:
        with self._lock:
            self._queue = QueuePlace(position, wait_s, self._scheduler.max_jobs)

    def _pace(self, eta_s: float | None) -> int | None:
        """Between steps, in the worker: follow the slot's share of the torch threads (returned;
        None outside a slot) and tell the queue how long this run has left (its wait estimates)."""
        if self._ticket is not None:
            self._ticket.report(eta_s=eta_s)
            if self._ticket.over_time and not self._stop.is_set():
                with self._lock:
                    self._timed_out = True
                self._stop.set()  # the run ends before its next step, as on Stop
            return self._ticket.pace()

    def _work(self) -> None:
        raise NotImplementedError

    def _after(self) -> None:
        """Runs once the work is over, whether it finished, stopped or failed."""

    def _release(self) -> None:
        """Runs last: drop the data and models the page no longer needs (issue 37: a finished
        lab run held its 88 MB data set until the tab closed)."""

    def _set_end_state(self) -> None:
        """Under the lock, once the work is done: stopped if asked to stop, else finished."""
        self._state = JobState.STOPPED if self._stop.is_set() else JobState.FINISHED

    def _fail(self, error: Exception) -> None:
        """Record an error for the UI: the thread must never die silently."""
        with self._lock:
            self._state = JobState.FAILED
            self._error = str(error) or type(error).__name__


class TrainingJob(BackgroundJob):
    """A lab run in a background thread. A stopped job can be continued exactly where it
    stopped with :meth:`resumed` (the lab's Resume button): same models, optimisers, data
    order and record."""

    kind = "a lab run (Degradation lab)"

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
                               total_steps=self.config.steps, loading=self._loading, queue=self._queue,
                               limit=self._limit())

    def status_text(self) -> str:
        return self.snapshot().progress_text()

    @property
    def can_resume(self) -> bool:
        with self._lock:
            return (not self.running and self._state == JobState.STOPPED and self._training is not None
                    and self._training.step < self.config.steps)

    def resumed(self) -> TrainingJob:
        """A new (not yet started) job that continues this stopped one."""
        if not self.can_resume:
            raise ValueError("Only a stopped run that has steps left can be resumed.")
        job = TrainingJob(self.config, device=self.device, name=self._record.name, save_dir=self.save_dir,
                          loader=self._loader)
        job._record, job._saved_to, job._training = self._record, self._saved_to, self._training
        job._record.finished = False
        job._state = JobState.TRAINING
        return job

    def _loaded(self, done: int, total: int) -> None:
        with self._lock:
            self._loading = (done, total)

    def _work(self) -> None:
        if self._training is None:
            data = load_training_data(self.config, self._loader, progress=self._loaded)
            training = Training(self.config, data, device=self.device)
            with self._lock:
                self._training, self._state = training, JobState.TRAINING
                self._record.classes = list(training.data.classes)
        self._training.threads = self._pace(None)  # the model threads (if any) share the slot's threads
        for record in self._training.steps(self._stop):
            with self._lock:
                self._record.append(record)
            self._training.threads = self._pace(eta_s(record.elapsed_s, record.step, self.config.steps))
        with self._lock:
            self._set_end_state()
            self._record.finished = self._state == JobState.FINISHED

    def _release(self) -> None:
        with self._lock:
            training, steps = self._training, self._record.steps
            if training is not None and len(steps) >= STEP_TIMES.MIN_STEPS:
                STEP_TIMES.observe(self.config, steps[-1].elapsed_s / max(1, steps[-1].step))
            # A stopped run with steps left keeps its models, optimisers and data for Resume;
            # a finished or failed one keeps only its record.
            if not (self._state == JobState.STOPPED and training is not None and training.step < self.config.steps):
                self._training = None

    def _after(self) -> None:
        if self.save_dir is None or not self._record.steps:
            return
        with self._lock:
            try:  # a new run gets a name of its own (old ones pruned); a resumed one keeps its file
                self._saved_to = (save_run(self._record, self._saved_to) if self._saved_to
                                  else save_new_run(self._record, self.save_dir))
            except (OSError, ValueError) as error:  # ValueError: a malformed $EXPLORER_RUNS_KEPT
                self._error = f"{self._error + '; ' if self._error else ''}could not save the run: {error}"


class FinetuneJob(BackgroundJob):
    """A fine-tuning run for the transfer-learning page; the trained model is in the
    snapshot's ``result`` once finished, for the page to save."""

    kind = "a fine-tuning run (Transfer learning)"

    def __init__(self, config: FinetuneConfig, *, device: torch.device | str, loader: Callable = load_data):
        check_finetune_config(config)
        super().__init__(f"finetune-{config.backbone}", config, device, loader)
        self._last: FinetuneStep | None = None
        self._history: list[dict] = []
        self._result: FinetuneResult | None = None

    def snapshot(self) -> FinetuneSnapshot:
        with self._lock:
            return FinetuneSnapshot(state=self._state, error=self._error, last=self._last,
                                    history=list(self._history), result=self._result, queue=self._queue,
                                    limit=self._limit())

    def status_text(self) -> str:
        return self.snapshot().progress_text(self.config.epochs, running=self.running)

    def _work(self) -> None:
        data = self._loader(self.config.data, image_size=self.config.data_size,
                            val_size=self.config.val_size, seed=self.config.seed)
        run = Finetuning(self.config, data, self.device)
        for step in run.steps(self._stop):
            with self._lock:
                self._state, self._last = JobState(step.phase), step
                if step.val_accuracy is not None:
                    self._history.append(step.history_row())
            self._pace(step.eta_s)
        with self._lock:
            self._result = run.result
            self._set_end_state()
