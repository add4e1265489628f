"""Where a session's data comes from: data-set pickers, uploaded zips (unpacked into the
session's own folder, deleted when the tab closes) and the random-erasing knobs."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from explorer.data import Augmentation
from explorer.lab import SHARED_CIFAR10
from explorer.roots import RootsError, check_app_source, data_roots


def erasing_controls(key: str, default_p: float = 0.0, base: Augmentation | None = None) -> Augmentation:
    """Random erasing's knobs (torchvision.transforms.v2.RandomErasing, Zhong et al. 2017):
    the same Augmentation fields in the lab, the fine-tuning page and the preview. The crop
    and flip are ``base``'s (a preset's augmentation; default: the paper's)."""
    p = st.slider("Random erasing probability", 0.0, 1.0, default_p, 0.05, key=f"{key}.erasing_p",
                  help="Blank out one random rectangle of each training image with this probability. "
                       "0 is the paper's recipe.")
    with st.expander("Random erasing: box size, shape and fill", expanded=False):
        scale = st.slider("Box area (fraction of the image)", 0.01, 1.0, (0.02, 0.33), 0.01, key=f"{key}.erasing_scale")
        ratio = st.slider("Box aspect ratio (height / width)", 0.1, 10.0, (0.3, 3.3), 0.1, key=f"{key}.erasing_ratio")
        fill = st.radio("Fill", ["mean colour (0 after normalisation)", "random pixels"], horizontal=True,
                        key=f"{key}.erasing_fill")
    return replace(base or Augmentation(), erasing_p=p, erasing_scale=scale, erasing_ratio=ratio,
                   erasing_value="random" if fill.startswith("random") else 0.0)


def allowed_source(container, source: str) -> str | None:
    """``source`` if the server lets sessions read it (folders only inside $EXPLORER_DATA_ROOTS
    or this session's uploads, issue 16), else None with the reason shown."""
    try:
        return check_app_source(source, data_roots(uploads=[session_upload_dir()]))
    except RootsError as error:
        container.error(str(error))
        return None


def session_upload_dir():
    """This session's own temporary folder for unpacked uploads, deleted (with the data
    cache's decoded copies of its images) when the tab closes."""
    from explorer.ui.jobs import session_resources

    return session_resources().upload_dir()


def dataset_picker(container) -> str | None:
    """The fine-tuning data source: synthetic, CIFAR-10, a folder, or an uploaded zip of class
    folders (unpacked once per upload into the session's own folder). None until usable."""
    sources = ["Synthetic (generated, instant)", "CIFAR-10", "Folder on this machine", "Zip of class folders"]
    source = container.radio("Data set", sources)
    if source == sources[0]:
        return "synthetic:2000"
    if source == sources[1]:
        return allowed_source(container, container.text_input(
            "CIFAR-10 source", "cifar10", help="`cifar10` downloads it with torchvision; offline, give the folder "
                                               f"of JPEGs, e.g. `folder:{SHARED_CIFAR10}`.").strip())
    if source == sources[2]:
        folder = container.text_input("Folder with one sub-folder per class", str(SHARED_CIFAR10)).strip()
        return allowed_source(container, f"folder:{folder}")
    return zip_source(container, "finetune_zip")


def zip_source(container, key: str) -> str | None:
    """An uploaded zip of class folders, unpacked once per upload into the session's own
    folder, as a ``folder:`` source; None until one is uploaded and usable."""
    from explorer.archives import ArchiveError, unpack_class_zip

    upload = container.file_uploader("Zip of class folders (cat/1.jpg, dog/2.jpg, …)", type=["zip"],
                                     key=key, max_upload_size=200)
    if upload is None:
        return None
    unpacked = st.session_state.get(f"unpacked_{key}")
    if unpacked is None or unpacked[0] != upload.file_id:
        try:
            unpacked = (upload.file_id, unpack_class_zip(upload.getvalue(), session_upload_dir()), None)
        except ArchiveError as error:
            unpacked = (upload.file_id, None, str(error))
        st.session_state[f"unpacked_{key}"] = unpacked
    _, archive, problem = unpacked
    if problem:
        container.error(f"**{upload.name}**: {problem}")
        return None
    ignored = f"; {len(archive.ignored)} other files ignored" if archive.ignored else ""
    more = "…" if len(archive.classes) > 8 else ""
    container.success(f"{archive.images:,} images in {len(archive.classes)} classes "
                      f"({', '.join(archive.classes[:8])}{more}){ignored}.")
    return f"folder:{archive.root}"
