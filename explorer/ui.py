"""The only module besides app.py that imports Streamlit: cached loaders and shared widgets.

Cached objects are shared by every session of the server, so they are immutable (frozen
dataclasses) and computed on the meta device; nothing here trains or mutates a model.
"""

from __future__ import annotations

import functools
import logging
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
import torch

from explorer import architecture, devices, diagrams, weights
from explorer.checkpoints import CheckpointError, best_checkpoints, dataset_tag, finetuned_dir, trained_label
from explorer.isolation import run_isolated
from explorer.models import get_model_spec, model_names

DEVICE_KEY = "device"
_LOG = logging.getLogger("explorer")
# Tests set this so that AppTest still sees a page's exception after the message is shown.
RAISE_ERRORS_ENV = "EXPLORER_RAISE_ERRORS"
REPORT_LABEL = "Report this problem"


def keep_form_state(prefix: str) -> None:
    """Keep the values of every widget whose key starts with ``prefix`` across page switches.

    Streamlit forgets a widget's value once a run of another page does not draw it; writing
    the value back as plain session state on every run (before any page draws) keeps it."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        st.session_state[key] = st.session_state[key]


def report_errors(render: Callable[[], None]) -> Callable[[], None]:
    """Wrap a page run or a fragment: an unexpected exception becomes a short message and a
    collapsed report (the traceback, for a bug report) instead of a traceback on the
    projector; the server log keeps the full traceback. Streamlit's own st.stop/st.rerun
    are BaseExceptions and pass through."""
    @functools.wraps(render)
    def guarded() -> None:
        try:
            render()
        except Exception as error:  # noqa: BLE001 - shown to the user, logged in full
            _LOG.exception("Unhandled error in %s", getattr(render, "__qualname__", render))
            summary = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            st.error(f"Something went wrong here: **{type(error).__name__}**{': ' + summary if summary else ''}. "
                     "The rest of the app still works; change a setting or reload the page to try again.")
            with st.expander(REPORT_LABEL):
                st.caption("Paste this into a bug report. The server's log has the same traceback.")
                st.code(traceback.format_exc(), language="text")
            if os.environ.get(RAISE_ERRORS_ENV):
                raise
    return guarded


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to explorer/, as st.Page resolves it
    title: str
    icon: str
    summary: str  # the home page's line about it


# The navigation (app.py) and the home page's list, in one place.
PAGES = (
    PageInfo("../pages/home.py", "Home", ":material/home:", ""),
    PageInfo("../pages/architecture.py", "Architecture", ":material/account_tree:",
             "The paper's Table 1 regenerated from live PyTorch models; parameters and multiply-adds "
             "of ResNet-18…152, their plain counterparts and VGG-19 (Fig. 3); block diagrams drawn "
             "from the real modules; load and time every depth on this machine."),
    PageInfo("../pages/degradation.py", "Degradation lab", ":material/trending_down:",
             "Plain and residual CIFAR nets (§4.2) trained live, side by side on the same batches: "
             "watch plain-56 end up *worse* than plain-20 on training error within a minute, while "
             "shortcuts fix it; per-layer gradient norms; replay of recorded runs."),
    PageInfo("../pages/inspect_image.py", "Inspect an image", ":material/image_search:",
             "Upload photos (or use the samples): the top-5 classes of a trained ResNet, the feature "
             "maps of any stage or block, Grad-CAM at the end of every stage, and the gradient reaching "
             "each layer of a plain and a residual net of the same depth."),
    PageInfo("../pages/transfer.py", "Transfer learning", ":material/model_training:",
             "Fine-tune a trained ResNet on new images (CIFAR-10, a folder, or a zip you upload): a new "
             "head on frozen, cached features trains in seconds; save it, reload it and classify a photo. "
             "Plus a preview of random-erasing augmentation."),
)


def device_picker() -> None:
    """Sidebar: the device in use, cuda → mps → cpu by default, with an override."""
    options = devices.available_devices()
    if st.session_state.get(DEVICE_KEY) not in options:
        st.session_state[DEVICE_KEY] = options[0]
    st.sidebar.selectbox(
        "Device", options, key=DEVICE_KEY,
        help="Where models run. The best one found is chosen first: CUDA GPU, then Apple MPS, then CPU.",
    )
    device = current_device()
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    st.sidebar.caption(f"Running on **{label}** · PyTorch {torch.__version__}")


def current_device() -> torch.device:
    return devices.pick_device(st.session_state.get(DEVICE_KEY))


# Measurements that patch process-wide PyTorch state (FlopCounterMode's global hooks,
# torch.fx tracing) run in the isolation worker, never in a thread of this server.

@st.cache_resource(show_spinner="Measuring the model on PyTorch's meta device…")
def analysis(name: str) -> architecture.Analysis:
    return run_isolated(architecture.analyze, name)


@st.cache_resource(show_spinner="Measuring every registered model…")
def zoo_rows(family: str = "imagenet") -> list[architecture.ZooRow]:
    return run_isolated(architecture.zoo_rows, family)


@st.cache_resource(show_spinner="Building Table 1 from the live models…")
def paper_table(names: tuple[str, ...]) -> dict[str, list[str]]:
    return run_isolated(architecture.paper_table, list(names))


@st.cache_resource(show_spinner="Tracing the blocks with torch.fx…")
def block_diagrams(name: str) -> list[diagrams.BlockDiagram]:
    return run_isolated(diagrams.block_diagrams, name)


def weights_label(name: str) -> str:
    """How a model is labelled everywhere: trained weights present, or untrained."""
    status = weights.weights_status(get_model_spec(name))
    if status.present:
        return "ImageNet weights"
    return "untrained (weights missing)" if status.filename else "untrained (none published)"


def untrained_banner(names: list[str]) -> None:
    """A banner when some models would run with random weights, with the exact fix."""
    statuses = [weights.weights_status(get_model_spec(name)) for name in names]
    missing = [s for s in statuses if s.filename and not s.present]
    if not missing:
        return
    missing_names = " ".join(s.name for s in missing)
    st.warning(
        f"**No ImageNet weights found for {missing_names.replace(' ', ', ')}: these models are untrained** "
        "(random initialisation). Architecture numbers are exact regardless; predictions "
        "would be meaningless.\n\n"
        f"To get the weights, run `python -m explorer weights download {missing_names}` "
        f"or copy torchvision's files (e.g. `{missing[0].filename}`) into "
        f"`{weights.pretrained_dir()}` or `{weights.hub_checkpoint_dir()}`.",
        icon="⚠️",
    )


def zoo_table(rows: list[architecture.ZooRow]) -> list[dict]:
    """Zoo rows as display records, with each model's trained/untrained label."""
    return [{
        "model": row.name,
        "depth": row.depth,
        "block": row.block,
        "params (M)": round(row.params / 1e6, 2),
        "GMACs (measured)": round(row.gmacs, 2),
        "GMACs (paper)": row.paper_gmacs,
        "ImageNet top-1 % (torchvision weights)": row.imagenet_top1,
        "top-1 error % (paper)": row.paper_top1_error,
        "weights here": weights_label(row.name),
    } for row in rows]


