import streamlit as st

from explorer.ui import inspect

st.title("Inspect an image")
st.caption("What does the network think this is, what does each stage *see*, and where is it looking? "
           "Upload your own photos or use the samples (CIFAR-10 validation images the shipped models never "
           "trained on).")
name, classifier = inspect.model_picker()
images = inspect.photo_picker()

st.subheader("What the network thinks")
predictions = inspect.predictions_grid(classifier, images)

st.subheader("A closer look")
focus = inspect.image_choice(images)
target = inspect.class_choice(classifier, predictions[focus][0].label)
cams_tab, features_tab, gradients_tab = inspect.closer_looks()
stage = None
if cams_tab.open:
    with cams_tab:
        inspect.grad_cam_tab(classifier, images[focus], target)
if features_tab.open:
    with features_tab:
        stage = inspect.feature_maps_tab(classifier, images[focus])
if gradients_tab.open:
    with gradients_tab:
        inspect.gradients_tab(name, images[focus], target)
inspect.share_view(name, focus, target, stage)
