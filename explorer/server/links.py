"""Shareable links: a page's settings as flat query parameters, and back, checked.

A teacher sends a link that opens the lab (or the inspect page) with the settings on the
projector. The settings travel as ``?preset=demo&models=plain20,resnet20&seed=1``; reading
them back, every value is checked against what exists here (the registry's models, the
presets of explorer.training.engine, the lab's list of data sets, the shipped samples, the model's
classes and stages). A value that is unknown, malformed, repeated, absurdly long or out of
range falls back to the default, with a notice for the page to show. A link names a data
set only by its place in the lab's list ("cifar10", "cifar10-demo", "synthetic"), never by a
path: a folder or an upload stays on the machine that chose it.

``params`` is what the page reads, ``{key: st.query_params.get_all(key)}``: a key given
twice arrives as a list of two values, which is refused rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from explorer import settings
from explorer.models import model_names
from explorer.paper.degradation import CLASS_DEMO_MODELS, DEMO_PACK, cifar10_source, demo_pack_source
from explorer.settings import LimitError, Range
from explorer.training.engine import PRESETS, preset

MAX_VALUE_CHARS = 200  # longer than any model, sample, class or stage name
# The lab's seed box and step box share these bounds with the link (explorer.settings).
MAX_SEED = settings.SEED.high
MAX_STEPS = settings.STEPS.high
DEFAULT_PRESET = "demo"

Params = Mapping[str, "str | Sequence[str]"]


@dataclass(frozen=True)
class LabLink:
    """The lab's settings that a link carries."""

    preset: str = DEFAULT_PRESET  # a key of explorer.training.engine.PRESETS
    models: tuple[str, ...] = CLASS_DEMO_MODELS
    dataset: str = DEMO_PACK  # a key of lab_datasets(), never a path (the shipped real images by default)
    seed: int = 0
    steps: int = PRESETS[DEFAULT_PRESET].steps


@dataclass(frozen=True)
class InspectLink:
    """The inspect page's view; None leaves the page's own default (the first sample, the
    predicted class, the first stage end)."""

    model: str
    sample: str | None = None
    target: str | None = None  # the class Grad-CAM explains
    stage: str | None = None  # a feature point's module name, e.g. "layer2"
    look: str | None = None  # the open closer look, one of INSPECT_LOOKS


# The inspect page's three closer looks as a link names them (Grad-CAM per stage, feature maps,
# gradients per layer), in the page's tab order.
INSPECT_LOOKS = ("grad-cam", "feature-maps", "gradients")


def lab_datasets() -> dict[str, str]:
    """The lab's data sets a link may name: choice -> data source, the default first. The full
    CIFAR-10 when it is on this machine (explorer.paper.degradation.cifar10_source), then the demo pack of
    real CIFAR-10 images shipped with the app, then the synthetic set."""
    found, pack = cifar10_source(), demo_pack_source()
    return {**({"cifar10": found} if found else {}), **({DEMO_PACK: pack} if pack else {}), "synthetic": "synthetic"}


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _single(params: Params, key: str, notices: list[str]) -> str | None:
    """The one value given for ``key``; None (with a notice) when repeated or too long."""
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        values = list(value)
        if len(values) != 1:
            if values:
                notices.append(f"The link gives {key!r} {len(values)} times; it is ignored.")
            return None
        value = values[0]
    if len(value) > MAX_VALUE_CHARS:
        notices.append(f"The link's {key!r} is {len(value):,} characters long; it is ignored.")
        return None
    return value


def choice_param(params: Params, key: str, allowed: Sequence[str], default, notices: list[str]):
    """``params[key]`` if it is one of ``allowed``, else ``default`` (with a notice if it was given)."""
    value = _single(params, key, notices)
    if value is None:
        return default
    if value not in allowed:
        listed = ", ".join(allowed[:6]) + (", …" if len(allowed) > 6 else "")
        notices.append(f"The link's {key} {_shown(value)} is not one of {listed}; "
                       f"using {default if default is not None else 'the default'}.")
        return default
    return value