def cifar_zoo_table(rows: list[architecture.ZooRow]) -> list[dict]:
    """The §4.2 nets against Table 6 (option A shortcuts, 16/32/64 filters, 32×32 input),
    with the validation error of this project's own checkpoints (from the manifest)."""
    try:
        trained = best_checkpoints()
    except CheckpointError:
        trained = {}  # a broken manifest must not take the architecture page down
    return [{
        "model": row.name,
        "depth": row.depth,
        "shortcuts": "none (plain)" if row.block == "plain" else "identity / zero-padding (A)",
        "params (M)": round(row.params / 1e6, 3),
        "params (M, Table 6)": row.paper_params_m,
        "MMACs (32×32)": round(row.gmacs * 1e3, 1),
        "CIFAR-10 test error % (Table 6)": row.paper_top1_error,
        "validation error here (pretrained/)": trained_label(trained.get(row.name)),
    } for row in rows]


def stage_table(result: architecture.Analysis) -> list[dict]:
    return [{"layer name": r.stage, "output size": r.output_size, "blocks": r.blocks,
             "params": f"{r.params:,}", "GMACs": round(r.macs / 1e9, 3)} for r in result.stages]


def layer_table(result: architecture.Analysis) -> list[dict]:
    return [{"layer": r.name, "type": r.kind, "output shape": "×".join(map(str, r.output_shape)),
             "params": r.params, "MMACs": round(r.macs / 1e6, 2)} for r in result.layers]


