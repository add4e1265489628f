"""Run records: a training run's config, environment and per-step metrics, as JSON.

A record is everything needed to redraw a run's curves without training again, so the lab
can replay the shipped runs in ``pretrained/runs/`` instantly and overlay several runs.

The lab saves each run it trains under a name of its own (:func:`save_new_run`: the time, the
run's name, and a number when that is taken, created exclusively so two runs ending in the
same second both stay) and keeps the newest ``settings.RUNS_KEPT`` of them.
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

import torch

from explorer import __version__
from explorer.devices import machine_description, resolve_amp
from explorer.files import atomic_write, create_new
from explorer.settings import RUNS_KEPT, runs_dir
from explorer.training.evaluate import safe_name
from explorer.training.engine import StepRecord, TrainConfig
from explorer.settings import pretrained_dir

RUN_FORMAT = 1


class RunError(ValueError):
    """A run file that cannot be read; the message names the file."""


@dataclass
class RunRecord:
    """Mutable while a run is being recorded; saved and loaded as JSON."""

    name: str
    config: dict
    environment: dict
    layer_names: dict[str, list[str]] = field(default_factory=dict)  # model -> weighted layers
    steps: list[dict] = field(default_factory=list)  # asdict(StepRecord) per step
    finished: bool = False
    messages: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # the classes trained on, label i = classes[i]

    def append(self, record: StepRecord) -> None:
        """Keep the step if it is due (every ``record_every``-th), validated, the last, or the
        one a model stopped at."""
        every = self.config.get("record_every", 1)
        due = (record.step % every == 0 or record.step == self.config.get("steps")
               or any(m.val_error is not None or m.stopped for m in record.models))
        if due:
            self.steps.append(asdict(record))
        for model in record.models:
            if model.stopped and model.stopped not in self.messages:
                self.messages.append(model.stopped)

    @property
    def model_names(self) -> list[str]:
        return list(self.config.get("models", []))

    @property
    def seeds(self) -> list[int]:
        """The seeds every model was trained with (one for records made before repeats)."""
        first = self.config.get("seed", 0)
        return list(range(first, first + self.config.get("repeat", 1)))

    def series(self, model: str, key: str, max_points: int | None = None,
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
            entries = step["models"]
            metrics = entries[index] if index is not None and index < len(entries) else None
            if metrics is None or metrics["name"] != model or metrics.get("seed", seed) != seed:
                metrics = next((m for m in entries if m["name"] == model and m.get("seed", seed) == seed), None)
            if metrics is not None and metrics.get(key) is not None:
                xs.append(step["step"])
                ys.append(metrics[key])
        xs, ys = _thinned(max_points, xs, ys)
        return xs, ys

    def seed_band(self, model: str, key: str, max_points: int | None = None
                  ) -> tuple[list[int], list[float], list[float], list[float]]:
        """(steps, mean, min, max) of one metric of one model over the run's seeds, at the
        steps every seed has a value for (all of them: the seeds train in lock-step)."""
        per_seed = [dict(zip(*self.series(model, key, seed=seed))) for seed in self.seeds]
        steps = sorted(set.intersection(*(set(values) for values in per_seed)))
        columns = [[values[step] for values in per_seed] for step in steps]
        return _thinned(max_points, steps, [sum(c) / len(c) for c in columns],
                        [min(c) for c in columns], [max(c) for c in columns])

    def to_json(self) -> str:
        return json.dumps({"format": RUN_FORMAT, **asdict(self)})

    def to_csv(self) -> str:
        """One row per (step, model, seed): the metrics a spreadsheet can plot."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["step", "epoch", "elapsed_s", "model", "loss", "train_error", "val_error", "lr", "seed"])
        first_seed = self.seeds[0]
        for step in self.steps:
            for m in step["models"]:
                writer.writerow([step["step"], f"{step['epoch']:.4f}", f"{step['elapsed_s']:.3f}", m["name"],
                                 m["loss"], m["train_error"], "" if m["val_error"] is None else m["val_error"],
                                 m["lr"], m.get("seed", first_seed)])
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
        "amp": resolve_amp(config.amp, device),  # what "auto" meant on this machine
    }
    return RunRecord(name=name, config=asdict(config), environment=environment, layer_names=layer_names)


# What runs drawn as one Fig. 6 must share: the schedule's length and batch (so an iteration
# means the same on every curve), the data and its classes, and the seeds. The rest of the
# recipe (augmentation, optimiser details) may differ; the lab's caption names each run's.
_COMBINE_KEYS = ("steps", "batch_size", "data", "seed", "repeat")


def combine_runs(records: list[RunRecord]) -> RunRecord:
    """Several runs of different models on one schedule, as one record: Fig. 6 compares
    plain-20/56 with ResNet-20/56 at the same iterations (§4.2), and at the paper's width a
    2-core CPU trains them in separate runs. Steps every run recorded are kept, each with
    every run's models; the first run's config stands for the shared schedule. Raises
    :class:`RunError` with a readable reason when the runs do not share one."""
    if len(records) < 2:
        raise RunError("Pick two or more runs to draw them as one.")
    first = records[0]
    seen: dict[str, str] = {}
    for record in records:
        for model in record.model_names:
            if model in seen:
                raise RunError(f"{model} is in both {seen[model]} and {record.name}: pick one of them.")
            seen[model] = record.name
        for key in _COMBINE_KEYS:
            if record.config.get(key) != first.config.get(key):
                raise RunError(f"{first.name} and {record.name} differ in {key.replace('_', ' ')} "
                               f"({first.config.get(key)} against {record.config.get(key)}): "
                               "only runs on one schedule can share a chart's iterations.")
        if record.classes != first.classes:
            raise RunError(f"{first.name} and {record.name} were trained on different classes.")
    by_step = [{step["step"]: step for step in record.steps} for record in records]
    shared = sorted(set.intersection(*(set(steps) for steps in by_step)))
    steps = [{**by_step[0][number], "models": [m for steps in by_step for m in steps[number]["models"]]}
             for number in shared]
    config = {**first.config, "models": list(seen)}
    return RunRecord(
        name=" + ".join(record.name for record in records), config=config,
        environment={"combined": [record.environment for record in records]},
        layer_names={name: layers for record in records for name, layers in record.layer_names.items()},
        steps=steps, finished=all(record.finished for record in records),
        messages=[message for record in records for message in record.messages], classes=list(first.classes))


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
    try:
        payload = json.loads(Path(path).read_text())
        if payload.pop("format", None) != RUN_FORMAT:
            raise RunError(f"{path} is not a run record of format {RUN_FORMAT}.")
        return RunRecord(**payload)
    except RunError:
        raise
    except (OSError, ValueError, TypeError) as error:
        raise RunError(f"Could not read the run {path}: {error}") from error


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
