"""The README's tables of shipped checkpoints and runs are generated from pretrained/ (explorer.store.shipped)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from explorer.data import Augmentation
from explorer.store.shipped import readme_block, shipped_tables
from explorer.training.recipe import TrainConfig, preset, recipe_summary

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_tables_are_exactly_what_the_manifest_and_runs_say():
    block = readme_block((ROOT / "README.md").read_text())
    assert block is not None, "README.md lost its shipped-tables markers"
    assert block == shipped_tables(ROOT / "pretrained"), (
        "README.md's shipped tables are stale: paste the output of `python -m explorer models --shipped`")


def test_a_recipe_names_only_where_it_departs_from_section_4_2():
    assert recipe_summary(asdict(TrainConfig())) == "§4.2's recipe, 64,000 steps"
    shortened = asdict(preset("paper", steps=8000))
    assert recipe_summary(shortened) == "8,000 steps; ÷10 at 4,000, 6,000"
    fast = asdict(replace(TrainConfig(), steps=35_000, schedule="cosine", nesterov=True, label_smoothing=0.1,
                          weight_decay=5e-4))
    assert recipe_summary(fast) == "35,000 steps; cosine schedule, Nesterov, label smoothing 0.1, weight decay 0.0005"
    fitting = asdict(replace(TrainConfig(), augmentation=Augmentation(pad=0, flip=False)))
    assert recipe_summary(fitting) == "64,000 steps; no crop or flip"
    assert recipe_summary(asdict(replace(TrainConfig(), augmentation=Augmentation(flip=False)))) == "64,000 steps; no flip"


def test_the_machine_is_named_with_its_cores():
    import os

    from explorer.devices import machine_description

    description = machine_description("cpu")
    assert description.endswith(f", {os.cpu_count()} cores") and len(description) > len(" cores") + 3
