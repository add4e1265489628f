"""A JSON value read back as the type its dataclass field declares, or refused naming the field.

Saved configs (inside run records and training states) are JSON, where a tuple is a list and
nothing stops a file from holding ``"val_every": "5"``. :func:`from_json` turns a JSON value
into what a field's annotation says (``int``, ``float``, ``str``, ``bool``, ``X | None``,
``tuple[X, ...]``, ``tuple[X, Y]``, a nested dataclass) and raises :class:`FieldTypeError`
naming the field otherwise, so a wrong type is met when the file is read, not as a
``TypeError`` deep inside training. Floats must be finite: JSON's parser accepts ``NaN``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

MAX_TEXT = 4096  # characters of any text field (a folder path is the longest)
MAX_ITEMS = 1000  # items of any list field


class FieldTypeError(ValueError):
    """A value that does not fit its field's type; ``field`` is the top-level field's name."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def from_json(value, hint, name: str, label: str = "config field"):
    """``value`` as the type ``hint`` of the field ``name`` (dotted for nested fields)."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # "int | None", "float | str"
        for option in arguments:
            try:
                return from_json(value, option, name, label)
            except FieldTypeError:
                continue
    elif hint is type(None):
        if value is None:
            return None
    elif origin is tuple:
        if isinstance(value, (list, tuple)) and len(value) <= MAX_ITEMS:
            if len(arguments) == 2 and arguments[1] is Ellipsis:
                return tuple(from_json(item, arguments[0], name, label) for item in value)
            if len(value) == len(arguments):
                return tuple(from_json(item, kind, name, label) for item, kind in zip(value, arguments))
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif hint is str:
        if isinstance(value, str) and len(value) <= MAX_TEXT:
            return value
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return _dataclass(value, hint, name, label)
    raise FieldTypeError(f"{label} {name!r} must be {_kind(hint)}, got {_shown(value)}", name.split(".")[0])


def _dataclass(value: dict, cls, name: str, label: str):
    """A nested dataclass (the config's Augmentation) from a JSON object with exactly its fields."""
    expected = {field.name for field in dataclasses.fields(cls)}
    if set(value) != expected:
        raise FieldTypeError(f"{label} {name!r} must have the keys {', '.join(sorted(expected))}, "
                             f"got {', '.join(sorted(map(str, value)))[:200]}", name.split(".")[0])
    hints = typing.get_type_hints(cls)
    converted = {key: from_json(item, hints[key], f"{name}.{key}", label) for key, item in value.items()}
    try:
        return cls(**converted)
    except ValueError as error:  # the dataclass's own checks (an erasing scale outside (0, 1], ...)
        raise FieldTypeError(f"{label} {name!r}: {error}", name.split(".")[0]) from None


def _kind(hint) -> str:
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_kind(option) for option in arguments)
    if typing.get_origin(hint) is tuple:
        return f"a list, each {_kind(arguments[0])}" if arguments[-1] is Ellipsis else f"a list of {len(arguments)}"
    if dataclasses.is_dataclass(hint):
        return "an object"
    return {type(None): "null", bool: "true or false", int: "a whole number", float: "a finite number",
            str: f"text (at most {MAX_TEXT:,} characters)"}.get(hint, str(hint))


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"
