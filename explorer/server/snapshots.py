"""What a reader sees of a background job (explorer.server.jobs) at one instant: a copy taken under
the job's lock, frozen, with the sentences a page shows: its place in the queue, its progress,
and, when the server's time limit stopped it (settings.JOB_SECONDS, issue 37), what was kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from explorer.data import SourceKind, source_kind
from explorer.settings import JOB_SECONDS
from explorer.store.runs import RunRecord
from explorer.training.evaluate import eta_s
from explorer.transfer.finetune import FinetuneResult, FinetuneStep
from explorer.words import spoken_duration


class JobState(StrEnum):
    """Where a background job is. Its value is what a page shows ("training: step 30 of 300")."""

    QUEUED = "queued"  # waiting for one of the server's training slots
    LOADING = "loading data"
    TRAINING = "training"  # a lab run's steps; a fine-tune's training phase
    FEATURES = "features"  # a fine-tune computing its backbone's features once (explorer.transfer)
    COMPUTING = "computing"  # a "Why shortcuts work" computation
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


ENDED = frozenset({JobState.FINISHED, JobState.STOPPED, JobState.FAILED})  # a job in these is over


@dataclass(frozen=True)
class QueuePlace:
    """A job waiting for one of the server's training slots (explorer.server.scheduler, issue 16)."""

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
class TimeLimit:
    """The server's time limit as one job sees it (settings.JOB_SECONDS; the CLI has none)."""

    seconds: float  # how long a job may hold a slot
    left_s: float | None  # while it runs: seconds until the limit stops it
    reached: bool  # the limit stopped it

    def setting(self) -> str:
        return f"{spoken_duration(self.seconds)}, {JOB_SECONDS.env} = {self.seconds:,.0f} s"

    def stopped_text(self, kept: str) -> str:
        """"Stopped by the server's time limit (30 min, EXPLORER_JOB_TIME_LIMIT_S = 1,800 s). …"."""
        return f"Stopped by the server's time limit ({self.setting()}) so that others get the slot. {kept}"

    def ahead(self, eta_s: float | None) -> str:
        """" · the server's time limit stops it in about 12 min" when the run would outlast it."""
        if eta_s is None or self.left_s is None or eta_s <= self.left_s:
            return ""
        return f" · the server's time limit ({spoken_duration(self.seconds)}) stops it in about {spoken_duration(self.left_s)}"


@dataclass(frozen=True)
class Snapshot:
    """What a reader sees of a job at one instant; subclasses add what their run reports."""

    state: JobState  # queued, loading data, then the run's phases, then finished, stopped or failed
    error: str | None
    queue: QueuePlace | None = field(default=None, kw_only=True)  # while "queued"
    limit: TimeLimit | None = field(default=None, kw_only=True)  # under a scheduler with a time limit

    @property
    def stopped_by_limit(self) -> bool:
        return self.limit is not None and self.limit.reached

    @property
    def fraction(self) -> float:
        """How far the current phase is, in [0, 1], for a progress bar."""
        raise NotImplementedError

    def queued_text(self) -> str | None:
        """Its place in the server's queue while it waits (before the first report of the
        place, a moment after Start), else None."""
        if self.queue is not None:
            return self.queue.text()
        return "waiting for a free training slot…" if self.state == JobState.QUEUED else None


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
        return self.record.steps[-1].step if self.record.steps else 0

    @property
    def eta_s(self) -> float | None:
        if not self.record.steps or self.state != JobState.TRAINING:
            return None
        last = self.record.steps[-1]
        return eta_s(last.elapsed_s, last.step, self.total_steps)

    @property
    def fraction(self) -> float:
        if self.state == JobState.LOADING:
            decoded, of = self.loading or (0, 0)
            return decoded / of if of else 0.0
        return self.done_steps / self.total_steps if self.total_steps else 0.0

    def progress_text(self) -> str:
        """"training: step 300 of 800 · 410 images/s · about 12 s left", for a progress bar
        (while the data set loads: the images decoded so far; while queued: its place)."""
        if queued := self.queued_text():
            return queued
        if self.state == JobState.LOADING:
            decoded, of = self.loading or (0, 0)
            once = (" (a folder is decoded once, then read from the disk cache)"
                    if source_kind(self.record.config.data) is SourceKind.FOLDER else "")
            return f"loading data: {decoded:,} of {of:,} images{once}" if of else "loading data…"
        text = f"{self.state}: step {self.done_steps:,} of {self.total_steps:,}"
        if self.record.steps:
            # A validation step's rate (every run's last step is one) counts the validation pass.
            recent = self.record.steps[-5:]
            training_only = [s for s in recent if all(m.val_error is None for m in s.models)]
            text += f" · {(training_only or recent)[-1].images_per_s:,.0f} images/s"
        return text + _time_left(self.eta_s) + (self.limit.ahead(self.eta_s) if self.limit else "")

    def limit_notice(self) -> str | None:
        """What the page says when the time limit stopped the run: its steps are kept."""
        if not self.stopped_by_limit:
            return None
        return self.limit.stopped_text(f"Its {self.done_steps:,} steps are kept (and saved); Resume continues it "
                                       f"from step {self.done_steps:,}, queueing again behind the others.")



