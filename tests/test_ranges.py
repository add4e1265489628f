"""One declared range for every number a user can type (issue 37): the Range parser, the
link parser and the CLI's flag types hold under any text (property-based, ``hypothesis``), and
the ranges admit every recipe the project ships."""

import argparse
import contextlib
import io
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from explorer import settings
from explorer.cli.parsing import finite, print_json, ranged, ranged_list
from explorer.data import DataError, check_source
from explorer.data.synthetic import parse_synthetic_count
from explorer.server import links
from explorer.settings import LimitError, Range

ROOT = Path(__file__).resolve().parents[1]
RANGES = {name: value for name, value in vars(settings).items() if isinstance(value, Range)}
FAST = hypothesis_settings(max_examples=150, deadline=None)

# Texts a user might type: anything, and things that look like numbers.
numbers_as_text = st.one_of(
    st.text(max_size=30),
    st.integers(-10**15, 10**15).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "1e308", "-0", "0x10", "1_000", " 7 ", "٣", "1e3", "+5", "", "１２"]),
)


def _in(limit: Range, value) -> bool:
    kind = int if limit.integer else float
    return (type(value) is kind and math.isfinite(value) and limit.low <= value <= limit.high
            and not (limit.low_open and value == limit.low))


@FAST
@given(name=st.sampled_from(sorted(RANGES)), text=numbers_as_text)
def test_any_text_parses_into_the_range_or_raises_limit_error(name, text):
    limit = RANGES[name]
    try:
        value = limit.parse(text)
    except LimitError as error:
        assert str(error).startswith(limit.what) and "\n" not in str(error)
    else:
        assert _in(limit, value)


@FAST
@given(name=st.sampled_from(sorted(RANGES)),
       value=st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text(max_size=5)))
def test_any_value_checks_into_the_range_or_raises_limit_error(name, value):
    limit = RANGES[name]
    try:
        checked = limit.check(value)
    except LimitError:
        return
    assert _in(limit, checked)


@FAST
@given(name=st.sampled_from(sorted(RANGES)), text=numbers_as_text)
def test_a_flag_type_parses_or_raises_what_argparse_reports_in_one_line(name, text):
    parse = ranged(RANGES[name])
    try:
        assert _in(RANGES[name], parse(text))
    except argparse.ArgumentTypeError as error:
        assert "\n" not in str(error)


@FAST
@given(text=st.one_of(st.text(max_size=40), st.lists(st.integers(-5, 200_000).map(str), max_size=20).map(",".join)))
def test_milestones_parse_into_at_most_16_steps_in_range(text):
    try:
        parsed = ranged_list(settings.MILESTONE, settings.MILESTONES)(text)
    except argparse.ArgumentTypeError:
        return
    assert len(parsed) <= settings.MILESTONES.high and all(_in(settings.MILESTONE, m) for m in parsed)


@FAST
@given(text=numbers_as_text)
def test_synthetic_n_is_in_range_or_a_data_error(text):
    try:
        count = parse_synthetic_count(text)
    except DataError as error:
        assert "synthetic:2000" in str(error)
    else:
        assert _in(settings.SYNTHETIC_IMAGES, count)


@pytest.mark.parametrize("source", ["synthetic:3000000", "synthetic:1000000000000", "synthetic:9"])
def test_huge_synthetic_sets_are_refused_before_anything_is_generated(source, monkeypatch):
    import explorer.data.loading as loading
    from explorer.data import load_data

    monkeypatch.setattr(loading, "make_synthetic", lambda *a, **k: pytest.fail("generated before the check"))
    with pytest.raises(DataError, match="from 10 to 60,000"):
        check_source(source)
    with pytest.raises(DataError, match="from 10 to 60,000"):
        load_data(source)


# --- links: any value falls back to the default, with a notice; never an exception ---

link_values = st.one_of(st.text(max_size=60), st.lists(st.text(max_size=10), max_size=3),
                        st.integers(-10**6, 10**9).map(str))


@FAST
@given(value=link_values)
def test_int_param_returns_a_number_in_the_range_or_the_default(value):
    notices: list[str] = []
    seed = links.int_param({"seed": value}, "seed", settings.SEED, 0, notices)
    assert _in(settings.SEED, seed)
    if notices:
        assert seed == 0 and all(isinstance(n, str) and "\n" not in n for n in notices)


