"""The transfer page's sections: the random-erasing preview, the fine-tuning settings, the
live view of a fine-tuning job, and saving, reloading and classifying with its result."""

from __future__ import annotations

import streamlit as st

from explorer.data import Augmentation
from explorer.data.images import read_image_file, sample_images
from explorer.models.heads import HEADS
from explorer.present import figures
from explorer.server.snapshots import JobState
from explorer.store.checkpoints import CheckpointError, finetuned_dir
from explorer.store.classifiers import ClassifierError
from explorer.transfer.finetune import (
    FinetuneConfig,
    TrainPart,
    backbone_names,
    cache_explanation,
    default_upsample,
    erasing_preview_of_samples,
    save_finetuned,
    suggested_key,
)
from explorer.ui.classifiers import classifier, classifier_choices, prediction_card, read_uploads
from explorer.ui.common import escaped, report_errors
from explorer.ui.inputs import dataset_picker, erasing_controls
from explorer.ui.job_panel import JobSlot, job_view, limit_notice

# What a student reads beside each choice of what learns; a config saves the TrainPart itself.
TRAIN_LABELS = {TrainPart.HEAD: "head", TrainPart.LAST_STAGE: "last stage", TrainPart.ALL: "all"}


def erasing_preview() -> None:
    """Random erasing applied to the samples, new boxes on every press."""
    st.caption("Random erasing (Zhong et al. 2017) blanks out a random rectangle of a training image, so "
               "the network cannot rely on any one part of an object. This is "
               "`torchvision.transforms.v2.RandomErasing` exactly as the lab and fine-tuning apply it, "
               "after normalisation: each press of the button draws new boxes.")
    preview_augmentation = erasing_controls("preview", default_p=1.0)
    st.button("Draw new boxes")
    names, originals, erased = erasing_preview_of_samples(preview_augmentation)
    for title, batch in (("Before", originals), ("After random erasing", erased)):
        st.markdown(f"**{title}**")
        st.image([image.permute(1, 2, 0).numpy() for image in batch], caption=names, width=72)


def finetune_settings() -> FinetuneConfig:
    """The backbone, data, head and schedule; stops the page when no backbone is usable."""
    choices = classifier_choices()
    try:
        backbones = backbone_names()
    except CheckpointError as error:
        st.error(f"The project's checkpoints cannot be read: {escaped(error)}")
        st.stop()
    if not backbones:
        st.error("No backbone with trained weights here: the shipped checkpoints are missing from "
                 "pretrained/ and no ImageNet weights were found (`python -m explorer weights download resnet50`).")
        st.stop()
    left, right = st.columns(2)
    backbone = left.selectbox("Backbone", backbones, format_func=lambda name: choices.get(name, name),
                              help="ImageNet ResNets when their weights are here, else the project's CIFAR-10 models.")
    data = dataset_picker(right, backbone)

    upsample = left.select_slider("Upsampling factor", [1, 2, 3, 4, 5, 6, 7], default_upsample(backbone),
                                  help="Images are decoded at 32×32 and enlarged by this factor: ImageNet "
                                       "backbones expect 224×224 (factor 7); the CIFAR models 32×32 (factor 1).")
    left.caption(f"The backbone sees {32 * upsample}×{32 * upsample} images.")
    train = left.radio("What to train", list(TrainPart), format_func=TRAIN_LABELS.__getitem__, horizontal=True,
                       help="head: the backbone stays frozen (fast, features cached). last stage: also the "
                            "backbone's last stage. all: every layer (slowest).")
    head = right.radio("Head", HEADS, horizontal=True, format_func={
        "linear": "linear (one fc layer, as the paper)",
        "seed": "BN-Dense-Dropout (the usual notebook's)"}.get)
    epochs = right.number_input("Epochs", 1, 200, 5)
    with st.expander("More settings"):
        columns = st.columns(3)
        batch_size = columns[0].number_input("Batch size", 1, 1024, 128)
        lr = columns[1].number_input("Learning rate (Adam)", 1e-6, 1.0, 1e-2, format="%.4f")
        limit = columns[2].number_input("Training images (0 = all)", 0, 1_000_000, 0, step=1000,
                                        help="A quicker demo on a large data set: a random subset of this size.")
        cache = st.checkbox("Cache the backbone's features when only the head trains", True)
        # Only random erasing here: the lab's crop and flip are for training from scratch (§4.2).
        augmentation = erasing_controls("finetune", base=Augmentation(pad=0, flip=False))

    config = FinetuneConfig(backbone=backbone, data=data or "", upsample=upsample, train=train, head=head,
                            epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), cache_features=cache,
                            augmentation=augmentation, train_limit=int(limit) or None)
    st.caption(cache_explanation(config))
    return config


