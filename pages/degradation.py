from dataclasses import asdict

import streamlit as st

from explorer import ui
from explorer.paper.degradation import gap_caption
from explorer.paper.fig6 import fig6_orderings_in_words, fig6_record
from explorer.present import figures
from explorer.training.recipe import recipe_summary

st.title("Degradation lab: plain vs residual, trained live")
st.caption("The paper's Fig. 1 and Fig. 6: a deeper *plain* net ends with **higher training error** "
           "than a shallow one (an optimisation problem, not overfitting); with shortcuts the deep net "
           "trains as well as the shallow one, and given enough steps better (a minute is too short for "
           "that: see the Fig. 6 run below). All models train in lock-step on the same batches. Live "
           "chart: bold, training error over recent steps; dashed, validation error on held-out images. "
           "The two-panel replay draws them as the paper does: thin, training; bold, validation.")
slot = ui.lab_job_slot()
controls = ui.button_row()  # Stop and Resume beside the demo button: they serve any run of this session
ui.class_demo_button(slot, controls)
ui.resume_button(slot, controls)
ui.stop_button(slot, controls)
with st.expander("Your own run: models, data set, steps, seeds, augmentation"):
    make_job = ui.lab_run_form()
    ui.start_button(slot, "Start your run", make_job or (lambda: None), st, disabled=make_job is None)


# Every refresh is a figure sent to the browser and drawn there, on the cores the training
# needs (benchmarks/lab_live_cost.py): a slower refresh with fewer points leaves them to it,
# and a finished run is drawn once (ui.job_view).
@ui.report_errors
def live_view():
    if slot.job is None:
        st.info("Press **Start the class demo**, set up your own run, or replay a recorded run below.")
        return
    snapshot = slot.job.snapshot()
    ui.lab_progress(snapshot)
    if caption := gap_caption(snapshot.record):
        st.markdown(f"#### {caption}")
    st.plotly_chart(figures.training_curves_figure([snapshot.record], max_points=150), width="stretch",
                    key="live_curves")
    if snapshot.saved_to:
        st.caption(f"Saved to `{snapshot.saved_to}`; it is now in the replay list below.")


@ui.report_errors
def live_heatmaps():
    if slot.job is not None:
        ui.gradient_heatmaps(slot.job.snapshot().record, "live")


ui.job_view(slot, live_view, every_s=2.5)
ui.job_view(slot, live_heatmaps, every_s=10)  # heavier and slower-changing: refreshed rarely

st.header("Replay and overlay recorded runs")
records = ui.replay_picker()
if records:
    fig6_run, why_not = fig6_record(records)
    as_fig6 = fig6_run is not None and st.toggle(
        "Two panels, as the paper's Fig. 6 (thin: training error, bold: validation error)", value=True,
        key="lab.fig6")
    shown = fig6_run if as_fig6 else records[0]
    figure = figures.fig6_figure(fig6_run) if as_fig6 else figures.training_curves_figure(records)
    st.plotly_chart(figure, width="stretch")
    if as_fig6:  # the two orderings in words, at the run's last step (§4.2, Fig. 6)
        st.markdown("  \n".join(f"**{line}**" for line in fig6_orderings_in_words(fig6_run, records)))
    if why_not:  # run names quote the data source a student typed: shown, never rendered
        st.caption(ui.escaped(why_not))
    st.caption("Where each run departs from the paper (§4.2): " + "; ".join(
        f"{ui.escaped(record.name)}: {recipe_summary(asdict(record.config))}" for record in records) + ".")
    ui.gradient_heatmaps(shown, "replay")
    ui.run_downloads(shown, figure)