def int_param(params: Params, key: str, limit: Range, default: int, notices: list[str]) -> int:
    """``params[key]`` if it is a whole number (plain ASCII digits) in ``limit``'s range (the
    range the page's widget and the CLI's flag use too), else ``default`` with a notice."""
    value = _single(params, key, notices)
    if value is None:
        return default
    # Plain ASCII digits only: a sign, spaces, "1e3" or another script's digits are not a link's
    # number (and the length check keeps int() from ever parsing a huge one).
    plain = value.isascii() and value.isdigit() and len(value) <= len(f"{int(limit.high)}")
    try:
        return limit.check(int(value) if plain else None)
    except LimitError:
        notices.append(f"The link's {key} {_shown(value)} is not {limit.describe()}; using {default:,}.")
        return default


def models_param(params: Params, key: str, allowed: Sequence[str], default: tuple[str, ...],
                 notices: list[str]) -> tuple[str, ...]:
    """Comma-separated names from ``allowed``, each once; unknown ones are dropped with a
    notice, and none left means ``default``."""
    value = _single(params, key, notices)
    if value is None:
        return default
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown:
        notices.append(f"The link's {key} include unknown names ({', '.join(_shown(n) for n in unknown[:3])}"
                       f"{', …' if len(unknown) > 3 else ''}); they are left out.")
    kept = tuple(dict.fromkeys(name for name in names if name in allowed))
    if not kept:
        notices.append(f"The link names no known {key}; using {', '.join(default)}.")
    return kept or default


def lab_to_params(link: LabLink) -> dict[str, str]:
    """The lab's settings as query parameters."""
    return {"preset": link.preset, "models": ",".join(link.models), "data": link.dataset,
            "seed": str(link.seed), "steps": str(link.steps)}


def lab_from_params(params: Params, datasets: Sequence[str] | None = None) -> tuple[LabLink, list[str]]:
    """The lab's settings from a link, and the notices for what was refused. ``datasets``:
    the choices a link may name (default: :func:`lab_datasets`, the first is the default).
    Steps default to the chosen preset's."""
    notices: list[str] = []
    datasets = list(lab_datasets() if datasets is None else datasets)
    chosen = choice_param(params, "preset", list(PRESETS), DEFAULT_PRESET, notices)
    link = LabLink(
        preset=chosen,
        models=models_param(params, "models", model_names("cifar"), CLASS_DEMO_MODELS, notices),
        dataset=choice_param(params, "data", datasets, datasets[0], notices),
        seed=int_param(params, "seed", settings.SEED, 0, notices),
        steps=int_param(params, "steps", settings.STEPS, preset(chosen).steps, notices),
    )
    return link, notices


def inspect_to_params(link: InspectLink) -> dict[str, str]:
    """The inspect page's view as query parameters (unset fields are left out)."""
    values = {"model": link.model, "sample": link.sample, "class": link.target, "stage": link.stage,
              "look": link.look}
    return {key: value for key, value in values.items() if value is not None}


def inspect_from_params(params: Params, *, models: Sequence[str], samples: Sequence[str],
                        classes_of: Callable[[str], Sequence[str]] | None = None,
                        stages_of: Callable[[str], Sequence[str]] | None = None) -> tuple[InspectLink, list[str]]:
    """The inspect page's view from a link, and the notices. ``models``: the classifier
    choices (the first is the default); ``samples``: the shipped sample names;
    ``classes_of(model)`` and ``stages_of(model)`` the classes and feature points of the
    chosen model (asked only when the link names a class or a stage)."""
    if not models:
        raise ValueError("inspect_from_params needs at least one model to choose from.")
    notices: list[str] = []
    model = choice_param(params, "model", list(models), models[0], notices)
    sample = choice_param(params, "sample", list(samples), None, notices)
    target = stage = None
    if classes_of is not None and "class" in params:
        target = choice_param(params, "class", list(classes_of(model)), None, notices)
    if stages_of is not None and "stage" in params:
        stage = choice_param(params, "stage", list(stages_of(model)), None, notices)
    look = choice_param(params, "look", list(INSPECT_LOOKS), None, notices)
    if look is None and stage is not None:  # older links: a stage is chosen only in the feature maps
        look = "feature-maps"
    return InspectLink(model, sample, target, stage, look), notices
