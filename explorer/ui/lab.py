"""The degradation lab's widgets: the one-click class demo, a run of one's own, its progress,
gradient heatmaps and downloads."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import streamlit as st

from explorer import settings
from explorer.data import DataSource, SourceKind, source_kind
from explorer.devices import resolve_amp
from explorer.models import get_model_spec, model_names
from explorer.paper import degradation
from explorer.paper.degradation import (
    CLASS_DEMO_MODELS,
    cifar10_choice,
    cifar10_source,
    data_label,
    demo_pack_source,
    gradient_caption,
)
from explorer.paper.fig6 import PAPER_WIDTH_FIG6_RUNS
from explorer.present import figures
from explorer.server import links
from explorer.server.jobs import TrainingJob
from explorer.server.snapshots import JobState
from explorer.settings import RUNS_KEPT
from explorer.store.runs import RunError, list_runs, load_run, user_runs_dir
from explorer.training.recipe import preset, recipe_summary
from explorer.ui import share as ui_links
from explorer.ui.common import current_device, escaped
from explorer.ui.inputs import allowed_source, erasing_controls, zip_source
from explorer.ui.job_panel import JobSlot, limit_notice, run_estimate_note, start_job

# The lab's presets as "Your own run" labels them.
PRESET_LABELS = {"The demo's small nets, on every class of the data set (about a minute)": "demo",
                 "Paper recipe §4.2 (64k steps: hours)": "paper", "Fig. 6 in full (eight nets, about 12 minutes)": "fig6"}


def read_lab_link() -> None:
    """Seed "Your own run" from the link the lab was opened with (once per session). Called
    from the class demo's button, the page's first widget, so that the link's notices show at
    the top of the page and not inside the collapsed expander (issue 38)."""
    ui_links.apply_lab_link({key: label for label, key in PRESET_LABELS.items()}, lab_dataset_labels())


def class_demo_button(slot: JobSlot, where) -> None:
    """One click: the class demo (the four nets of Fig. 1 and 6) on real CIFAR-10: the full
    set when it is here, else the demo pack shipped with the app (the synthetic set only when
    that is missing, and then said so); the button goes into ``where`` (the row with Resume
    and Stop), the demo's sizes and data below it, and any notice about the page's link above."""
    read_lab_link()
    demo = degradation.class_demo_config()  # looked up when called: a test shortens the demo
    data_kind = source_kind(demo.data)
    synthetic = data_kind is SourceKind.SYNTHETIC
    on = ("the synthetic set" if synthetic else
          "CIFAR-10 (shipped with the app)" if data_kind is SourceKind.PACK else "CIFAR-10")
    if where.button(f"▶ Start the class demo: plain-20, plain-56, ResNet-20 and ResNet-56 on {on}", type="primary",
                    disabled=slot.running):
        start_job(slot, TrainingJob(demo, device=current_device(), name="class-demo", save_dir=user_runs_dir()))
    st.caption(f"The demo's nets have the paper's depths and shortcuts, made small to train in about a minute "
               f"on a laptop: {demo.width} filters in the first stage (the paper: 16), {demo.image_size}×"
               f"{demo.image_size} images (the paper: 32×32), batches of {demo.batch_size} (the paper: 128), "
               f"{demo.steps:,} steps (the paper: 64,000), {len(demo.classes)} classes "
               f"({', '.join(demo.classes)})"
               + (", in bfloat16, which this computer has in hardware (the paper: 32-bit floats)"
                  if resolve_amp(demo.engine.amp, current_device()) == "bf16" else "")
               + f". Data: {escaped(data_label(demo.data))}.")
    if synthetic:
        st.warning("The real CIFAR-10 images shipped with the app (pretrained/data/cifar10-demo.safetensors) are "
                   "missing and no CIFAR-10 folder was found, so the demo trains on generated patterns. "
                   "Restore them with `git checkout pretrained/data`.")


def lab_run_form():
    """The lab's settings for a run of one's own; returns what builds its job (for
    :func:`start_button`), or None while the data set is not chosen. The values
    survive page switches (keys under "lab.", see keep_form_state)."""
    presets = PRESET_LABELS
    # Defaults live in session state, not in the widgets, so keep_form_state can carry the values.
    for key, value in (("lab.models", list(CLASS_DEMO_MODELS)), ("lab.steps", preset("demo").steps),
                       ("lab.seed", 0), ("lab.repeat", 1)):
        st.session_state.setdefault(key, value)

    def preset_changed() -> None:  # a new preset brings its own step count, nets and seed
        chosen = preset(presets[st.session_state["lab.preset"]])
        st.session_state["lab.steps"], st.session_state["lab.models"] = chosen.steps, list(chosen.models)
        st.session_state["lab.seed"] = chosen.seed

    read_lab_link()  # already read above the expander by the class demo's button: this does nothing then
    dataset_labels = lab_dataset_labels()
    left, right = st.columns(2)
    chosen = presets[left.radio("Preset", list(presets), key="lab.preset", on_change=preset_changed)]
    base = preset(chosen)
    left.caption(f"Where this preset departs from the paper (§4.2): {recipe_summary(asdict(base))}.")
    models = right.multiselect("Models", model_names("cifar"), key="lab.models")
    data = lab_dataset_picker(left)
    shortcut = right.radio("Shortcut where shapes change", ["A", "B"], horizontal=True, key="lab.shortcut",
                           help="A: zero-padding identity, no parameters (the paper's CIFAR choice). B: 1×1 projection.")
    # The boxes' bounds are explorer.settings' ranges, which the links and `train`'s flags share.
    steps = left.number_input("Steps", int(settings.STEPS.low), int(settings.STEPS.high), step=100, key="lab.steps")
    seed = left.number_input("Seed", int(settings.SEED.low), int(settings.SEED.high), key="lab.seed",
                             help="Initial weights, data order and "
                             "augmentation. Try another seed to see which differences are real and which are luck.")
    repeat = left.number_input("Seeds per model", int(settings.REPEAT.low), int(settings.REPEAT.high), key="lab.repeat",
                               help="Train every model with this "
                               "many seeds (seed, seed + 1, …) side by side; the chart draws their mean and a band.")
    with right:
        augmentation = erasing_controls("lab", base=base.augmentation)
    linked = next((key for key, label in dataset_labels.items() if label == st.session_state.get("lab.dataset")), None)
    ui_links.share_lab_link(chosen, models, linked, int(seed), int(steps))
    if data is None:
        return None
    config = preset(chosen, models=tuple(models), data=data, shortcut=shortcut, steps=int(steps),
                    augmentation=augmentation, seed=int(seed), repeat=int(repeat))
    run_estimate_note(config)  # before Start: its time here, and whether the server's time limit stops it
    return lambda: TrainingJob(config, device=current_device(), name=f"{chosen}-{data}", save_dir=user_runs_dir())


def lab_progress(snapshot) -> None:
    """Progress bar with step count, speed and ETA for a job snapshot (or, while the data
    set loads, the images decoded so far)."""
    st.progress(snapshot.fraction, text=snapshot.progress_text())
    limit_notice(snapshot)  # stopped by the server's time limit: its steps are kept
    if snapshot.state in (JobState.QUEUED, JobState.LOADING):
        return
    for message in snapshot.record.messages:
        st.warning(escaped(message))
    if snapshot.error:
        st.error(f"Training failed: {escaped(snapshot.error)}")  # it may quote a typed folder


def gradient_heatmaps(record, where: str) -> None:
    """A plain and a residual net's per-layer gradient norms side by side (§4.1's question).

    ``where`` ("live", "replay") keeps the chart keys of the same run shown twice apart; the
    keys stay the same from one refresh to the next, so a live chart is updated in place
    rather than mounted afresh in the browser (benchmarks/lab_live_cost.py)."""
    plain = [m for m in record.model_names if not get_model_spec(m).residual]
    residual = [m for m in record.model_names if get_model_spec(m).residual]
    shown = [names[-1] for names in (plain, residual) if names]  # the deepest of each kind
    if not shown:
        return
    caption = ("Gradient norm of every conv/fc weight over training (log scale, one colour scale for "
               "both, darker is smaller; with BN no gradient vanishes, §4.1).")
    if numbers := gradient_caption(record, shown):
        caption += " " + numbers
    st.caption(caption)
    for column, model, figure in zip(st.columns(len(shown)), shown, figures.gradient_heatmap_figures(record, shown)):
        column.plotly_chart(figure, width="stretch", key=f"grad_{where}_{record.name}_{model}")


def loaded_run(path: Path):
    """The run file at ``path``, parsed once per version (its mtime and size are in the cache's
    key): the lab reruns on every click, and the three 35,000-step runs are 15 MB of JSON, 4×
    slower to parse than to copy out of the cache (benchmarks/replay_load.py). Cached data is
    copied per session, so no session can change another's. RunError if it cannot be read."""
    try:
        stat = path.stat()
    except OSError as error:  # deleted or unreadable since it was listed
        raise RunError(f"Could not read the run {path}: {error.strerror}.") from error
    return _parsed_run(str(path), stat.st_mtime_ns, stat.st_size)


