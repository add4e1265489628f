"""Training runs in a background thread, safe to watch from a UI that reruns.

The worker owns the models; the UI only ever reads a job's ``snapshot()``, a copy taken
under the lock, and shows its ``progress_text()``. The worker never touches the UI. A lab
run (:class:`TrainingJob`) and a fine-tuning run (:class:`FinetuneJob`) share the thread,
the stop flag, the lock and the failure handling (:class:`BackgroundJob`), and the shape of
what a reader sees (:class:`Snapshot`).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.data import load_data
from explorer.loop import eta_s, safe_name
from explorer.runs import RunRecord, new_record, save_run
from explorer.train import TrainConfig, Training, check_config, layer_names, load_training_data
from explorer.transfer import FinetuneConfig, FinetuneResult, FinetuneStep, Finetuning, check_finetune_config


@dataclass(frozen=True)
class Snapshot:
    """What a reader sees of a job at one instant; subclasses add what their run reports."""

    state: str  # "loading data", then the run's phases, then "finished", "stopped" or "failed"
    error: str | None

    @property
    def fraction(self) -> float:
        """How far the current phase is, in [0, 1], for a progress bar."""
        raise NotImplementedError


def _time_left(eta_s: float | None) -> str:
    return f" · about {eta_s:,.0f} s left" if eta_s is not None else ""


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
        (while the data set loads: the images decoded so far)."""
        if self.state == "loading data":
            decoded, of = self.loading or (0, 0)
            once = (" (a folder is decoded once, then read from the disk cache)"
                    if str(self.record.config.get("data", "")).startswith("folder:") else "")
            return f"loading data: {decoded:,} of {of:,} images{once}" if of else "loading data…"
        text = f"{self.state}: step {self.done_steps:,} of {self.total_steps:,}"
        if self.record.steps:
            text += f" · {self.record.steps[-1]['images_per_s']:,.0f} images/s"
        return text + _time_left(self.eta_s)


class BackgroundJob:
    """A worker thread with a stop flag, a lock for what it shares, a state and an error.
    Subclasses do their run in :meth:`_work`; an exception there becomes the job's error."""

    def __init__(self, name: str, config, device: torch.device | str, loader: Callable):
        self.config = config
        self.device = torch.device(device)
        self._loader = loader
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = "loading data"
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> Snapshot:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self._work()
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._fail(error)
        finally:
            self._after()

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
                               total_steps=self.config.steps, loading=self._loading)

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
        for record in self._training.steps(self._stop):
            with self._lock:
                self._record.append(record)
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
                                    history=list(self._history), result=self._result)

    def _work(self) -> None:
        data = self._loader(self.config.data, image_size=self.config.data_size,
                            val_size=self.config.val_size, seed=self.config.seed)
        run = Finetuning(self.config, data, self.device)
        for step in run.steps(self._stop):
            with self._lock:
                self._state, self._last = step.phase, step
                if step.val_accuracy is not None:
                    self._history.append({"epoch": round(step.epoch), "train_accuracy": step.train_accuracy,
                                          "val_accuracy": step.val_accuracy})
        with self._lock:
            self._result = run.result
            self._set_end_state()
