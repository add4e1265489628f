"""The shared classifiers (one frozen model per name and device, for every session) and the
widgets that show what they predict."""

from __future__ import annotations

import streamlit as st

from explorer.present import figures
from explorer.server.photos import SessionPhotos, Upload
from explorer.store.checkpoints import CheckpointError, finetuned_dir, skipped_entries
from explorer.store.classifiers import ClassifierError, load_classifier, residual_twin, resolve_classifier
from explorer.store.classifiers import classifier_choices as stored_classifier_choices
from explorer.ui.common import current_device, escaped


def classifier_choices() -> dict[str, str]:
    """name -> label for the model picker: trained classifiers first (the best shipped
    checkpoint is the default), then the ImageNet models whose weights are missing."""
    try:
        found = stored_classifier_choices()
    except CheckpointError as error:  # a broken manifest hides the checkpoints, not the page
        st.error(f"The project's checkpoints are hidden: {escaped(error)}")
        return stored_classifier_choices(checkpoints=False)
    for problem in [*skipped_entries(), *skipped_entries(finetuned_dir())]:  # one bad entry hides only itself
        st.warning(escaped(problem))
    return found


def _classifier_fingerprint(name: str) -> str:
    """Changes when the files behind ``name`` change, so a retrained model is reloaded."""
    return resolve_classifier(name, allow_untrained=True).fingerprint


def classifier(name: str):
    """The shared, frozen classifier for ``name`` on the session's device."""
    return _cached_classifier(name, str(current_device()), _classifier_fingerprint(name))


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _cached_classifier(name: str, device: str, fingerprint: str):
    return load_classifier(name, device=device, allow_untrained=True)


SESSION_PHOTOS = "decoded_photos"  # session state: this session's explorer.server.photos.SessionPhotos


def read_uploads(uploads, shelf: str = "inspect") -> dict:
    """name -> RGB image for each upload that reads; the others get a clear error and are skipped.

    Each photo is decoded once per upload, not on every rerun, and kept shrunk to
    ``settings.PHOTO_SIDE`` in the session's :class:`~explorer.server.photos.SessionPhotos` (at most
    ``settings.SESSION_DECODED`` bytes); ``shelf`` names the widget, so a photo removed from it
    is let go. Past ``settings.UPLOAD_PHOTOS`` photos the first ones are used and the rest are
    named in one error."""
    photos = st.session_state.get(SESSION_PHOTOS)
    if photos is None:
        photos = st.session_state[SESSION_PHOTOS] = SessionPhotos()
    read = photos.read([Upload(u.file_id, u.name, u.getvalue) for u in uploads or []], shelf)
    for problem in read.problems:
        st.error(escaped(problem))  # it quotes the file's name: shown literally, never as Markdown
    return read.images


def prediction_card(classifier, image, label: str, predictions, key: str) -> None:
    """The input the model sees (its own preprocessing) and its top classes as bars."""
    st.image(classifier.model_input(image).permute(1, 2, 0).numpy(), caption=f"{escaped(label)}: what the net sees",
             width=160)  # a caption is Markdown: an upload's name is shown, never rendered
    st.plotly_chart(figures.topk_figure([p.label for p in predictions], [p.probability for p in predictions],
                                        trained=classifier.trained),
                    width="stretch", key=key)


def twin_classifiers(name: str) -> list:
    """The classifier for ``name`` and, for a shipped CIFAR net, its plain/residual twin of the
    same depth (§4.2's pairs); a twin that cannot load is reported and left out."""
    found = [classifier(name)]
    twin = residual_twin(name)
    if twin is not None:
        try:
            found.append(classifier(twin))
        except (ClassifierError, ValueError) as error:
            st.warning(f"The twin {escaped(twin)} cannot be loaded: {escaped(error)}")
    return found