def finetune_live_view(slot: JobSlot) -> None:
    """Progress and curves of the session's fine-tuning job, refreshed twice a second while it
    runs (a head trains in seconds) and drawn once otherwise."""
    @report_errors
    def live_view():
        job = slot.job
        if job is None:
            st.info("Choose a backbone and a data set, then press **Start fine-tuning**.")
            return
        snapshot = job.snapshot()
        if snapshot.state in (JobState.QUEUED, JobState.LOADING) or snapshot.last is not None:
            st.progress(snapshot.fraction, text=snapshot.progress_text(job.config.epochs, running=job.running))
        limit_notice(snapshot)  # stopped by the server's time limit
        if snapshot.error:
            st.error(f"Fine-tuning failed: {escaped(snapshot.error)}")  # it may quote a folder
        if snapshot.history:
            st.plotly_chart(figures.finetune_curves_figure(snapshot.history), width="stretch", key="finetune_curves")

    job_view(slot, live_view, every_s=0.5)  # when the run ends, the page reruns and the save section appears


def save_section(slot: JobSlot) -> None:
    """After a run: its validation accuracy and a Save button (safetensors + manifest entry)."""
    snapshot = slot.job.snapshot() if slot.job is not None and not slot.running else None
    result = snapshot.result if snapshot is not None else None
    if result is not None and result.epochs_done:
        st.subheader("Save, reload and classify")
        classes = len(result.classes)
        st.markdown(f"#### Validation accuracy after {result.epochs_done} epochs: {100 * result.val_accuracy:.1f}% "
                    f"(chance with {classes} classes: {100 / classes:.0f}%)")
        st.caption(f"{result.wall_time_s:.0f} s on {result.device}. Saved models are safetensors with a manifest "
                   f"entry in `{finetuned_dir()}`; they appear on the inspect page too. A name already taken is "
                   "refused, never replaced: the box suggests a free one.")
        key = st.text_input("Name", suggested_key(slot.job.config), max_chars=80)
        if st.button("Save"):
            try:
                entry = save_finetuned(result, slot.job.config, key)
                st.session_state["saved_finetune"] = entry.key
            except (ValueError, OSError) as error:  # NameTakenError says which name is free
                st.error(f"Not saved: {escaped(error)} Your fine-tuned model is kept: change the name and "
                         "press Save again.")
    elif snapshot is not None and snapshot.state == JobState.STOPPED:
        st.warning("Stopped before the first epoch ended: nothing to save.")


def reload_and_classify() -> None:
    """The saved model reloaded from disk (hash and architecture checked), classifying a photo."""
    saved = st.session_state.get("saved_finetune")
    if saved is None:
        return
    st.success(f"Saved as **{escaped(saved)}**. Reloaded from disk (hash and architecture checked) to classify "
               "below.")
    try:
        reloaded = classifier(saved)
    except (ClassifierError, ValueError) as error:
        st.error(f"{escaped(saved)} cannot be reloaded: {escaped(error)}")
        st.stop()
    photo = st.file_uploader("A photo to classify", type=["jpg", "jpeg", "png", "webp", "bmp", "gif"],
                             key="finetune_photo")
    if photo is None:
        image = read_image_file(sample_images()["cat"])
    else:  # through the session's decoded photos: decoded once, kept small, errors shown by read_uploads
        image = read_uploads([photo], shelf="transfer").get(photo.name)
        if image is None:
            st.stop()
    label = f"{photo.name if photo else 'a sample'} ({reloaded.input_size}×{reloaded.input_size}, the training preprocessing)"
    prediction_card(reloaded, image, label, reloaded.predict([image], topk=5)[0], key="finetune_top5")
