"""Running ``train``: the steps of :class:`explorer.training.engine.Training`, reported on stderr,
kept as a resumable state, recorded as a run and saved as checkpoints.

Under torchrun every process trains; only the main one (rank 0) prints and writes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.cli.parsing import CommandError

if TYPE_CHECKING:  # the heavy modules load only when a run starts, not for --help
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.data import InMemoryData
    from explorer.store.runs import RunRecord
    from explorer.training.engine import TrainConfig, Training

STATE_EVERY_S = 300  # without --state-every, the state is written about every 5 minutes


class _GracefulStop:
    """The first Ctrl-C (or SIGTERM) stops at the end of the current step, so the state
    written then is a whole step; a second one interrupts at once."""

    def __init__(self):
        self.event = threading.Event()
        self._signal = signal
        self._previous = {}
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print("\nstopping after this step (again to interrupt at once)", file=sys.stderr)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            self._signal.signal(number, handler)


@dataclass
class _Session:
    """One run of ``train`` as this process sees it: what it trains and where it writes."""

    config: TrainConfig
    data: InMemoryData
    training: Training
    record: RunRecord
    out: Path  # the run record's file
    state_dir: Path | None  # where the resumable state is kept (None: not kept)
    main: bool  # this process reports and writes
    state_every: int | None  # steps between states (None: every STATE_EVERY_S seconds)
    last_state: float = field(default_factory=time.monotonic)

    def state_due(self, step: int) -> bool:
        due = (step % self.state_every == 0 if self.state_every
               else time.monotonic() - self.last_state >= STATE_EVERY_S)
        return due and step < self.config.steps

    def keep_state(self) -> None:
        # deferred: torch and the engine, so `train --help` stays instant
        from explorer.store.state import save_state

        if self.main and self.state_dir is not None:
            save_state(self.state_dir, self.training, self.record, str(self.out))
            self.last_state = time.monotonic()


def train_and_save(args: argparse.Namespace, config, device, main: bool = True, saved=None) -> None:
    """Train (or continue ``saved``); the main process (rank 0 under torchrun) reports,
    records, keeps the resumable state and saves."""
    session = _start(args, config, device, main, saved)
    started = _run_steps(session)
    if not main:
        return
    record = session.record
    if args.save_dir is not None and record.finished:
        _save_trained(args, config, session.data, session.training.models, record, device,
                      time.perf_counter() - started)
    last = record.steps[-1].models if record.steps else []
    for metrics in last:
        val = "" if metrics.val_error is None else f", validation error {100 * metrics.val_error:.1f}%"
        seed = f" (seed {metrics.seed})" if config.repeat > 1 else ""
        print(f"{metrics.name}{seed}: training error {100 * metrics.train_error:.1f}%{val}")
    # A loss that became NaN or infinite stopped its model (explorer.training.lockstep): the run is
    # recorded up to there, but it did not do what was asked, so it must not exit 0.
    diverged = list(dict.fromkeys(t.stopped for t in session.training.trainees if t.stopped))
    if diverged:
        raise CommandError("training diverged: " + " ".join(diverged))


def _start(args: argparse.Namespace, config, device, main: bool, saved) -> _Session:
    """Load the data and build the training: fresh, or restored from ``saved`` (``--resume``)."""
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.data import DataError
    from explorer.store.runs import new_record
    from explorer.store.state import restore, state_path
    from explorer.training.engine import Training, layer_names, load_training_data

    state_dir = args.resume if saved is not None else args.state
    if saved is None and state_dir is not None and state_path(state_dir).exists():
        raise CommandError(f"{state_dir} already holds a training state: continue it with --resume {state_dir}, "
                           "or give another folder.")
    out = args.out or Path("run.json")  # explorer.cli.train fixes it; never the path stored in a state
    if main:
        print(f"loading {config.data} ({config.image_size}×{config.image_size}) …", file=sys.stderr)
    try:
        data = load_training_data(config)
    except DataError as error:
        raise CommandError(str(error)) from error
    training = Training(config, data, device=device)
    if main and _compile_would_pay(config, device, config.steps - (saved.step if saved is not None else 0)):
        print("tip: a run this long on the CPU trains ~1.4× faster with --compile, after ~30 s of "
              "compiling (benchmarks/engine_speed.py); --compile may also be added to --resume", file=sys.stderr)
    if saved is not None:
        restore(saved, training)
        record = saved.record
        record.config, record.finished = config, False
        _note_machine(record, device)
        if main:
            print(f"resuming {state_dir} at step {training.step:,} of {config.steps:,}", file=sys.stderr)
    else:
        record = new_record(out.stem, config, device, layer_names(config))
        record.classes = list(training.data.classes)
    return _Session(config, data, training, record, out, state_dir, main, args.state_every)


def _run_steps(session: _Session) -> float:
    """Every step until the end, Stop (first Ctrl-C) or an interrupt; whatever happens, the
    record and the state hold the last whole step. Returns when the clock started."""
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.store.runs import save_run
    from explorer.store.state import state_path

    config, training, record, main = session.config, session.training, session.record, session.main
    stop = _GracefulStop() if main and threading.current_thread() is threading.main_thread() else None
    session.last_state = time.monotonic()
    started = time.perf_counter() - training.elapsed_s
    try:
        for step in training.steps(stop.event if stop else None):
            record.append(step)
            if main and (step.step % max(1, config.steps // 100) == 0 or step.step == config.steps):
                _progress_line(step, config.steps, time.perf_counter() - started)
            if session.state_due(step.step):
                session.keep_state()
        record.finished = training.step >= config.steps
        if not record.finished and main and not all(t.stopped for t in training.trainees):
            print("\nstopped: saving the steps so far", file=sys.stderr)
    except KeyboardInterrupt:
        if main:
            print("\ninterrupted: saving the steps so far", file=sys.stderr)
    finally:
        if stop is not None:
            stop.restore()
        if main:
            print(file=sys.stderr)
        if main and record.steps:
            save_run(record, session.out)
            print(f"saved {session.out}", file=sys.stderr)
        if main and session.state_dir is not None and training.step > 0:
            session.keep_state()  # at the end, at Stop and at Ctrl-C: a whole step, never half of one
            print(f"training state at step {training.step:,}: {state_path(session.state_dir)} "
                  f"(continue with: python -m explorer train --resume {session.state_dir})", file=sys.stderr)
    return started


# torch.compile paid back its ~30 s after 400-900 steps of ResNet-20/56 at paper width on a
# 2-core CPU, and never on the demo's small nets (benchmarks/engine_speed.py).
COMPILE_PAYS_AFTER_STEPS = 5_000
COMPILE_PAYS_FROM_WIDTH = 16


def _compile_would_pay(config, device, steps_left: int) -> bool:
    """Whether to suggest --compile: a long CPU run at the paper's width without it."""
    # deferred: torch and the engine, so `train --help` stays instant
    import torch

    return (torch.device(device).type == "cpu" and not config.engine.compile and steps_left >= COMPILE_PAYS_AFTER_STEPS
            and config.width >= COMPILE_PAYS_FROM_WIDTH)


