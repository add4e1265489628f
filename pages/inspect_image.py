import streamlit as st

from explorer import figures, ui
from explorer.attribution import compare_gradient_norms, explain
from explorer.classify import ClassifierError
from explorer.features import feature_points, image_feature_map, most_active_channels
from explorer.images import ALLOWED_FORMATS, MAX_FILE_BYTES, read_image_file, sample_images
from explorer.models import get_model_spec

st.title("Inspect an image")
st.caption("What does the network think this is, what does each stage *see*, and where is it looking? "
           "Upload your own photos or use the samples (CIFAR-10 validation images the shipped models never "
           "trained on).")

choices = ui.classifier_choices()
if not choices:
    st.error("No model to inspect with.")
    st.stop()
name = st.selectbox("Model", list(choices), format_func=choices.get,
                    help="The project's CIFAR-10 checkpoints work offline; ImageNet ResNets need torchvision's "
                         "weight files (`python -m explorer weights download resnet50`).")
try:
    classifier = ui.classifier(name)
except (ClassifierError, ValueError) as error:  # a damaged checkpoint, a wrong architecture
    st.error(f"{name} cannot be loaded: {error}")
    st.stop()
(st.warning if not classifier.trained else st.caption)(classifier.about)

extensions = sorted({"jpg", "jpeg", *(f.lower() for f in ALLOWED_FORMATS)})
uploads = st.file_uploader("Photos", type=extensions, accept_multiple_files=True, key="uploads",
                           max_upload_size=MAX_FILE_BYTES // (1024 * 1024),
                           help="JPEG, PNG, WebP, BMP or GIF (first frame), up to 10 MB each.")
samples = sample_images()
picked = st.multiselect("Sample images", list(samples), default=[] if uploads else list(samples)[:4],
                        help="Shipped with the app, so the page is never empty.")

images = ui.read_uploads(uploads)
for sample in picked:
    images[f"sample: {sample}"] = read_image_file(samples[sample])
if not images:
    st.info("Upload a photo or pick a sample image.")
    st.stop()

st.subheader("What the network thinks")
st.caption(f"Each model sees its own input: the {classifier.input_size}×{classifier.input_size} "
           "pixels below, made with exactly its training preprocessing "
           + ("(the largest centred square, shrunk to CIFAR's 32×32)." if classifier.input_size == 32
              else "(torchvision's resize and centre crop for these weights)."))
names = list(images)
predictions = classifier.predict([images[n] for n in names], topk=5)
for row in range(0, len(names), 4):
    for column, image_name in zip(st.columns(4), names[row:row + 4]):
        with column:
            ui.prediction_card(classifier, images[image_name], image_name, predictions[names.index(image_name)],
                               key=f"top5-{image_name}")

st.subheader("A closer look")
focus = st.selectbox("Image", names)
image = images[focus]
predicted = predictions[names.index(focus)][0].label
target = st.selectbox("Explain the class", classifier.classes, index=classifier.classes.index(predicted),
                      help="Grad-CAM and the gradients are computed for this class's score; "
                           "the predicted class is chosen first.")
cams_tab, features_tab, gradients_tab = st.tabs(["Grad-CAM per stage", "Feature maps", "Gradients per layer"])

with cams_tab:
    with st.spinner("One forward and one backward pass…"):
        explanation = explain(classifier, image, target=target)
    st.plotly_chart(figures.cam_overlays_figure(
        explanation.model_input, [(f"{c.stage} ({c.layer})", c.upsampled) for c in explanation.cams]),
        width="stretch", key="cams")
    sizes = ", ".join(f"{c.stage} {c.cam.shape[0]}×{c.cam.shape[1]}" for c in explanation.cams)
    st.caption(f"Grad-CAM for **{target}** at the end of each stage (red: where the class score's gradient "
               f"and the feature map agree most). Each map has its stage's resolution ({sizes}) and is "
               "stretched over the image: deep stages say *what* and roughly where, early ones show edges.")

with features_tab:
    points = feature_points(classifier.model, get_model_spec(classifier.model_name))
    labels = {p.name: p.label for p in points}
    ends = [p.name for p in points if "end of stage" in p.label]
    left, right = st.columns([3, 1])
    point = left.selectbox("Stage or block", list(labels), format_func=labels.get, index=list(labels).index(ends[0]))
    count = right.slider("Channels", 4, 32, 16, 4)
    with st.spinner("Running the model up to that block…"):
        activation = image_feature_map(classifier, image, point)
    top = most_active_channels(activation, count)
    st.plotly_chart(figures.feature_maps_figure(top.maps, top.channels, top.mean_activation),
                    width="stretch", key="feature_maps")
    st.caption(f"`{point}` outputs {activation.shape[0]} channels of {activation.shape[1]}×{activation.shape[2]}: "
               f"the {len(top.channels)} with the highest mean activation for this image, each on its own colour scale.")

with gradients_tab:
    twins = ui.twin_classifiers(name)
    series = compare_gradient_norms(twins, image, target)
    st.plotly_chart(figures.gradient_norms_figure(series), width="stretch", key="gradient_norms")
    st.caption("‖∂ score / ∂W‖ of every conv and fc layer for this image's **" + target + "** score, input "
               "side on the left (log scale). The paper (§4.1) argues that with BatchNorm the plain nets' "
               "gradients do not vanish either: the degradation problem is about optimisation, not lost signal."
               + ("" if len(twins) > 1 else " The plain and residual twins of one depth appear side by side for the "
                  "project's CIFAR checkpoints."))