def speed_table(rows: list) -> list[dict]:
    return [{
        "model": r.name, "device": r.device,
        "weights": "ImageNet" if r.trained else "untrained (random init)",
        "load (s)": round(r.load_s, 2), "weights (MB)": round(r.weights_mb, 1),
        "peak GPU memory (MB)": None if r.peak_memory_mb is None else round(r.peak_memory_mb, 1),
        "batch-1 latency (ms)": round(r.latency_ms, 1),
        f"batch-{r.batch_size} throughput (img/s)": round(r.throughput, 1),
    } for r in rows]


# --- inspect page -----------------------------------------------------------------------


def classifier_choices() -> dict[str, str]:
    """name -> label for the model picker: trained classifiers first (the best shipped
    checkpoint is the default), then the ImageNet models whose weights are missing."""
    from explorer.checkpoints import read_manifest
    from explorer.classify import classifier_names, untrained_classifier_names

    try:
        entries, names = {**read_manifest(finetuned_dir()), **read_manifest()}, classifier_names()
    except CheckpointError as error:  # a broken manifest hides the checkpoints, not the page
        st.error(f"The project's checkpoints are hidden: {error}")
        entries, names = {}, [n for n in model_names("imagenet") if weights.find_weights(get_model_spec(n))]
    choices = {}
    for name in names:
        entry = entries.get(name)
        if entry is None:
            choices[name] = f"{name} (ImageNet weights)"
        elif entry.kind == "finetuned":
            accuracy = "" if entry.val_error is None else f", {100 * (1 - entry.val_error):.1f}% validation accuracy"
            choices[name] = f"{name} (fine-tuned here on {dataset_tag(entry.config['data'])}{accuracy})"
        else:
            error = "" if entry.val_error is None else f", {100 * entry.val_error:.1f}% validation error"
            choices[name] = f"{name} (trained here on {dataset_tag(entry.config['data'])}{error})"
    for name in untrained_classifier_names():
        choices[name] = f"{name} (untrained: no ImageNet weights here)"
    return choices


def shipped_checkpoints() -> set[str]:
    """Keys of the project's own checkpoints (pretrained/manifest.json); empty if unreadable."""
    from explorer.checkpoints import read_manifest

    try:
        return set(read_manifest())
    except CheckpointError:
        return set()


def _classifier_fingerprint(name: str) -> str:
    """Changes when the files behind ``name`` change, so a retrained model is reloaded."""
    from explorer.checkpoints import read_manifest

    entry = read_manifest().get(name) or read_manifest(finetuned_dir()).get(name)
    if entry is not None:
        return entry.sha256
    return str(weights.find_weights(get_model_spec(name)))


def classifier(name: str):
    """The shared, frozen classifier for ``name`` on the session's device."""
    return _cached_classifier(name, str(current_device()), _classifier_fingerprint(name))


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _cached_classifier(name: str, device: str, fingerprint: str):
    from explorer.classify import load_classifier

    return load_classifier(name, device=device, allow_untrained=True)


# --- degradation lab --------------------------------------------------------------------


class JobSlot:
    """This session's training job; released (and the job stopped) when the tab closes."""

    def __init__(self):
        self.job = None

    def replace(self, job) -> None:
        self.release()
        self.job = job

    def release(self) -> None:
        if self.job is not None:
            self.job.stop()


def start_stop_controls(slot: JobSlot, label: str, make_job, *, disabled: bool = False,
                        resumable: bool = False) -> bool:
    """Start and Stop buttons for the session's background job (and, with ``resumable``, a
    Resume button for a stopped run). Start is disabled while a job runs (stop it first),
    Stop while none does. ``make_job`` builds the job (a ValueError, i.e. a bad setting, is
    shown to the user); True when a job was started."""
    if resumable:
        start, resume, stop = st.columns([1, 1, 4])
    else:
        (start, stop), resume = st.columns([1, 5]), None
    started = False
    running = slot.job is not None and slot.job.running
    if start.button(label, type="primary", disabled=disabled or running,
                    help="A run is going: stop it first." if running else None):
        try:
            job = make_job()
            devices.leave_one_core_for_the_ui()
            slot.replace(job.start())
            started = True
        except ValueError as error:
            st.error(str(error))
    if resume is not None and slot.job is not None and slot.job.can_resume:
        if resume.button("Resume", help="Continue the stopped run exactly where it stopped."):
            devices.leave_one_core_for_the_ui()
            slot.job = slot.job.resumed().start()
            started = True
    if stop.button("Stop", disabled=not running):
        slot.job.stop()
        slot.job.join(timeout=10)  # the current step ends first, so the page redraws with Resume
    return started


