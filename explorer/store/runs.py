"""Run records: a training run's config, environment and per-step metrics, as JSON.

A record is everything needed to redraw a run's curves without training again, so the lab
can replay the shipped runs in ``pretrained/runs/`` instantly and overlay several runs.

The lab saves each run it trains under a name of its own (:func:`save_new_run`: the time, the
run's name, and a number when that is taken, created exclusively so two runs ending in the
same second both stay) and keeps the newest ``settings.RUNS_KEPT`` of them.

A record is parsed once, when it is read (:func:`load_run`, :func:`record_from_dict`): its config
is a :class:`~explorer.training.recipe.TrainConfig` and its steps the training engine's own
:class:`~explorer.training.lockstep.StepRecord` values, so a reader writes ``record.config.seed``
and ``metrics.train_error``, and a file of another shape fails at the door. Format 1 (before issue
39) stored the same values as plain dicts, some without the fields added since; it is read and
migrated in memory, and :func:`migrate_run_file` rewrites such a file as format 2.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from explorer import __version__
from explorer.data import Augmentation
from explorer.devices import machine_description, resolve_amp
from explorer.files import atomic_write, create_new
from explorer.settings import RUNS_KEPT, pretrained_dir, runs_dir
from explorer.training.evaluate import safe_name
from explorer.training.lockstep import ModelMetrics, StepRecord
from explorer.training.recipe import TrainConfig, config_from_dict

RUN_FORMAT = 2  # 2: read back as typed values (issue 39); 1: the same JSON, read as dicts, fields missing

# The per-model metrics a curve can be drawn of (ModelMetrics' fields).
Metric = Literal["loss", "train_error", "val_error", "lr", "grad_norms"]


class RunError(ValueError):
    """A run file that cannot be read; the message names the file."""


@dataclass
class RunRecord:
    """Mutable while a run is being recorded; saved and loaded as JSON."""

    name: str
    config: TrainConfig
    environment: dict  # where it ran: device, versions, threads (free-form, shown as it is)
    layer_names: dict[str, list[str]] = field(default_factory=dict)  # model -> weighted layers
    steps: list[StepRecord] = field(default_factory=list)  # the recorded steps, as the engine yielded them
    finished: bool = False
    messages: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # the classes trained on, label i = classes[i]

    def append(self, record: StepRecord) -> None:
        """Keep the step if it is due (every ``record_every``-th), validated, the last, or the
        one a model stopped at."""
        due = (record.step % self.config.record_every == 0 or record.step == self.config.steps
               or any(m.val_error is not None or m.stopped for m in record.models))
        if due:
            self.steps.append(record)
        for model in record.models:
            if model.stopped and model.stopped not in self.messages:
                self.messages.append(model.stopped)

    @property
    def model_names(self) -> list[str]:
        return list(self.config.models)

    @property
    def seeds(self) -> list[int]:
        """The seeds every model was trained with (one for records made before repeats)."""
        return list(self.config.seeds)

    def series(self, model: str, key: Metric, max_points: int | None = None,
               seed: int | None = None) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric of one model (of ``seed``; default the first),
        skipping steps without a value.

        ``max_points`` thins long runs (64k steps) to every k-th point for drawing.
        """
        seed = self.seeds[0] if seed is None else seed
        names = self.model_names
        index = (self.seeds.index(seed) * len(names) + names.index(model)
                 if model in names and seed in self.seeds else None)
        xs, ys = [], []
        for step in self.steps:
            entries = step.models
            metrics = entries[index] if index is not None and index < len(entries) else None
            if metrics is None or metrics.name != model or metrics.seed != seed:  # a combined record's order
                metrics = next((m for m in entries if m.name == model and m.seed == seed), None)
            if metrics is not None and (value := getattr(metrics, key)) is not None:
                xs.append(step.step)
                ys.append(value)
        xs, ys = _thinned(max_points, xs, ys)
        return xs, ys

    def seed_band(self, model: str, key: Metric, max_points: int | None = None
                  ) -> tuple[list[int], list[float], list[float], list[float]]:
        """(steps, mean, min, max) of one metric of one model over the run's seeds, at the
        steps every seed has a value for (all of them: the seeds train in lock-step)."""
        per_seed = [dict(zip(*self.series(model, key, seed=seed))) for seed in self.seeds]
        steps = sorted(set.intersection(*(set(values) for values in per_seed)))
        columns = [[values[step] for values in per_seed] for step in steps]
        return _thinned(max_points, steps, [sum(c) / len(c) for c in columns],
                        [min(c) for c in columns], [max(c) for c in columns])

    def to_dict(self) -> dict:
        """The record as its file's JSON object (format :data:`RUN_FORMAT`)."""
        return {"format": RUN_FORMAT, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_csv(self) -> str:
        """One row per (step, model, seed): the metrics a spreadsheet can plot."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["step", "epoch", "elapsed_s", "model", "loss", "train_error", "val_error", "lr", "seed"])
        for step in self.steps:
            for m in step.models:
                writer.writerow([step.step, f"{step.epoch:.4f}", f"{step.elapsed_s:.3f}", m.name, m.loss,
                                 m.train_error, "" if m.val_error is None else m.val_error, m.lr, m.seed])
        return out.getvalue()


def _thinned(max_points: int | None, xs: list, *columns: list) -> tuple[list, ...]:
    """Every k-th point of long series (64k steps), so that at most ``max_points`` are
    drawn; the latest point is always kept."""
    if not max_points or len(xs) <= max_points:
        return (xs, *columns)
    # Every stride-th point from the first, then the last if the stride missed it: at most
    # max_points in all (with 2 <= max_points < len(xs)).
    last = len(xs) - 1
    stride = -(-last // max(max_points - 1, 1))
    keep = list(range(0, len(xs), stride))
    if keep[-1] != last:
        keep.append(last)
    return tuple([values[i] for i in keep] for values in (xs, *columns))


def new_record(name: str, config: TrainConfig, device: torch.device | str,
               layer_names: dict[str, list[str]]) -> RunRecord:
    environment = {
        "device": str(device),
        "device_name": machine_description(device),
        "torch": torch.__version__,
        "explorer": __version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "amp": resolve_amp(config.engine.amp, device),  # what "auto" meant on this machine
    }
    return RunRecord(name=name, config=config, environment=environment, layer_names=layer_names)


def save_run(record: RunRecord, path: Path) -> Path:
    """Write atomically, so a run being replayed is never half-written (an existing file at
    ``path`` is replaced: ``train --out`` names its file, and a resumed lab run keeps its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, record.to_json())


# The names save_new_run gives, "20250101-120000-demo-synthetic.json" (then "-2", "-3" …):
# only these are pruned, never a file someone put in the folder by hand.
_AUTO_NAME = re.compile(r"\d{8}-\d{6}-.+\.json")


def save_new_run(record: RunRecord, folder: Path, keep: int | None = None) -> Path:
    """Save ``record`` in ``folder`` under a name no other file has, then delete the oldest
    auto-saved runs beyond ``keep`` (default ``settings.RUNS_KEPT``, $EXPLORER_RUNS_KEPT).

    The name is the time to the second and the run's name; when that is taken (two runs of
    one name ending in the same second) a number follows, "-2", "-3" …. Each is created
    exclusively (:func:`explorer.files.create_new`), so two processes never write one file."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(record.name, '_') or 'run'}"
    payload = record.to_json()
    for number in itertools.count(1):
        path = folder / (f"{stem}.json" if number == 1 else f"{stem}-{number}.json")
        try:
            create_new(path, payload)
            break
        except FileExistsError:
            continue
    prune_runs(folder, RUNS_KEPT.value() if keep is None else keep)
    return path


def prune_runs(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest auto-saved runs in ``folder`` (by modification time) beyond the
    newest ``keep``; returns the deleted files. Files of other names are left alone."""
    def age(path: Path) -> tuple[int, str]:
        with contextlib.suppress(OSError):
            return (path.stat().st_mtime_ns, path.name)
        return (0, path.name)  # gone already (another session pruned it): first in line, harmless

    saved = sorted((p for p in folder.glob("*.json") if _AUTO_NAME.fullmatch(p.name)), key=age, reverse=True)
    deleted = []
    for path in saved[max(keep, 0):]:
        with contextlib.suppress(OSError):  # gone already, or not a file: nothing to prune
            path.unlink()
            deleted.append(path)
    return deleted


def load_run(path: Path) -> RunRecord:
    """The record in the file ``path``, of format 2 or (migrated in memory) 1; RunError naming
    the file if it is not one."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise RunError(f"Could not read the run {path}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") not in (1, RUN_FORMAT):
        raise RunError(f"{path} is not a run record of format {RUN_FORMAT} (or 1, which is migrated).")
    try:
        return record_from_dict(payload)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise RunError(f"Could not read the run {path}: {error}") from error


def migrate_run_file(path: Path) -> bool:
    """Rewrite the run file ``path`` in the current format, atomically; False (untouched) when
    it is in it already. The values are the same: only their shape in the file changes."""
    if json.loads(Path(path).read_text()).get("format") == RUN_FORMAT:
        return False
    atomic_write(Path(path), load_run(path).to_json())
    return True


def record_from_dict(payload: dict) -> RunRecord:
    """A record from its JSON object (a run file's, or the copy inside a training state), with
    its ``format``: 2 as :meth:`RunRecord.to_dict` writes it, or 1, migrated. TypeError or
    ValueError (from :func:`~explorer.training.recipe.config_from_dict`) if it is not one."""
    values = dict(payload)
    if values.pop("format", None) == 1:
        values = _from_format1(values)
    steps = [StepRecord(**{**step, "models": tuple(_metrics(**m) for m in step["models"])})
             for step in values.get("steps", [])]
    return RunRecord(**{**values, "config": config_from_dict(values["config"]), "steps": steps})


def _metrics(grad_norms=None, **values) -> ModelMetrics:
    return ModelMetrics(**values, grad_norms=None if grad_norms is None else tuple(grad_norms))


# Format 1 kept whatever TrainConfig had when the run was made, and these fields came later:
# each is filled in with what the runs made before it did (the switch off, every step kept, one
# seed, all classes and images). The speed switches never change a curve; they get their defaults.
_FORMAT1_LATER_FIELDS = {
    "val_limit": None, "warmup_steps": 0, "classes": None, "train_limit": None, "repeat": 1,
    "schedule": "steps", "schedule_steps": None, "label_smoothing": 0.0, "nesterov": False, "record_every": 1,
    "channels_last": True, "one_sync": True, "inference_mode": True, "amp": "off", "cudnn_benchmark": True,
    "compile": False, "model_threads": 1,
}


def _from_format1(values: dict) -> dict:
    """A format-1 record's values in format 2's shape: the config's missing fields filled in
    (:data:`_FORMAT1_LATER_FIELDS`, the augmentation's from its defaults), and each metrics
    entry's seed, absent before repeats, from the config (those records have one seed)."""
    config = {**_FORMAT1_LATER_FIELDS, **values["config"]}
    config["augmentation"] = {**asdict(Augmentation()), **config.get("augmentation", {})}
    steps = [{**step, "models": [{"seed": config["seed"], **m} for m in step["models"]]}
             for step in values.get("steps", [])]
    return {**values, "config": config, "steps": steps}


def shipped_runs_dir() -> Path:
    return pretrained_dir() / "runs"


def user_runs_dir() -> Path:
    return runs_dir()


def list_runs() -> list[Path]:
    """Shipped runs first, then the user's own, newest first within each."""
    found = []
    for folder in (shipped_runs_dir(), user_runs_dir()):
        if folder.is_dir():
            found += sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return found
