"""The inspect page's sections: pick a model and photos, show predictions, and the three
closer looks (Grad-CAM per stage, feature maps, gradients per layer)."""

from __future__ import annotations

import streamlit as st

from explorer import settings
from explorer.data.images import ALLOWED_FORMATS, read_image_file, sample_images
from explorer.models import get_model_spec
from explorer.paper.features import feature_points, image_feature_map, most_active_channels
from explorer.paper.gradcam import compare_gradient_norms, explain
from explorer.present import figures
from explorer.server import links
from explorer.store.classifiers import ClassifierError
from explorer.ui import share as ui_links
from explorer.ui.classifiers import classifier, classifier_choices, prediction_card, read_uploads, twin_classifiers
from explorer.ui.common import escaped

LOOKS = ("Grad-CAM per stage", "Feature maps", "Gradients per layer")  # links name them links.INSPECT_LOOKS
LOOK_KEY = "inspect.look"


def _classes_of(name: str) -> list[str]:
    return list(classifier(name).classes)


def _stages_of(name: str) -> list[str]:
    chosen = classifier(name)
    return [p.name for p in feature_points(chosen.model, get_model_spec(chosen.model_name))]


def model_picker():
    """(name, shared classifier) of the chosen model; stops the page with a message if none loads."""
    choices = classifier_choices()
    if not choices:
        st.error("No model to inspect with.")
        st.stop()
    link = ui_links.apply_inspect_link(list(choices), list(sample_images()), classes_of=_classes_of,
                                       stages_of=_stages_of)
    if link is not None and link.look is not None:
        st.session_state[LOOK_KEY] = LOOKS[links.INSPECT_LOOKS.index(link.look)]
    name = st.selectbox("Model", list(choices), format_func=choices.get, key="inspect.model",
                        help="The project's CIFAR-10 checkpoints work offline; ImageNet ResNets need torchvision's "
                             "weight files (`python -m explorer weights download resnet50`).")
    try:
        chosen = classifier(name)
    except (ClassifierError, ValueError) as error:  # a damaged checkpoint, a wrong architecture
        st.error(f"{escaped(name)} cannot be loaded: {escaped(error)}")
        st.stop()
    (st.warning if not chosen.trained else st.caption)(escaped(chosen.about))  # names a fine-tune's folder
    return name, chosen


def photo_picker() -> dict:
    """label -> RGB image: the user's uploads (see read_uploads: decoded once, kept small,
    at most settings.UPLOAD_PHOTOS of them), then the chosen samples; stops the page when empty."""
    extensions = sorted({"jpg", "jpeg", *(f.lower() for f in ALLOWED_FORMATS)})
    most, megabytes = settings.UPLOAD_PHOTOS.value(), settings.IMAGE_FILE.value()
    uploads = st.file_uploader("Photos", type=extensions, accept_multiple_files=True, key="uploads",
                               max_upload_size=megabytes,
                               help=f"JPEG, PNG, WebP, BMP or GIF (first frame), up to {megabytes} MB each "
                                    f"and {most} at a time.")
    samples = sample_images()
    default = st.session_state.get("inspect.linked_samples") or ([] if uploads else list(samples)[:4])
    picked = st.multiselect("Sample images", list(samples), default=default,
                            help="Shipped with the app, so the page is never empty.")
    images = read_uploads(uploads)
    for sample in picked:
        images[f"sample: {sample}"] = read_image_file(samples[sample])
    if not images:
        st.info("Upload a photo or pick a sample image.")
        st.stop()
    return images


def predictions_grid(chosen, images: dict) -> dict:
    """Top-5 cards, four per row; returns label -> predictions."""
    st.caption(f"Each model sees its own input: the {chosen.input_size}×{chosen.input_size} "
               "pixels below, made with exactly its training preprocessing "
               + ("(the largest centred square, shrunk to CIFAR's 32×32)." if chosen.input_size == 32
                  else "(torchvision's resize and centre crop for these weights)."))
    names = list(images)
    caveat = chosen.source.photo_caveat()
    if caveat and any(not name.startswith("sample: ") for name in names):  # a photo of the user's own
        st.warning(caveat, icon="ℹ️")
    predictions = dict(zip(names, chosen.predict([images[n] for n in names], topk=5)))
    for row in range(0, len(names), 4):
        for column, image_name in zip(st.columns(4), names[row:row + 4]):
            with column:
                prediction_card(chosen, images[image_name], image_name, predictions[image_name], key=f"top5-{image_name}")
    return predictions