@st.cache_data(max_entries=32, show_spinner=False)
def _parsed_run(path: str, modified_ns: int, size: int):
    return load_run(Path(path))


def replay_picker() -> list:
    """The recorded runs picked for replay (shipped, then the user's), loaded; a button picks
    the three shipped 35,000-step runs that together are Fig. 6 at the paper's width."""
    runs = {path.stem: path for path in list_runs()}
    if all(name in runs for name in PAPER_WIDTH_FIG6_RUNS):
        st.button("Fig. 6 at the paper's width: plain-20/56 and ResNet-20/56, 35,000 steps (three shipped runs)",
                  on_click=lambda: st.session_state.update({"lab.replay": list(PAPER_WIDTH_FIG6_RUNS)}))
    picked = st.multiselect("Runs (shipped in pretrained/runs, then yours)", list(runs), key="lab.replay",
                            help=f"The lab keeps your newest {RUNS_KEPT.value()} runs (`$EXPLORER_RUNS_KEPT`) "
                                 "and deletes older ones.")
    try:
        return [loaded_run(runs[name]) for name in picked]
    except RunError as error:
        st.error(escaped(error))
        return []


def run_downloads(record, figure) -> None:
    csv_column, html_column = st.columns(2)
    csv_column.download_button("Metrics as CSV", record.to_csv(), f"{record.name}.csv", "text/csv")
    html_column.download_button("Chart as HTML", figure.to_html(include_plotlyjs="cdn"),
                                f"{record.name}.html", "text/html")
    st.caption("For a PNG, use the camera icon in the chart's toolbar.")


