"""Fig. 6 of the paper, as data: which nets it compares, when runs fill it, and what it shows.

§4.2, Fig. 6: training on CIFAR-10, plain nets of 20, 32, 44 and 56 layers (left) against
ResNets of the same depths (right). Deeper plain nets end with *higher* training error (the
degradation problem); deeper ResNets with *lower*. This module says which nets those are (the
"fig6" preset of :mod:`explorer.training.recipe`), whether recorded runs fill both panels,
how several runs on one schedule become one figure's record, and how each panel's nets are
ordered at a step. :func:`explorer.present.figures.fig6_figure` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from explorer.models import get_model_spec
from explorer.store.runs import Metric, RunError, RunRecord
from explorer.training.recipe import PRESETS

# Fig. 6 in full: plain and residual nets of the same four depths, trained in lock-step.
FIG6_PRESET = "fig6"
FIG6_MODELS = PRESETS[FIG6_PRESET].models

# Fig. 6 at the paper's width, on one 35,000-step recipe (README, "Shipped models and runs"):
# the shipped runs that together hold its four nets, which the lab offers as one pick.
PAPER_WIDTH_FIG6_RUNS = ("plain-cifar10-35000-steps", "resnet20-cifar10-35000-steps",
                         "resnet56-cifar10-35000-steps")


def paper_label(name: str) -> str:
    """"plain56" -> "plain-56", "resnet56" -> "ResNet-56", as the paper writes them."""
    spec = get_model_spec(name)
    return f"{'ResNet' if spec.residual else 'plain'}-{spec.depth}"


def fills_fig6(model_names: Iterable[str]) -> bool:
    """Whether these models fill both of Fig. 6's panels: two or more with shortcuts and two
    or more without."""
    kinds = [get_model_spec(m).residual for m in model_names]
    return kinds.count(True) >= 2 and kinds.count(False) >= 2


def shows_fig6(run: RunRecord) -> bool:
    """Whether a run has two or more depths both with and without shortcuts (Fig. 6's panels)."""
    return fills_fig6(run.model_names)


# What runs drawn as one Fig. 6 must share: the schedule's length and batch (so an iteration
# means the same on every curve), the data and its classes, and the seeds. The rest of the
# recipe (augmentation, optimiser details) may differ; the lab's caption names each run's.
_COMBINE_FIELDS = ("steps", "batch_size", "data", "seed", "repeat")


def combine_runs(records: list[RunRecord]) -> RunRecord:
    """Several runs of different models on one schedule, as one record: Fig. 6 compares
    plain-20/56 with ResNet-20/56 at the same iterations (§4.2), and at the paper's width a
    2-core CPU trains them in separate runs. Steps every run recorded are kept, each with
    every run's models; the first run's config stands for the shared schedule. Raises
    :class:`~explorer.store.runs.RunError` with a readable reason when the runs do not share one."""
    if len(records) < 2:
        raise RunError("Pick two or more runs to draw them as one.")
    first = records[0]
    seen: dict[str, str] = {}
    for record in records:
        for model in record.model_names:
            if model in seen:
                raise RunError(f"{model} is in both {seen[model]} and {record.name}: pick one of them.")
            seen[model] = record.name
        for key in _COMBINE_FIELDS:
            if (theirs := getattr(record.config, key)) != (ours := getattr(first.config, key)):
                raise RunError(f"{first.name} and {record.name} differ in {key.replace('_', ' ')} "
                               f"({ours} against {theirs}): only runs on one schedule can share a chart's iterations.")
        if record.classes != first.classes:
            raise RunError(f"{first.name} and {record.name} were trained on different classes.")
    by_step = [{step.step: step for step in record.steps} for record in records]
    shared = sorted(set.intersection(*(set(steps) for steps in by_step)))
    steps = [replace(by_step[0][number], models=tuple(m for steps in by_step for m in steps[number].models))
             for number in shared]
    return RunRecord(
        name=" + ".join(record.name for record in records), config=replace(first.config, models=tuple(seen)),
        environment={"combined": [record.environment for record in records]},
        layer_names={name: layers for record in records for name, layers in record.layer_names.items()},
        steps=steps, finished=all(record.finished for record in records),
        messages=[message for record in records for message in record.messages], classes=list(first.classes))


def fig6_record(records: list[RunRecord]) -> tuple[RunRecord | None, str | None]:
    """The record to draw as Fig. 6's two panels from the runs picked in the lab, and why
    there is none when the picked runs hold both panels' nets but cannot be drawn as one.

    One run with two or more depths with and without shortcuts is drawn as it is; several
    runs are combined (:func:`combine_runs`) when they share one schedule: at the paper's
    width a 2-core CPU trains plain-20/56, ResNet-20 and ResNet-56 in separate runs of the
    same 35,000 steps, which together are Fig. 6's comparison."""
    if not fills_fig6([name for record in records for name in record.model_names]):
        return None, None
    if len(records) == 1:
        return records[0], None
    try:
        combined = combine_runs(records)
    except RunError as error:
        return None, f"Not drawn as Fig. 6's two panels: {error}"
    return combined, None


@dataclass(frozen=True)
class DepthOrdering:
    """One panel of Fig. 6 at a step: each net's error, shallowest first, and whether depth
    orders them as the paper found (§4.2: deeper plain nets have higher training error,
    deeper ResNets lower)."""

    shortcuts: bool
    errors: tuple[tuple[str, float], ...]  # (model, error), by depth

    @property
    def as_in_the_paper(self) -> bool:
        values = [error for _, error in self.errors]
        pairs = list(zip(values, values[1:]))
        return len(values) >= 2 and all(deeper < shallower if self.shortcuts else deeper > shallower
                                        for shallower, deeper in pairs)

    def describe(self) -> str:
        order = (" > " if self.shortcuts else " < ") if self.as_in_the_paper else ", "
        shown = order.join(f"{paper_label(name)} {100 * error:.1f}%" for name, error in self.errors)
        return f"{'ResNets' if self.shortcuts else 'plain nets'}: {shown} " + (
            "(as in Fig. 6)" if self.as_in_the_paper else "(not yet ordered by depth)")


def depth_orderings(record: RunRecord, key: Metric = "train_error", step: int | None = None) -> list[DepthOrdering]:
    """Fig. 6's two panels, plain first, from one step of a run (default: its last) and its
    first seed: ``key`` is "train_error" (a window average) or "val_error"."""
    entries = [s for s in record.steps if step is None or s.step <= step]
    if key == "val_error":
        entries = [s for s in entries if any(m.val_error is not None for m in s.models)]
    if not entries:
        return []
    errors = {m.name: value for m in entries[-1].models
              if m.seed == record.seeds[0] and (value := getattr(m, key)) is not None and not math.isnan(value)}
    panels = []
    for shortcuts in (False, True):
        names = sorted((n for n in errors if get_model_spec(n).residual == shortcuts),
                       key=lambda n: get_model_spec(n).depth)
        if len(names) >= 2:
            panels.append(DepthOrdering(shortcuts, tuple((n, errors[n]) for n in names)))
    return panels


def fig6_orderings_in_words(record: RunRecord, records: list[RunRecord]) -> list[str]:
    """The two panels' orderings as sentences, at the run's last step: by training error, as
    Fig. 6's thin curves, except in a panel whose nets were trained with different random
    erasing (picked from different runs). Erasing raises the training error it is measured
    on (the model trains on damaged images), so such a panel is compared by validation error,
    and the sentence says why."""
    erasing = {name: r.config.augmentation.erasing_p for r in records for name in r.model_names}
    validated = {panel.shortcuts: panel for panel in depth_orderings(record, "val_error")}
    sentences = []
    for panel in depth_orderings(record):
        names = [name for name, _ in panel.errors]
        if len({erasing.get(name, 0.0) for name in names}) > 1 and panel.shortcuts in validated:
            erased = ", ".join(paper_label(name) for name in names if erasing.get(name))
            sentences.append(f"{validated[panel.shortcuts].describe()}, by validation error: {erased} trained "
                             "with random erasing, which raises its training error")
        else:
            sentences.append(f"{panel.describe()}, by training error")
    return sentences
