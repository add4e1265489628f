"""The only package besides app.py that imports Streamlit: cached loaders and shared widgets.

Pages call ``ui.<widget>``; each concept has its own module (:mod:`.common` errors, device and
architecture caches; :mod:`.classifiers`; :mod:`.jobs`; :mod:`.lab`; :mod:`.inputs`; and one
module per page that needs more than a few widgets). Cached objects are shared by every
session of the server, so they are immutable (frozen dataclasses) and computed on the meta
device; nothing here trains or mutates a shared model.
"""

from explorer.ui.classifiers import (
    classifier,
    classifier_choices,
    prediction_card,
    read_uploads,
    twin_classifiers,
)
from explorer.ui.common import (
    DEVICE_KEY,
    RAISE_ERRORS_ENV,
    REPORT_LABEL,
    analysis,
    block_diagrams,
    current_device,
    device_picker,
    escaped,
    keep_form_state,
    paper_table,
    report_errors,
    untrained_banner,
    zoo_rows,
)
from explorer.ui.inputs import dataset_picker, erasing_controls, session_upload_dir, zip_source
from explorer.ui.job_panel import (
    JobSlot,
    button_row,
    finetune_job_slot,
    job_view,
    lab_job_slot,
    resume_button,
    start_button,
    start_stop_controls,
    stop_button,
)
from explorer.ui.lab import (
    class_demo_button,
    gradient_heatmaps,
    lab_dataset_picker,
    lab_progress,
    lab_run_form,
    replay_picker,
    run_downloads,
)

__all__ = [
    "DEVICE_KEY", "RAISE_ERRORS_ENV", "REPORT_LABEL", "JobSlot", "analysis", "block_diagrams", "button_row",
    "class_demo_button", "classifier", "classifier_choices", "current_device", "dataset_picker",
    "device_picker", "erasing_controls", "escaped", "finetune_job_slot", "gradient_heatmaps", "job_view", "keep_form_state",
    "lab_dataset_picker", "lab_job_slot", "lab_progress", "lab_run_form", "paper_table", "prediction_card",
    "read_uploads", "replay_picker", "report_errors", "resume_button", "run_downloads", "session_upload_dir",
    "start_button", "start_stop_controls", "stop_button", "twin_classifiers", "untrained_banner", "zip_source",
    "zoo_rows",
]