def grad_cam_tab(chosen, image, target: str) -> None:
    with st.spinner("One forward and one backward pass…"):
        explanation = explain(chosen, image, target=target)
    st.plotly_chart(figures.cam_overlays_figure(
        explanation.model_input, [(c.title, c.upsampled) for c in explanation.cams]), width="stretch", key="cams")
    sizes = ", ".join(f"{c.stage} {c.cam.shape[0]}×{c.cam.shape[1]}" for c in explanation.cams)
    empty = [c.stage for c in explanation.cams if c.empty]
    why = ("features this early are not yet about any class" if not explanation.cams[-1].empty
           else f"nothing the net sees there speaks for {escaped(target)}")
    st.caption(f"Grad-CAM for **{escaped(target)}** at the end of each stage (red: where the class score's gradient "
               f"and the feature map agree most). Each map has its stage's resolution ({sizes}), is "
               "stretched over the image and scaled to its own peak: deep stages say *what* and roughly where, "
               "early ones show edges."
               + (f" **{' and '.join(empty)}: empty.** There the weighted feature maps lower the score of "
                  f"{escaped(target)} everywhere, and Grad-CAM keeps only what raises it: {why}." if empty else ""))


def feature_maps_tab(chosen, image) -> str:
    points = feature_points(chosen.model, get_model_spec(chosen.model_name))
    labels = {p.name: p.label for p in points}
    first_end = next(p.name for p in points if p.stage_end)
    left, right = st.columns([3, 1])
    if st.session_state.get("inspect.stage") not in labels:
        st.session_state["inspect.stage"] = first_end
    point = left.selectbox("Stage or block", list(labels), format_func=labels.get, key="inspect.stage")
    st.session_state.setdefault("inspect.channels", 16)  # in session state, so keep_form_state carries it
    count = right.slider("Channels", 4, 32, step=4, key="inspect.channels")
    with st.spinner("Running the model up to that block…"):
        activation = image_feature_map(chosen, image, point)
    top = most_active_channels(activation, count)
    st.plotly_chart(figures.feature_maps_figure(top.maps, top.channels, top.mean_activation),
                    width="stretch", key="feature_maps")
    st.caption(f"`{point}` outputs {activation.shape[0]} channels of {activation.shape[1]}×{activation.shape[2]}: "
               f"the {len(top.channels)} with the highest mean activation for this image, each on its own colour scale.")
    return point


def gradients_tab(name: str, image, target: str) -> None:
    twins = twin_classifiers(name)
    series = compare_gradient_norms(twins, image, target)
    st.plotly_chart(figures.gradient_norms_figure(series), width="stretch", key="gradient_norms")
    st.caption("‖∂ score / ∂W‖ of every conv and fc layer for this image's **" + escaped(target) + "** score, input "
               "side on the left (log scale). The paper (§4.1) argues that with BatchNorm the plain nets' "
               "gradients do not vanish either: the degradation problem is about optimisation, not lost signal."
               + ("" if len(twins) > 1 else " The plain and residual twins of one depth appear side by side for the "
                  "project's CIFAR checkpoints."))


def closer_looks():
    """The three closer looks as tabs of which only the open one computes: switching tabs
    reruns the page, so a visit costs the server one look's passes and figures instead of
    all three, and the browser draws one of the three charts (README, "Shared answers")."""
    return st.tabs(list(LOOKS), key=LOOK_KEY, on_change="rerun")


def image_choice(images: dict) -> str:
    if st.session_state.get("inspect.focus") not in images:
        st.session_state["inspect.focus"] = next(iter(images))
    return st.selectbox("Image", list(images), key="inspect.focus")


def class_choice(chosen, predicted: str) -> str:
    """The class to explain: the predicted one first, or the one a link named."""
    # A new image (or model) starts from its own predicted class, or the class its link named.
    shown_for = (chosen.name, predicted)
    if st.session_state.get("inspect.target_for") != shown_for:
        linked = st.session_state.pop("inspect.linked_target", None)
        st.session_state["inspect.target"] = linked if linked in chosen.classes else predicted
        st.session_state["inspect.target_for"] = shown_for
    elif st.session_state.get("inspect.target") not in chosen.classes:
        st.session_state["inspect.target"] = predicted
    return st.selectbox("Explain the class", list(chosen.classes), key="inspect.target",
                        help="Grad-CAM and the gradients are computed for this class's score; "
                             "the predicted class is chosen first.")


def share_view(name: str, focus: str, target: str, stage: str | None) -> None:
    """The view into the address bar: the open look unless it is the first, and ``stage``
    only while the feature maps are open (a link with a stage opens them)."""
    open_look = st.session_state.get(LOOK_KEY, LOOKS[0])
    look = links.INSPECT_LOOKS[LOOKS.index(open_look)] if open_look in LOOKS[1:] else None
    ui_links.share_inspect_link(name, focus, target, stage, look)