def lab_dataset_choices() -> dict[str, str]:
    """The lab's data-set labels -> sources, the default first ("folder" and "zip" ask for
    more): the full CIFAR-10 when it is here, the demo pack shipped with the app, the
    synthetic set, a folder, a zip."""
    found, pack = cifar10_source(), demo_pack_source()
    choices = {}
    if found is not None:
        choices[cifar10_choice(found)] = found
    if pack is not None:
        choices[data_label(pack)] = pack  # "CIFAR-10: 6,000 training images of 3 classes (+300 held out), …"
    choices["Synthetic (generated, instant)"] = "synthetic"
    choices["A folder on this machine"] = "folder"
    choices["A zip of class folders"] = "zip"
    return choices


def lab_dataset_labels() -> dict[str, str]:
    """The data sets a link may name (explorer.server.links.lab_datasets) -> their label in the picker."""
    return {key: label for label, source in lab_dataset_choices().items()
            for key, linked in links.lab_datasets().items() if source == linked}


def lab_dataset_picker(container) -> str | None:
    """The lab's data set: real CIFAR-10 first (and by default): the full set when it is on
    this machine, else the images shipped with the app; then the synthetic set, a folder, or
    an uploaded zip. None until a choice is usable; the chosen data is named below the box."""
    choices = lab_dataset_choices()
    picked = choices[container.selectbox("Dataset", list(choices), key="lab.dataset",
                                         help="The full CIFAR-10 when it is found: $EXPLORER_CIFAR10_DIR, the "
                                              "project's ../shared/data/cifar10/train, or torchvision's cache; "
                                              "else 6,300 of its images shipped in pretrained/data.")]
    if picked == "folder":
        folder = container.text_input("Folder with one sub-folder per class", key="lab.folder").strip()
        return allowed_source(container, str(DataSource.of_folder(folder))) if folder else None
    if picked == "zip":
        return zip_source(container, "lab_zip")
    container.caption(f"Data: {escaped(data_label(picked))}.")
    return picked
