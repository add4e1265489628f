import streamlit as st

from explorer import ui
from explorer.server.jobs import FinetuneJob
from explorer.ui import transfer

st.title("Transfer learning")
st.caption("Take a trained ResNet without its classifier, put a small head on top and train it on new "
           "images: the features the backbone learnt on one data set carry over to another.")
finetune_tab, erasing_tab = st.tabs(["Fine-tune a backbone", "Random erasing preview"])

with erasing_tab:
    transfer.erasing_preview()

with finetune_tab:
    config = transfer.finetune_settings()
    slot = ui.finetune_job_slot()
    ui.start_stop_controls(slot, "Start fine-tuning", lambda: FinetuneJob(config, device=ui.current_device()),
                           disabled=not config.data, on_start=lambda: st.session_state.pop("saved_finetune", None))
    transfer.finetune_live_view(slot)
    transfer.save_section(slot)
    transfer.reload_and_classify()