def _note_machine(record, device) -> None:
    """A run resumed on another machine lists every machine it ran on, in order, so the
    manifest's "machine" says what its wall time was measured on."""
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.devices import machine_description

    environment = record.environment
    machines = environment.setdefault("machines", [environment.get("device_name", "unknown")])
    if machines[-1] != (here := machine_description(device)):
        machines.append(here)


def _save_trained(args, config, data, trained, record, device, wall_time_s: float) -> None:
    # deferred: torch and the engine, so `train --help` stays instant
    from explorer.devices import machine_description
    from explorer.store.checkpoints import dataset_tag, save_checkpoint
    from explorer.training.engine import evaluate

    stopped = {m.name for m in record.steps[-1].models if m.stopped}
    for name, model in trained.items():
        if name in stopped:
            print(f"{name}: not saved ({name} stopped early)", file=sys.stderr)
            continue
        val_error = evaluate(model, data.val_images, data.val_labels).error if len(data.val_labels) else None
        entry = save_checkpoint(
            model, key=f"{name}-{dataset_tag(config.data)}", model_name=name,
            build={"width": config.width, "shortcut": config.shortcut, "num_classes": data.num_classes},
            classes=list(data.classes), val_error=val_error, config=asdict(config),
            steps=record.steps[-1].step, wall_time_s=wall_time_s, device=str(device), folder=args.save_dir,
            epochs=record.steps[-1].epoch,
            machine=", then ".join(record.environment.get("machines", [machine_description(device)])))
        print(f"{name}: saved {args.save_dir / entry.file} (validation error "
              f"{100 * val_error:.2f}% on {len(data.val_labels)} images)", file=sys.stderr)


def _progress_line(step, total: int, elapsed: float) -> None:
    width = 30
    filled = int(width * step.step / total)
    errors = " ".join(f"{m.name} {100 * m.train_error:.0f}%" for m in step.models)
    eta = elapsed / step.step * (total - step.step)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {step.step}/{total} · {errors} · ETA {eta:.0f}s",
          end="", file=sys.stderr, flush=True)