@dataclass(frozen=True)
class FinetuneSnapshot(Snapshot):  # state: loading data, features, training, then the end states
    last: FinetuneStep | None
    history: list[dict]  # per finished epoch: train and validation accuracy
    result: FinetuneResult | None

    @property
    def fraction(self) -> float:
        return self.last.done / self.last.total if self.last is not None else 0.0

    def limit_notice(self) -> str | None:
        """What the page says when the time limit stopped the run."""
        if not self.stopped_by_limit:
            return None
        kept = (f"The {self.result.epochs_done} epochs finished before it are kept: save the model below."
                if self.result is not None and self.result.epochs_done else "No epoch had finished: nothing to save.")
        return self.limit.stopped_text(kept)

    def progress_text(self, epochs: int, running: bool) -> str:
        """"training: 300 of 1,760 steps · epoch 1.7 of 5 · about 12 s left", for a progress bar."""
        last = self.last
        if queued := self.queued_text():
            return queued
        if last is None:
            return "loading the data set…"
        features = last.phase == JobState.FEATURES
        what = "computing the backbone's features" if features else "training"
        unit = "images" if features else "steps"
        state = self.state if self.state in ENDED else what
        text = f"{state}: {last.done:,} of {last.total:,} {unit}"
        if last.phase == JobState.TRAINING:
            text += f" · epoch {last.epoch:.1f} of {epochs}"
        if not running:
            return text
        return text + _time_left(last.eta_s) + (self.limit.ahead(last.eta_s) if self.limit else "")



@dataclass(frozen=True)
class ComputeSnapshot(Snapshot):  # state: queued, computing, then finished, stopped or failed
    what: str  # the view computed, e.g. "lesion"
    names: tuple[str, ...]  # one computation each (the nets), in order
    results: dict[str, object]  # name -> result, for those done
    errors: dict[str, str]  # name -> message, for those that could not be computed
    current: float  # computations done, the current one's fraction included
    line: str | None  # the current one's progress in words

    @property
    def fraction(self) -> float:
        return self.current / len(self.names) if self.names else 0.0

    def progress_text(self) -> str:
        """"lesion: resnet56 (2 of 4), 34% · about 40 s left for it" (explorer.paper.inside.progress_line)."""
        if queued := self.queued_text():
            return queued
        if self.state == JobState.COMPUTING:
            return self.line or f"{self.what}: starting…"
        return f"{self.what}: {self.state}, {len(self.results)} of {len(self.names)} computed"

    def limit_notice(self) -> str | None:
        if not self.stopped_by_limit:
            return None
        return self.limit.stopped_text(f"The {len(self.results)} of {len(self.names)} computed before it are shown; "
                                       "fewer images (or grid points) fit in it, and the CLI has no limit.")
