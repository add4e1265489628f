"""A resumable training state: everything needed to continue a run exactly where it was.

``DIR/state.safetensors`` holds every tensor (each model's weights and BatchNorm statistics,
its optimizer's momentum, each seed's data order and generator states, torch's global
generator), and its metadata holds the rest as JSON: the format, the full config, the step,
each schedule's position, the train-error windows and the run record so far. It is one
file, written under a temporary name and renamed over the old one, so a kill at any instant
leaves the last complete state. Resumed on the CPU, a run ends with the same weights as the
same run uninterrupted (tests/test_resume.py kills one with SIGKILL).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from explorer.files import atomic_write
from explorer.store.runs import RunRecord
from explorer.store.state_schema import SchemaError, validated_fields
from explorer.training.engine import TrainConfig, Training

STATE_FILE = "state.safetensors"
STATE_FORMAT = 1


class StateError(ValueError):
    """A training state that is missing, damaged or from another version; says what to do."""


@dataclass
class SavedState:
    config: TrainConfig
    step: int
    record: RunRecord
    tensors: dict[str, torch.Tensor]
    plain: dict  # Training.state_dict()'s plain half
    out: str | None  # the --out the state was written with: a hint to show, never a write target


def state_path(folder: Path) -> Path:
    return Path(folder) / STATE_FILE


def save_state(folder: Path, training: Training, record: RunRecord, out: str | None = None) -> Path:
    """Write ``training``'s state and ``record`` to ``folder`` atomically; returns the file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, plain = training.state_dict()
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    metadata = {
        "format": str(STATE_FORMAT),
        "config": json.dumps(asdict(training.config)),
        "state": json.dumps(plain),
        "record": record.to_json(),
        "out": json.dumps(out),
    }
    return atomic_write(state_path(folder), lambda temporary: save_file(tensors, temporary, metadata=metadata))


def load_state(folder: Path) -> SavedState:
    """Read a state written by :func:`save_state`; StateError with a one-line reason if it
    is missing, truncated or of another format or config version. Nothing is changed."""
    path = state_path(folder)
    if not path.is_file():
        raise StateError(f"No training state in {folder} (expected {path.name}); start a run with --state {folder}.")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise StateError(f"{path} is damaged or truncated ({error}); resume from a copy, or start again.") from error
    if metadata.get("format") != str(STATE_FORMAT):
        raise StateError(f"{path} is a training state of format {str(metadata.get('format'))[:20]!r}; this version "
                         f"reads format {STATE_FORMAT}.")
    try:  # every field: its presence, type and range (explorer.store.state_schema), before anything trains
        checked = validated_fields(metadata)
    except SchemaError as error:
        raise StateError(f"{path} cannot be resumed: {str(error).rstrip('.')}.") from error
    return SavedState(checked.config, checked.step, checked.record, tensors, checked.plain, checked.out)


def restore(saved: SavedState, training: Training) -> None:
    """Load ``saved`` into a fresh :class:`Training` of the same config."""
    try:
        training.load_state_dict(saved.tensors, saved.plain)
    except (KeyError, IndexError, TypeError, AttributeError, RuntimeError, ValueError) as error:
        raise StateError(f"The saved state does not fit this run: {str(error).splitlines()[0]}") from error
