"""Run records: a training run's config, environment and per-step metrics, as JSON.

A record is everything needed to redraw a run's curves without training again, so the lab
can replay the shipped runs in ``pretrained/runs/`` instantly and overlay several runs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from explorer import __version__
from explorer.train import StepRecord, TrainConfig
from explorer.weights import pretrained_dir

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

    def append(self, record: StepRecord) -> None:
        self.steps.append(asdict(record))
        for model in record.models:
            if model.stopped and model.stopped not in self.messages:
                self.messages.append(model.stopped)

    @property
    def model_names(self) -> list[str]:
        return list(self.config.get("models", []))

    def series(self, model: str, key: str, max_points: int | None = None) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric of one model, skipping steps without a value.

        ``max_points`` thins long runs (64k steps) to every k-th point for drawing.
        """
        index = self.model_names.index(model) if model in self.model_names else None
        xs, ys = [], []
        for step in self.steps:
            entries = step["models"]
            metrics = entries[index] if index is not None and index < len(entries) else None
            if metrics is None or metrics["name"] != model:  # records from older formats
                metrics = next((m for m in entries if m["name"] == model), None)
            if metrics is not None and metrics.get(key) is not None:
                xs.append(step["step"])
                ys.append(metrics[key])
        if max_points and len(xs) > max_points:
            stride = -(-len(xs) // max_points)
            keep = list(range(0, len(xs), stride))
            if keep[-1] != len(xs) - 1:
                keep.append(len(xs) - 1)  # always show the latest value
            xs, ys = [xs[i] for i in keep], [ys[i] for i in keep]
        return xs, ys

    def to_json(self) -> str:
        return json.dumps({"format": RUN_FORMAT, **asdict(self)})

    def to_csv(self) -> str:
        """One row per (step, model): the metrics a spreadsheet can plot."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["step", "epoch", "elapsed_s", "model", "loss", "train_error", "val_error", "lr"])
        for step in self.steps:
            for m in step["models"]:
                writer.writerow([step["step"], f"{step['epoch']:.4f}", f"{step['elapsed_s']:.3f}", m["name"],
                                 m["loss"], m["train_error"], "" if m["val_error"] is None else m["val_error"],
                                 m["lr"]])
        return out.getvalue()


def new_record(name: str, config: TrainConfig, device: torch.device | str,
               layer_names: dict[str, list[str]]) -> RunRecord:
    environment = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "explorer": __version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    return RunRecord(name=name, config=asdict(config), environment=environment, layer_names=layer_names)


def save_run(record: RunRecord, path: Path) -> Path:
    """Write atomically, so a run being replayed is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        handle.write(record.to_json())
    os.chmod(handle.name, 0o644)  # temporary files are private; a saved run is an ordinary file
    os.replace(handle.name, path)
    return path


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
    return Path(os.environ.get("EXPLORER_RUNS_DIR", Path.home() / ".cache" / "resnet-explorer" / "runs"))


def list_runs() -> list[Path]:
    """Shipped runs first, then the user's own, newest first within each."""
    found = []
    for folder in (shipped_runs_dir(), user_runs_dir()):
        if folder.is_dir():
            found += sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return found
