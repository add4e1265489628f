"""What ``pretrained/`` holds, as the README's tables: every number read from the manifest and
the run records, none typed by hand.

``python -m explorer models --shipped`` prints both tables; ``tests/test_shipped.py`` checks
that the README's copy between the ``shipped-tables`` markers is exactly this output, so the
README cannot drift from the files it describes (issue "Table 6 on a laptop": the manifest
records per checkpoint its validation error, recipe, steps, epochs, wall time and machine).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from explorer.models import get_model_spec
from explorer.store.checkpoints import CheckpointEntry, read_manifest
from explorer.store.runs import RunError, load_run
from explorer.training.recipe import recipe_summary

BEGIN, END = "<!-- shipped-tables: python -m explorer models --shipped -->", "<!-- /shipped-tables -->"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def checkpoint_table(entries: dict[str, CheckpointEntry]) -> str:
    """One row per trained checkpoint: how it was trained and what it reached, beside Table 6."""
    rows = ["| checkpoint | recipe (where it departs from §4.2) | epochs | validation error (5k held out) "
            "| Table 6 (test) | training time | machine |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for key, entry in sorted(entries.items()):
        if entry.kind != "trained":
            continue
        paper = get_model_spec(entry.model).paper
        models = entry.config.get("models", [entry.model])
        shared = "" if len(models) == 1 else f" (one run of {', '.join(models)})"
        rows.append(f"| `{entry.file}` | {recipe_summary(entry.config)}{shared} "
                    f"| {'—' if entry.epochs is None else f'{entry.epochs:.1f}'} | {_percent(entry.val_error)} "
                    f"| {'—' if paper is None or paper.top1_error is None else f'{paper.top1_error:.2f}%'} "
                    f"| {_duration(entry.wall_time_s)} | {entry.machine or entry.device} |")
    return "\n".join(rows)


def run_table(paths: list[Path]) -> str:
    """One row per recorded run: its recipe and each model's last training/validation error."""
    rows = ["| run | models | recipe (where it departs from §4.2) | epochs | training / validation error at the end "
            "| wall time |", "| --- | --- | --- | ---: | --- | ---: |"]
    for path in sorted(paths):
        try:
            record = load_run(path)
        except RunError:
            continue  # a broken file is the lab's to report; the table lists what replays
        if not record.steps:
            continue
        last = record.steps[-1]
        def last_value(model: str, key: str) -> str:  # the first seed's, wherever it was last measured
            values = record.series(model, key)[1]
            return "—" if not values else f"{100 * values[-1]:.1f}"

        errors = ", ".join(f"{name} {last_value(name, 'train_error')} / {last_value(name, 'val_error')}%"
                           for name in record.model_names)
        classes = record.config.classes
        rows.append(f"| `runs/{path.name}` | {', '.join(record.model_names)} | {recipe_summary(asdict(record.config))}"
                    f"{'' if not classes else ' (' + ', '.join(classes) + ')'} | {last.epoch:.1f} | {errors} "
                    f"| {_duration(last.elapsed_s)} |")
    return "\n".join(rows)


def shipped_tables(folder: Path) -> str:
    """Both tables for the pretrained folder ``folder``."""
    return (checkpoint_table(read_manifest(folder)) + "\n\nRecorded runs (`pretrained/runs/`, replayed by the lab):\n\n"
            + run_table(list((folder / "runs").glob("*.json"))))


def readme_block(readme: str) -> str | None:
    """The README's copy of :func:`shipped_tables` (between the markers), or None."""
    if BEGIN not in readme or END not in readme:
        return None
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
