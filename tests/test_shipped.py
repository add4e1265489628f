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


def _as_format1(payload: dict) -> dict:
    """A format-2 run record's JSON as format 1 wrote it: the config one flat object (the
    augmentation its only nested one), made before repeats and the later recipe fields (they
    are left out, as such records lack them), and no seed in the metrics."""
    flat = {}
    for key, value in payload["config"].items():
        if isinstance(value, dict) and key != "augmentation":
            flat.update(value)  # a nested group of the config (the engine's switches): flat in format 1
        else:
            flat[key] = value
    later = ("repeat", "label_smoothing", "nesterov", "schedule", "schedule_steps", "amp", "compile", "val_limit")
    config = {key: value for key, value in flat.items() if key not in later}
    steps = [{**step, "models": [{k: v for k, v in m.items() if k != "seed"} for m in step["models"]]}
             for step in payload["steps"]]
    return {**payload, "format": 1, "config": config, "steps": steps}


def test_a_format_1_run_file_loads_to_the_values_of_format_2_and_migrates_in_place(tmp_path):
    """Run records written before issue 39 (format 1: the shipped runs until migrated, users'
    ~/.cache records) read as the same typed record a format-2 file holds; migrate_run_file
    rewrites one as format 2, once."""
    import json

    from explorer.store.runs import RUN_FORMAT, load_run, migrate_run_file, save_run
    from explorer.training.lockstep import ModelMetrics, StepRecord

    shipped = load_run(ROOT / "pretrained" / "runs" / "fig6-width4-cifar10-2000-steps.json")
    shipped.steps = shipped.steps[:3] + shipped.steps[-1:]  # a small file: the first steps and the validated last
    assert shipped.config.seed == 1 and shipped.config.val_limit == 2000  # a seed and a later field to fill in
    current = save_run(shipped, tmp_path / "current.json")
    payload = json.loads(current.read_text())
    assert payload["format"] == RUN_FORMAT == 2
    old = tmp_path / "old.json"
    old.write_text(json.dumps(_as_format1(payload)))
    assert "seed" not in json.loads(old.read_text())["steps"][0]["models"][0]

    from_old, from_current = load_run(old), load_run(current)
    assert isinstance(from_old.config, TrainConfig) and isinstance(from_old.steps[-1], StepRecord)
    assert all(isinstance(m, ModelMetrics) and m.seed == 1 for m in from_old.steps[-1].models)  # the config's seed
    assert from_old.config.val_limit is None  # a field the old record lacked: what runs did before it existed
    assert replace(from_old, config=replace(from_old.config, val_limit=2000)) == from_current == shipped
    assert from_old.series("resnet56", "val_error") == from_current.series("resnet56", "val_error")

    assert migrate_run_file(old) and json.loads(old.read_text())["format"] == RUN_FORMAT
    assert load_run(old) == from_old  # the same values, now in format 2
    assert not migrate_run_file(old) and not migrate_run_file(current)  # already format 2: left alone
