"""A training run in a background thread, safe to watch from a UI that reruns.

The worker owns the models; the UI only ever reads :meth:`TrainingJob.snapshot`, a copy
taken under the lock. The worker never touches the UI.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.data import load_data
from explorer.runs import RunRecord, new_record, save_run
from explorer.train import TrainConfig, Training, check_config, layer_names, load_training_data
from explorer.transfer import FinetuneConfig, FinetuneResult, FinetuneStep, Finetuning, check_finetune_config


@dataclass(frozen=True)
class JobSnapshot:
    state: str  # "loading data", "training", "finished", "stopped", "failed"
    record: RunRecord
    error: str | None
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
        return last["elapsed_s"] / last["step"] * (self.total_steps - last["step"])


class BackgroundJob:
    """A worker thread with a stop flag, a lock for what it shares, a state and an error."""

    def __init__(self, name: str):
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

    def _run(self) -> None:
        raise NotImplementedError

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
        super().__init__(f"train-{name}")
        self.config = config
        self.device = torch.device(device)
        self.save_dir = save_dir
        self._loader = loader
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
            return JobSnapshot(self._state, record, self._error, self._saved_to, self.config.steps, self._loading)

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

    def _run(self) -> None:
        try:
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
                self._state = "stopped" if self._stop.is_set() else "finished"
                self._record.finished = self._state == "finished"
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._fail(error)
        finally:
            if self.save_dir is not None and self._record.steps:
                with self._lock:
                    # Names carry the data source ("folder:/a/b"): keep the file name one plain segment.
                    path = self._saved_to or self.save_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(self._record.name)}.json"
                    try:
                        self._saved_to = save_run(self._record, path)
                    except OSError as error:
                        self._error = f"{self._error + '; ' if self._error else ''}could not save the run: {error}"


def safe_name(name: str) -> str:
    """A name as one plain file-name segment: "demo-folder:/a/b" -> "demo-folder_a_b"."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


@dataclass(frozen=True)
class FinetuneSnapshot:
    state: str  # "loading data", "features", "training", "finished", "stopped", "failed"
    last: FinetuneStep | None
    history: list[dict]  # per finished epoch: train and validation accuracy
    result: FinetuneResult | None
    error: str | None

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
        if last.eta_s is not None and running:
            text += f" · about {last.eta_s:,.0f} s left"
        return text


class FinetuneJob(BackgroundJob):
    """A fine-tuning run for the transfer-learning page; the trained model is in the
    snapshot's ``result`` once finished, for the page to save."""

    def __init__(self, config: FinetuneConfig, *, device: torch.device | str, loader: Callable = load_data):
        check_finetune_config(config)
        super().__init__(f"finetune-{config.backbone}")
        self.config = config
        self.device = torch.device(device)
        self._loader = loader
        self._last: FinetuneStep | None = None
        self._history: list[dict] = []
        self._result: FinetuneResult | None = None

    def snapshot(self) -> FinetuneSnapshot:
        with self._lock:
            return FinetuneSnapshot(self._state, self._last, list(self._history), self._result, self._error)

    def _run(self) -> None:
        try:
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
                self._state = "stopped" if self._stop.is_set() else "finished"
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._fail(error)
