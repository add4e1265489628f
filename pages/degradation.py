import streamlit as st

from explorer import figures, ui
from explorer.jobs import TrainingJob
from explorer.models import model_names
from explorer.runs import RunError, list_runs, load_run, user_runs_dir
from explorer.train import preset

st.title("Degradation lab: plain vs residual, trained live")
st.caption("The paper's Fig. 1 and Fig. 6: a deeper *plain* net ends with **higher training error** "
           "than a shallow one (an optimisation problem, not overfitting); with shortcuts the deeper "
           "net wins. All models train in lock-step on the same batches. Bold: training error over "
           "recent steps; dashed: validation error on held-out images.")

presets = {"Class demo — about a minute on a laptop CPU": "demo", "Paper recipe §4.2 (64k steps: hours)": "paper"}
left, right = st.columns(2)
chosen_preset = presets[left.radio("Preset", list(presets))]
models = right.multiselect("Models", model_names("cifar"), default=["plain20", "plain56", "resnet20", "resnet56"])
data = left.text_input("Dataset", "synthetic", help="`synthetic` (generated, instant), `cifar10` "
                       "(torchvision download), or `folder:PATH` with one sub-folder per class, e.g. "
                       "`folder:../shared/data/cifar10/train`.")
shortcut = right.radio("Shortcut where shapes change", ["A", "B"], horizontal=True,
                       help="A: zero-padding identity, no parameters (the paper's CIFAR choice). B: 1×1 projection.")
steps = left.number_input("Steps", 1, 64_000, preset(chosen_preset).steps, step=100)
seed = left.number_input("Seed", 0, 10_000, 0, help="Initial weights, data order and augmentation. Try another "
                         "seed to see which differences are real and which are luck.")
repeat = left.number_input("Seeds per model", 1, 5, 1, help="Train every model with this many seeds (seed, "
                           "seed + 1, …) side by side; the chart draws their mean and a min–max band.")
with right:
    augmentation = ui.erasing_controls("lab")

slot = ui.lab_job_slot()
ui.start_stop_controls(slot, "Start", lambda: TrainingJob(
    preset(chosen_preset, models=tuple(models), data=data.strip(), shortcut=shortcut, steps=int(steps),
           augmentation=augmentation, seed=int(seed), repeat=int(repeat)),
    device=ui.current_device(), name=f"{chosen_preset}-{data.strip()}", save_dir=user_runs_dir()), resumable=True)


@st.fragment(run_every=0.5)
@ui.report_errors
def live_view():
    if slot.job is None:
        st.info("Pick models and press **Start**, or replay a recorded run below.")
        return
    snapshot = slot.job.snapshot()
    ui.lab_progress(snapshot)
    st.plotly_chart(figures.training_curves_figure([snapshot.record]), width="stretch", key="live_curves")
    if snapshot.saved_to:
        st.caption(f"Saved to `{snapshot.saved_to}`; it is now in the replay list below.")


@st.fragment(run_every=3)  # heavier and slower-changing: refreshed less often, to leave the CPU to training
@ui.report_errors
def live_heatmaps():
    if slot.job is not None:
        ui.gradient_heatmaps(slot.job.snapshot().record)


live_view()
live_heatmaps()

st.header("Replay and overlay recorded runs")
runs = {path.stem: path for path in list_runs()}
picked = st.multiselect("Runs (shipped in pretrained/runs, then yours)", list(runs))
try:
    records = [load_run(runs[name]) for name in picked]
except RunError as error:
    st.error(str(error))
    records = []
if records:
    figure = figures.training_curves_figure(records)
    st.plotly_chart(figure, width="stretch")
    ui.gradient_heatmaps(records[0])
    ui.run_downloads(records[0], figure)