@FAST
@given(params=st.dictionaries(st.sampled_from(["preset", "models", "data", "seed", "steps", "other"]), link_values))
def test_any_lab_link_gives_valid_settings(params):
    link, notices = links.lab_from_params(params, datasets=["synthetic"])
    assert link.preset in links.PRESETS and link.dataset == "synthetic"
    assert _in(settings.SEED, link.seed) and _in(settings.STEPS, link.steps)
    assert link.models and len(set(link.models)) == len(link.models)
    assert all(isinstance(notice, str) for notice in notices)


@FAST
@given(params=st.dictionaries(st.sampled_from(["model", "sample", "class", "stage", "look"]), link_values))
def test_any_inspect_link_gives_values_from_the_allowed_ones(params):
    link, _ = links.inspect_from_params(params, models=["a", "b"], samples=["cat"],
                                        classes_of=lambda model: ["x", "y"], stages_of=lambda model: ["layer1"])
    assert link.model in ("a", "b") and link.sample in (None, "cat") and link.target in (None, "x", "y")
    assert link.stage in (None, "layer1") and link.look in (None, *links.INSPECT_LOOKS)


def test_the_link_and_the_lab_share_the_bounds():
    notices: list[str] = []
    assert links.int_param({"steps": str(settings.STEPS.high)}, "steps", settings.STEPS, 300, notices) == 64_000
    assert links.int_param({"steps": str(settings.STEPS.high + 1)}, "steps", settings.STEPS, 300, notices) == 300
    assert notices == ["The link's steps '64001' is not a whole number from 1 to 64,000; using 300."]
    source = (ROOT / "explorer" / "ui" / "lab.py").read_text()
    for name in ("STEPS", "SEED", "REPEAT"):  # the boxes take their bounds from the same ranges
        assert f"int(settings.{name}.low), int(settings.{name}.high)" in source


# --- valid JSON ---

@FAST
@given(value=st.recursive(st.one_of(st.floats(), st.integers(), st.none(), st.text(max_size=5)),
                          lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4),
                                                                                              children, max_size=4)))
def test_print_json_is_always_valid_json(value):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_json(value)

    def refuse(token):
        raise AssertionError(f"{token} is not JSON")
    json.loads(printed.getvalue(), parse_constant=refuse)


def test_non_finite_numbers_become_null():
    assert finite({"loss": [1.0, math.nan, math.inf, -math.inf], "n": 3}) == {"loss": [1.0, None, None, None], "n": 3}


# --- every shipped recipe fits the ranges ---

def test_the_presets_and_the_shipped_recipes_fit_the_ranges():
    from explorer.training.engine import PRESETS, check_config, config_from_dict

    for config in PRESETS.values():
        check_config(config)
    check_config(replace(PRESETS["paper"], steps=80_000, schedule_steps=64_000))  # README: --resume … --steps 80000
    manifest = json.loads((ROOT / "pretrained" / "manifest.json").read_text())["checkpoints"]
    for entry in manifest.values():
        check_config(config_from_dict(entry["config"]))
    for path in sorted((ROOT / "pretrained" / "runs").glob("*.json")):
        config = json.loads(path.read_text())["config"]
        for field, limit in (("steps", settings.STEPS), ("batch_size", settings.BATCH_SIZE), ("width", settings.WIDTH),
                             ("image_size", settings.IMAGE_SIZE), ("val_every", settings.VAL_EVERY), ("lr", settings.LEARNING_RATE)):
            limit.check(config[field])
    surfaces = json.loads((ROOT / "pretrained" / "landscapes" / "manifest.json").read_text())["landscapes"]
    for surface in surfaces.values():
        settings.LANDSCAPE_GRID.check(surface["grid"])
        settings.LANDSCAPE_SPAN.check(surface["span"])
        settings.PROBE_IMAGES.check(surface["images"])
    from explorer.paper.inside import defaults

    settings.LANDSCAPE_GRID.check(defaults.DEFAULT_GRID)
    settings.PROBE_IMAGES.check(defaults.DEFAULT_IMAGES)
    settings.LESION_DRAWS.check(defaults.DEFAULT_DRAWS)


def test_the_finetune_defaults_fit_and_nonsense_does_not():
    from explorer.transfer.finetune import FinetuneConfig, check_finetune_config

    check_finetune_config(FinetuneConfig(backbone="resnet50", upsample=7))  # 32 × 7 = ImageNet's 224
    for change in ({"data_size": 100_000}, {"epochs": 10**6}, {"lr": math.inf}, {"batch_size": 0},
                   {"data_size": 512, "upsample": 7}):
        with pytest.raises(LimitError):
            check_finetune_config(FinetuneConfig(backbone="resnet50", **change))
