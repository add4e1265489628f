"""The typed schema of a training state's metadata, checked before any training starts.

A state file (:mod:`explorer.store.state`) is data a user may have been sent, or have edited: every
field it holds is checked here for its presence, its type and its range before anything is
loaded or trained, and a bad one is named in one sentence (``state.step must be a whole
number, got 'x'``), never met later as a ``KeyError`` or a ``ZeroDivisionError`` after
minutes of training. The recipe's fields are checked by :func:`explorer.training.recipe.config_from_dict`
(types) and :func:`explorer.training.recipe.check_config` (the ranges of :mod:`explorer.settings`, the same
as the lab's widgets and ``train``'s flags).

The metadata holds four JSON texts and one hint:

* ``config``: the :class:`~explorer.training.recipe.TrainConfig` as ``asdict``, its speed switches
  under ``engine`` (a state written before issue 39 holds them among the recipe's fields, and
  still resumes: config_from_dict gathers them);
* ``state``: :meth:`Training.state_dict`'s plain half: the step, the wall time, one entry per
  model and seed (``trainees``, in the order Training builds them) and one per seed (``streams``);
* ``record``: the run record so far;
* ``out``: where the run record was first written. Shown as a hint only: the output path
  never comes from a state, which could otherwise name any file the user may write.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields

from explorer.store.runs import RunRecord, record_from_dict
from explorer.training.recipe import ConfigError, TrainConfig, check_config, config_from_dict

MAX_TEXT = 4096  # characters of any text in a state (a folder path is the longest)
REQUIRED = ("format", "config", "state", "record")


class SchemaError(ValueError):
    """A state field that is missing, of the wrong type or out of range; the message names it."""


@dataclass(frozen=True)
class StateFields:
    """A state's metadata, parsed and checked."""

    config: TrainConfig
    plain: dict  # Training.state_dict()'s plain half
    record: RunRecord
    out: str | None  # a hint only (see the module doc)

    @property
    def step(self) -> int:
        return self.plain["step"]


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _whole(value, where: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"{where} must be a whole number, got {_shown(value)}")
    if value < low or (high is not None and value > high):
        upper = f" to {high:,}" if high is not None else " or more"
        raise SchemaError(f"{where} must be from {low:,}{upper}, got {value:,}")
    return value


def _number(value, where: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"{where} must be a finite number{' or null' if optional else ''}, got {_shown(value)}")
    return value