def class_demo_button(slot: JobSlot) -> None:
    """One click: the class demo (the four nets of Fig. 1 and 6) on real CIFAR-10 when it is
    here, else the synthetic set; with the demo's sizes stated beside it."""
    from explorer.jobs import TrainingJob
    from explorer.lab import class_demo_config
    from explorer.runs import user_runs_dir

    demo = class_demo_config()
    on = "the synthetic set" if demo.data.startswith("synthetic") else "CIFAR-10"
    if st.button(f"▶ Start the class demo: plain-20, plain-56, ResNet-20 and ResNet-56 on {on}", type="primary",
                 disabled=slot.job is not None and slot.job.running):
        devices.leave_one_core_for_the_ui()
        slot.replace(TrainingJob(demo, device=current_device(), name="class-demo", save_dir=user_runs_dir()).start())
    st.caption(f"The demo's nets have the paper's depths and shortcuts, made small to train in about a minute "
               f"on a laptop: {demo.width} filters in the first stage (the paper: 16), {demo.image_size}×"
               f"{demo.image_size} images (the paper: 32×32), batches of {demo.batch_size} (the paper: 128), "
               f"{demo.steps:,} steps (the paper: 64,000), {len(demo.classes)} classes of {on} "
               f"({', '.join(demo.classes)}).")


def lab_run_form():
    """The lab's settings for a run of one's own; returns what builds its job (for
    :func:`start_stop_controls`), or None while the data set is not chosen. The values
    survive page switches (keys under "lab.", see keep_form_state)."""
    from explorer.jobs import TrainingJob
    from explorer.lab import CLASS_DEMO_MODELS
    from explorer.models import model_names
    from explorer.runs import user_runs_dir
    from explorer.train import preset

    presets = {"Class demo (small nets, about a minute)": "demo", "Paper recipe §4.2 (64k steps: hours)": "paper"}
    # Defaults live in session state, not in the widgets, so keep_form_state can carry the values.
    for key, value in (("lab.models", list(CLASS_DEMO_MODELS)), ("lab.steps", preset("demo").steps),
                       ("lab.seed", 0), ("lab.repeat", 1)):
        st.session_state.setdefault(key, value)

    def preset_changed() -> None:  # a new preset brings its own step count
        st.session_state["lab.steps"] = preset(presets[st.session_state["lab.preset"]]).steps

    left, right = st.columns(2)
    chosen = presets[left.radio("Preset", list(presets), key="lab.preset", on_change=preset_changed)]
    models = right.multiselect("Models", model_names("cifar"), key="lab.models")
    data = lab_dataset_picker(left)
    shortcut = right.radio("Shortcut where shapes change", ["A", "B"], horizontal=True, key="lab.shortcut",
                           help="A: zero-padding identity, no parameters (the paper's CIFAR choice). B: 1×1 projection.")
    steps = left.number_input("Steps", 1, 64_000, step=100, key="lab.steps")
    seed = left.number_input("Seed", 0, 10_000, key="lab.seed", help="Initial weights, data order and "
                             "augmentation. Try another seed to see which differences are real and which are luck.")
    repeat = left.number_input("Seeds per model", 1, 5, key="lab.repeat", help="Train every model with this "
                               "many seeds (seed, seed + 1, …) side by side; the chart draws their mean and a band.")
    with right:
        augmentation = erasing_controls("lab")
    if data is None:
        return None
    return lambda: TrainingJob(
        preset(chosen, models=tuple(models), data=data, shortcut=shortcut, steps=int(steps),
               augmentation=augmentation, seed=int(seed), repeat=int(repeat)),
        device=current_device(), name=f"{chosen}-{data}", save_dir=user_runs_dir())


@st.cache_resource(scope="session", on_release=JobSlot.release)
def lab_job_slot() -> JobSlot:
    return JobSlot()


