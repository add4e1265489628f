"""Shareable links (issue 16): a page's settings in ``st.query_params``, read once when a
session opens the page with a link, and written back as the settings change. The checking
(unknown or hostile values fall back to defaults, never a path) is :mod:`explorer.server.links`; a
notice quotes the refused value, escaped so that no link text is ever rendered as Markdown."""

from __future__ import annotations

import streamlit as st

from explorer.server import links
from explorer.ui.common import escaped


def _params() -> dict[str, list[str]]:
    return {key: st.query_params.get_all(key) for key in st.query_params}


def apply_lab_link(preset_labels: dict[str, str], dataset_labels: dict[str, str]) -> None:
    """Seed the lab's widgets from the link it was opened with (once per session), with a
    notice for every value that was refused. ``*_labels``: the widgets' label per key."""
    if st.session_state.get("lab.link_read"):
        return
    st.session_state["lab.link_read"] = True
    params = _params()
    if not params:
        return
    link, notices = links.lab_from_params(params, datasets=[k for k in links.lab_datasets() if k in dataset_labels])
    st.session_state["lab.preset"] = preset_labels[link.preset]
    st.session_state["lab.models"] = list(link.models)
    st.session_state["lab.dataset"] = dataset_labels[link.dataset]
    st.session_state["lab.seed"], st.session_state["lab.steps"] = link.seed, link.steps
    for notice in notices:
        st.warning(f"From the link: {escaped(notice)}")  # it quotes the link: never rendered


def share_lab_link(preset: str, models: list[str], dataset: str | None, seed: int, steps: int) -> None:
    """The lab's current settings into the address bar; a folder or an upload is never put
    in a link (``dataset`` None: the link leaves the data set to the default)."""
    link = links.LabLink(preset=preset, models=tuple(models), dataset=dataset or "synthetic", seed=seed, steps=steps)
    params = links.lab_to_params(link)
    if dataset is None:
        params.pop("data")
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def apply_inspect_link(models: list[str], samples: list[str], classes_of, stages_of) -> links.InspectLink | None:
    """Seed the inspect page's model, sample, class and stage from its link (once per session);
    returns the link read, or None (no link, or read before)."""
    if st.session_state.get("inspect.link_read"):
        return None
    st.session_state["inspect.link_read"] = True
    params = _params()
    if not params:
        return None
    link, notices = links.inspect_from_params(params, models=models, samples=samples,
                                              classes_of=classes_of, stages_of=stages_of)
    st.session_state["inspect.model"] = link.model
    if link.sample is not None:
        st.session_state["inspect.linked_samples"] = [link.sample]
        st.session_state["inspect.focus"] = f"sample: {link.sample}"
    for key, value in (("inspect.linked_target", link.target), ("inspect.stage", link.stage)):
        if value is not None:
            st.session_state[key] = value
    for notice in notices:
        st.warning(f"From the link: {escaped(notice)}")  # it quotes the link: never rendered
    return link


def share_inspect_link(model: str, focus: str, target: str | None, stage: str | None,
                       look: str | None = None) -> None:
    """The inspect view into the address bar; an uploaded photo is never named in a link."""
    sample = focus.removeprefix("sample: ") if focus.startswith("sample: ") else None
    params = links.inspect_to_params(links.InspectLink(model, sample, target, stage, look))
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)