def _text(value, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise SchemaError(f"{where} must be text{' or null' if optional else ''} (at most {MAX_TEXT:,} characters), "
                          f"got {_shown(value)}")
    return value


def _kind(value, kind: type, where: str):
    if not isinstance(value, kind):
        name = {dict: "an object", list: "a list", bool: "true or false"}.get(kind, kind.__name__)
        raise SchemaError(f"{where} must be {name}, got {_shown(value)}")
    return value


def _key(mapping: dict, key: str, where: str):
    if key not in mapping:
        raise SchemaError(f"{where} has no {key!r}")
    return mapping[key]


def _json(metadata: dict, key: str):
    try:
        return json.loads(metadata[key])
    except (TypeError, ValueError) as error:
        raise SchemaError(f"{key} is not valid JSON ({error})") from None


def _config(values) -> TrainConfig:
    """The config: types (config_from_dict), then every range (check_config), the field named."""
    try:
        config = config_from_dict(values)
        check_config(config)
    except ConfigError as error:
        named = error.field is None or str(error).startswith("config field")
        field = "" if named else f"config field {error.field!r}: "
        raise SchemaError(f"{field}{error}") from None
    except ValueError as error:  # another engine version, an unknown model
        raise SchemaError(str(error)) from None
    return config


def _plain(plain, config: TrainConfig) -> dict:
    """The engine's counters: one trainee per model and seed, one stream per seed."""
    _kind(plain, dict, "state")
    _whole(_key(plain, "step", "state"), "state.step", 0, config.steps)
    if _number(_key(plain, "elapsed_s", "state"), "state.elapsed_s") < 0:
        raise SchemaError("state.elapsed_s cannot be negative")
    expected = [(name, seed) for seed in config.seeds for name in config.models]  # Training's order
    trainees = _kind(_key(plain, "trainees", "state"), list, "state.trainees")
    for index, trainee in enumerate(trainees):
        where = f"state.trainees[{index}]"
        _kind(trainee, dict, where)
        _text(_key(trainee, "name", where), f"{where}.name")
        _whole(_key(trainee, "seed", where), f"{where}.seed")
        for group in _kind(_key(trainee, "param_groups", where), list, f"{where}.param_groups"):
            _kind(group, dict, f"{where}.param_groups[]")
        _kind(_key(trainee, "scheduler", where), dict, f"{where}.scheduler")
        for pair in _kind(_key(trainee, "recent", where), list, f"{where}.recent"):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise SchemaError(f"{where}.recent must hold [wrong, seen] pairs, got {_shown(pair)}")
            _whole(pair[0], f"{where}.recent[]"), _whole(pair[1], f"{where}.recent[]")
        _kind(_key(trainee, "warming_up", where), bool, f"{where}.warming_up")
        _text(_key(trainee, "stopped", where), f"{where}.stopped", optional=True)
        last = _key(trainee, "last", where)
        if last is not None:
            _kind(last, dict, f"{where}.last")
    saved = [(t["name"], t["seed"]) for t in trainees]
    if saved != expected:
        raise SchemaError(f"state.trainees holds the models {saved[:8]}, but its config trains {expected[:8]}")
    streams = _kind(_key(plain, "streams", "state"), list, "state.streams")
    for index, stream in enumerate(streams):
        where = f"state.streams[{index}]"
        _kind(stream, dict, where)
        _whole(_key(stream, "seed", where), f"{where}.seed")
        _whole(_key(stream, "cursor", where), f"{where}.cursor")
    if [s["seed"] for s in streams] != list(config.seeds):
        raise SchemaError(f"state.streams holds the seeds {[s['seed'] for s in streams][:8]}, "
                          f"but its config trains {list(config.seeds)[:8]}")
    return plain


def _record(values) -> RunRecord:
    """The run record so far: the keys RunRecord has, and the parts the CLI reads back."""
    _kind(values, dict, "record")
    version = values.get("format", 1)  # format 2 since issue 39; record_from_dict migrates 1
    values = {key: value for key, value in values.items() if key != "format"}
    known = {f.name for f in fields(RunRecord)}
    if unknown := sorted(set(values) - known):
        raise SchemaError(f"record has unknown keys: {', '.join(map(str, unknown))[:200]}")
    for key in ("name", "config", "environment"):
        _key(values, key, "record")
    _text(values["name"], "record.name")
    _kind(values["config"], dict, "record.config")
    environment = _kind(values["environment"], dict, "record.environment")
    if "machines" in environment:
        machines = _kind(environment["machines"], list, "record.environment.machines")
        if not machines:
            raise SchemaError("record.environment.machines must name at least one machine")
        for machine in machines:
            _text(machine, "record.environment.machines[]")
    if "device_name" in environment:
        _text(environment["device_name"], "record.environment.device_name")
    for name, layers in _kind(values.get("layer_names", {}), dict, "record.layer_names").items():
        for layer in _kind(layers, list, f"record.layer_names.{name}"):
            _text(layer, f"record.layer_names.{name}[]")
    _kind(values.get("finished", False), bool, "record.finished")
    for key in ("messages", "classes"):
        for item in _kind(values.get(key, []), list, f"record.{key}"):
            _text(item, f"record.{key}[]")
    for index, step in enumerate(_kind(values.get("steps", []), list, "record.steps")):
        where = f"record.steps[{index}]"
        _kind(step, dict, where)
        _whole(_key(step, "step", where), f"{where}.step")
        _number(_key(step, "epoch", where), f"{where}.epoch")
        for model in _kind(_key(step, "models", where), list, f"{where}.models"):
            _kind(model, dict, f"{where}.models[]")
            _text(_key(model, "name", f"{where}.models[]"), f"{where}.models[].name")
            for key in ("train_error", "val_error", "loss"):
                if key in model and model[key] is not None and not isinstance(model[key], (int, float)):
                    raise SchemaError(f"{where}.models[].{key} must be a number or null, got {_shown(model[key])}")
            _text(model.get("stopped"), f"{where}.models[].stopped", optional=True)
    try:
        return record_from_dict({"format": version, **values})
    except (TypeError, ValueError) as error:
        raise SchemaError(f"record: {str(error).splitlines()[0]}") from error


def validated_fields(metadata: dict) -> StateFields:
    """Every field of a state's metadata, checked (see the module doc); SchemaError naming the
    first bad one."""
    for key in REQUIRED:
        if key not in metadata:
            raise SchemaError(f"the state has no {key!r}")
    config = _config(_json(metadata, "config"))
    plain = _plain(_json(metadata, "state"), config)
    record = _record(_json(metadata, "record"))
    out = _text(_json(metadata, "out") if "out" in metadata else None, "out", optional=True)
    return StateFields(config, plain, record, out)