def lab_progress(snapshot) -> None:
    """Progress bar with step count, speed and ETA for a job snapshot (or, while the data
    set loads, the images decoded so far)."""
    if snapshot.state == "loading data":
        decoded, of = snapshot.loading or (0, 0)
        once = " (a folder is decoded once, then read from the disk cache)" if str(
            snapshot.record.config.get("data", "")).startswith("folder:") else ""
        st.progress(decoded / of if of else 0.0,
                    text=f"loading data: {decoded:,} of {of:,} images{once}" if of else "loading data…")
        return
    done, total = snapshot.done_steps, snapshot.total_steps
    text = f"{snapshot.state}: step {done:,} of {total:,}"
    if snapshot.record.steps:
        text += f" · {snapshot.record.steps[-1]['images_per_s']:,.0f} images/s"
    if snapshot.eta_s is not None:
        text += f" · about {snapshot.eta_s:,.0f} s left"
    st.progress(done / total if total else 0.0, text=text)
    for message in snapshot.record.messages:
        st.warning(message)
    if snapshot.error:
        st.error(f"Training failed: {snapshot.error}")


def gradient_heatmaps(record) -> None:
    """A plain and a residual net's per-layer gradient norms side by side (§4.1's question)."""
    from explorer import figures

    plain = [m for m in record.model_names if m.startswith("plain")]
    residual = [m for m in record.model_names if m.startswith("resnet")]
    shown = [names[-1] for names in (plain, residual) if names]  # the deepest of each kind
    if not shown:
        return
    st.caption("Gradient norm of every conv/fc weight (log scale) over training: deep plain nets "
               "start with much smaller gradients in early layers; shortcuts carry them back.")
    for column, model in zip(st.columns(len(shown)), shown):
        column.plotly_chart(figures.gradient_heatmap_figure(record, model), width="stretch",
                            key=f"grad_{record.name}_{model}_{len(record.steps)}")


def run_downloads(record, figure) -> None:
    csv_column, html_column = st.columns(2)
    csv_column.download_button("Metrics as CSV", record.to_csv(), f"{record.name}.csv", "text/csv")
    html_column.download_button("Chart as HTML", figure.to_html(include_plotlyjs="cdn"),
                                f"{record.name}.html", "text/html")
    st.caption("For a PNG, use the camera icon in the chart's toolbar.")


@st.cache_resource(scope="session", on_release=JobSlot.release)
def finetune_job_slot() -> JobSlot:
    return JobSlot()


# --- shared widgets -----------------------------------------------------------------------


def erasing_controls(key: str, default_p: float = 0.0):
    """Random erasing's knobs (torchvision.transforms.v2.RandomErasing, Zhong et al. 2017):
    the same Augmentation fields in the lab, the fine-tuning page and the preview."""
    from explorer.data import Augmentation

    p = st.slider("Random erasing probability", 0.0, 1.0, default_p, 0.05, key=f"{key}.erasing_p",
                  help="Blank out one random rectangle of each training image with this probability. "
                       "0 is the paper's recipe.")
    with st.expander("Random erasing: box size, shape and fill", expanded=False):
        scale = st.slider("Box area (fraction of the image)", 0.01, 1.0, (0.02, 0.33), 0.01, key=f"{key}.erasing_scale")
        ratio = st.slider("Box aspect ratio (height / width)", 0.1, 10.0, (0.3, 3.3), 0.1, key=f"{key}.erasing_ratio")
        fill = st.radio("Fill", ["mean colour (0 after normalisation)", "random pixels"], horizontal=True,
                        key=f"{key}.erasing_fill")
    return Augmentation(erasing_p=p, erasing_scale=scale, erasing_ratio=ratio,
                        erasing_value="random" if fill.startswith("random") else 0.0)


def _remove_folder(path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@st.cache_resource(scope="session", on_release=_remove_folder)
def session_upload_dir():
    """This session's own temporary folder for unpacked uploads, deleted when the tab closes."""
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="resnet-explorer-uploads-"))


# --- images and predictions (inspect and transfer pages) ---------------------------------------


def read_uploads(uploads) -> dict:
    """name -> RGB image for each upload that reads; the others get a clear error and are skipped."""
    from explorer.images import ImageError, read_image

    images = {}
    for upload in uploads or []:
        try:
            images[upload.name] = read_image(upload.getvalue(), name=upload.name)
        except ImageError as error:
            st.error(f"**{upload.name}** was skipped: {error}")
    return images


