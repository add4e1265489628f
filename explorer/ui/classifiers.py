"""The shared classifiers (one frozen model per name and device, for every session) and the
widgets that show what they predict."""

from __future__ import annotations

import streamlit as st

from explorer.checkpoints import CheckpointError
from explorer.ui.common import current_device


def classifier_choices() -> dict[str, str]:
    """name -> label for the model picker: trained classifiers first (the best shipped
    checkpoint is the default), then the ImageNet models whose weights are missing."""
    from explorer.classify import classifier_choices as choices

    try:
        return choices()
    except CheckpointError as error:  # a broken manifest hides the checkpoints, not the page
        st.error(f"The project's checkpoints are hidden: {error}")
        return choices(checkpoints=False)


def _classifier_fingerprint(name: str) -> str:
    """Changes when the files behind ``name`` change, so a retrained model is reloaded."""
    from explorer.classify import resolve_classifier

    return resolve_classifier(name, allow_untrained=True).fingerprint


def classifier(name: str):
    """The shared, frozen classifier for ``name`` on the session's device."""
    return _cached_classifier(name, str(current_device()), _classifier_fingerprint(name))


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _cached_classifier(name: str, device: str, fingerprint: str):
    from explorer.classify import load_classifier

    return load_classifier(name, device=device, allow_untrained=True)


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
    st.plotly_chart(figures.topk_figure([p.label for p in predictions], [p.probability for p in predictions],
                                        trained=classifier.trained),
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
