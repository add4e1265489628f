"""explorer.settings: budgets read from the environment, declared ranges, and the README's table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from explorer import settings
from explorer.settings import MIB, Budget, LimitError, Range

README = Path(__file__).resolve().parents[1] / "README.md"


def test_budget_default_and_override():
    budget = Budget("EXPLORER_TEST_BUDGET", 12, "photos", "test")
    assert budget.value({}) == 12
    assert budget.value({"EXPLORER_TEST_BUDGET": " 30 "}) == 30
    assert budget.value({"EXPLORER_TEST_BUDGET": "1_000"}) == 1000
    assert budget.value({"EXPLORER_TEST_BUDGET": ""}) == 12


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "lots", "1e9", "٣"])
def test_budget_refuses_malformed_override(text):
    budget = Budget("EXPLORER_TEST_BUDGET", 12, "photos", "test")
    with pytest.raises(LimitError, match="EXPLORER_TEST_BUDGET must be a whole number of at least 1"):
        budget.value({"EXPLORER_TEST_BUDGET": text})


def test_budget_in_mib_as_bytes():
    assert settings.SESSION_DISK.bytes({"EXPLORER_SESSION_DISK_MB": "3"}) == 3 * MIB
    with pytest.raises(TypeError):
        settings.UPLOAD_PHOTOS.bytes({})


def test_every_budget_has_its_own_variable():
    names = [b.env for b in settings.BUDGETS]
    assert len(names) == len(set(names))
    assert all(name.startswith("EXPLORER_") for name in names)
    assert all(b.default >= b.low for b in settings.BUDGETS)


@pytest.mark.parametrize("value", [1, 64_000, 5])
def test_range_accepts_its_ends(value):
    assert settings.STEPS.check(value) == value


@pytest.mark.parametrize("value", [0, 64_001, -1, 2.5, math.inf, math.nan, True, "12", None])
def test_range_refuses_outside(value):
    with pytest.raises(LimitError, match="the number of steps must be a whole number from 1 to 64,000"):
        settings.STEPS.check(value)


def test_open_low_end_and_floats():
    lr = Range("the learning rate", 0, 10, integer=False, low_open=True)
    assert lr.check(0.1) == 0.1
    assert lr.parse("1e-3") == 0.001
    for bad in ("0", "inf", "-inf", "nan", "11", "a"):
        with pytest.raises(LimitError, match="above 0 to 10"):
            lr.parse(bad)


def test_parse_names_the_value_and_whole_numbers_stay_integers():
    assert settings.SEED.parse(" 7 ") == 7 and isinstance(settings.SEED.parse("7"), int)
    assert settings.SYNTHETIC_IMAGES.parse("2_000") == 2000
    with pytest.raises(LimitError, match=r"^synthetic:N must be a whole number from 10 to 60,000, got 3,000,000\.$"):
        settings.SYNTHETIC_IMAGES.parse("3000000", what="synthetic:N")


def test_readme_lists_every_budget_with_its_default():
    assert settings.budget_table() in README.read_text(encoding="utf-8"), (
        "README.md's 'Running it for a class' table differs from explorer.settings.budget_table(); paste it again")