def prediction_card(classifier, image, label: str, predictions, key: str) -> None:
    """The input the model sees (its own preprocessing) and its top classes as bars."""
    from explorer import figures

    st.image(classifier.model_input(image).permute(1, 2, 0).numpy(), caption=f"{label}: what the net sees", width=160)
    st.plotly_chart(figures.topk_figure([p.label for p in predictions], [p.probability for p in predictions]),
                    width="stretch", key=key)


def twin_classifiers(name: str) -> list:
    """The classifier for ``name`` and, for a shipped CIFAR net, its plain/residual twin of the
    same depth (§4.2's pairs); a twin that cannot load is reported and left out."""
    from explorer.classify import ClassifierError, residual_twin

    found = [classifier(name)]
    twin = residual_twin(name)
    if twin is not None:
        try:
            found.append(classifier(twin))
        except (ClassifierError, ValueError) as error:
            st.warning(f"The twin {twin} cannot be loaded: {error}")
    return found


def dataset_picker(container) -> str | None:
    """The fine-tuning data source: synthetic, CIFAR-10, a folder, or an uploaded zip of class
    folders (unpacked once per upload into the session's own folder). None until usable."""
    sources = ["Synthetic (generated, instant)", "CIFAR-10", "Folder on this machine", "Zip of class folders"]
    source = container.radio("Data set", sources)
    if source == sources[0]:
        return "synthetic:2000"
    if source == sources[1]:
        return container.text_input("CIFAR-10 source", "cifar10",
                                    help="`cifar10` downloads it with torchvision; offline, give the folder of "
                                         "JPEGs, e.g. `folder:../shared/data/cifar10/train`.").strip()
    if source == sources[2]:
        return f"folder:{container.text_input('Folder with one sub-folder per class', '../shared/data/cifar10/train').strip()}"
    return zip_source(container, "finetune_zip")


def zip_source(container, key: str) -> str | None:
    """An uploaded zip of class folders, unpacked once per upload into the session's own
    folder, as a ``folder:`` source; None until one is uploaded and usable."""
    from explorer.archives import ArchiveError, unpack_class_zip

    upload = container.file_uploader("Zip of class folders (cat/1.jpg, dog/2.jpg, …)", type=["zip"],
                                     key=key, max_upload_size=200)
    if upload is None:
        return None
    unpacked = st.session_state.get(f"unpacked_{key}")
    if unpacked is None or unpacked[0] != upload.file_id:
        try:
            unpacked = (upload.file_id, unpack_class_zip(upload.getvalue(), session_upload_dir()), None)
        except ArchiveError as error:
            unpacked = (upload.file_id, None, str(error))
        st.session_state[f"unpacked_{key}"] = unpacked
    _, archive, problem = unpacked
    if problem:
        container.error(f"**{upload.name}**: {problem}")
        return None
    ignored = f"; {len(archive.ignored)} other files ignored" if archive.ignored else ""
    more = "…" if len(archive.classes) > 8 else ""
    container.success(f"{archive.images:,} images in {len(archive.classes)} classes "
                      f"({', '.join(archive.classes[:8])}{more}){ignored}.")
    return f"folder:{archive.root}"


def lab_dataset_picker(container) -> str | None:
    """The lab's data set: real CIFAR-10 first (and by default) when it is on this machine,
    then the synthetic set, a folder, or an uploaded zip. None until a choice is usable."""
    from explorer.lab import cifar10_source

    found = cifar10_source()
    choices = {}
    if found is not None:
        where = found.removeprefix("folder:") if found.startswith("folder:") else "torchvision's download"
        choices[f"CIFAR-10 ({where})"] = found
    choices["Synthetic (generated, instant)"] = "synthetic"
    choices["A folder on this machine"] = "folder"
    choices["A zip of class folders"] = "zip"
    picked = choices[container.selectbox("Dataset", list(choices), key="lab.dataset",
                                         help="Real CIFAR-10 when it is found: $EXPLORER_CIFAR10_DIR, the "
                                              "project's ../shared/data/cifar10/train, or torchvision's cache.")]
    if picked == "folder":
        folder = container.text_input("Folder with one sub-folder per class", key="lab.folder").strip()
        return f"folder:{folder}" if folder else None
    if picked == "zip":
        return zip_source(container, "lab_zip")
    return picked
