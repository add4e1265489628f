"""Where a session's data comes from: data-set pickers, uploaded zips (unpacked into the
session's own folder, deleted when the tab closes) and the random-erasing knobs."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from explorer.data import Augmentation, DataSource
from explorer.data.archives import ArchiveError, unpack_class_zip
from explorer.paper.degradation import cifar10_choice, cifar10_source, data_label, demo_pack_source
from explorer.server.roots import RootsError, check_app_source, data_roots
from explorer.transfer.recipe import seen_images_note
from explorer.ui.common import escaped
from explorer.ui.job_panel import session_resources


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
    or this session's uploads, issue 16), else None with the reason shown. The reason names
    only the roots the user could have set; the session's own upload folder is not one."""
    uploads = [session_upload_dir()]
    try:
        return check_app_source(source, data_roots(uploads=uploads), uploads=uploads)
    except RootsError as error:
        container.error(escaped(error))  # it quotes the typed path: shown literally, never as Markdown
        return None


def session_upload_dir():
    """This session's own temporary folder for unpacked uploads, deleted (with the data
    cache's decoded copies of its images) when the tab closes."""
    return session_resources().upload_dir()


def finetune_data_choices() -> dict[str, str]:
    """The Transfer page's data sets: label -> source, the default first ("folder" and "zip"
    ask for more). The full CIFAR-10 when it is here, then the demo pack shipped with the app
    (real CIFAR-10 images: the default on a machine without CIFAR-10), torchvision's download,
    the synthetic set, a folder, a zip. The evaluation pack is not offered: it holds no
    training images (explorer.data.check_training_source)."""
    found, pack = cifar10_source(), demo_pack_source()
    choices = {}
    if found is not None:
        choices[cifar10_choice(found)] = found
    if pack is not None:
        choices[data_label(pack)] = pack
    if found != "cifar10":
        choices["CIFAR-10, downloaded by torchvision (needs the internet the first time, 170 MB)"] = "cifar10"
    choices["Synthetic (generated, instant)"] = str(DataSource.of_synthetic(2000))
    choices["Folder on this machine"] = "folder"
    choices["Zip of class folders"] = "zip"
    return choices


def dataset_picker(container, backbone: str | None = None) -> str | None:
    """The fine-tuning data source (:func:`finetune_data_choices`; a zip is unpacked once per
    upload into the session's own folder), named below the choice, with a note when
    ``backbone`` was trained on these very images. None until usable: a folder box starts
    empty and says nothing until a path is typed."""
    choices = finetune_data_choices()
    picked = choices[container.radio("Data set", list(choices))]
    if picked == "zip":
        return zip_source(container, "finetune_zip")
    if picked == "folder":
        roots = data_roots()
        folder = container.text_input(
            "Folder with one sub-folder per class", placeholder=str(roots[0] / "…") if roots else "",
            help="Inside " + (", ".join(str(root) for root in roots) if roots else "no folder on this server: "
                              "upload a zip instead") + ".").strip()
        return allowed_source(container, str(DataSource.of_folder(folder))) if folder else None
    container.caption(f"Data: {escaped(data_label(picked))}.")
    if backbone is not None and (note := seen_images_note(backbone, picked)):
        container.info(escaped(note))
    return picked


UNPACKED_ZIP = "unpacked_zip"  # session state: (widget key, file id, UnpackedArchive | None, problem | None)


def zip_source(container, key: str) -> str | None:
    """An uploaded zip of class folders, unpacked once per upload into the session's own
    folder, as a ``folder:`` source; None until one is uploaded and usable.

    A session keeps one unpacked zip (settings.SESSION_DISK): a new upload, in this widget or
    the other page's, deletes the previous one first, with the data cache's decoded copies."""
    upload = container.file_uploader("Zip of class folders (cat/1.jpg, dog/2.jpg, …)", type=["zip"],
                                     key=key, max_upload_size=200)
    if upload is None:
        return None
    unpacked = st.session_state.get(UNPACKED_ZIP)
    if unpacked is None or unpacked[:2] != (key, upload.file_id):
        try:
            archive = unpack_class_zip(upload.getvalue(), session_resources().emptied_upload_dir())
            unpacked = (key, upload.file_id, archive, None)
        except ArchiveError as error:
            unpacked = (key, upload.file_id, None, str(error))
        st.session_state[UNPACKED_ZIP] = unpacked
    _, _, archive, problem = unpacked
    if problem:
        container.error(f"**{escaped(upload.name)}**: {escaped(problem)}")
        return None
    ignored = f"; {len(archive.ignored)} other files ignored" if archive.ignored else ""
    more = "…" if len(archive.classes) > 8 else ""
    container.success(f"{archive.images:,} images in {len(archive.classes)} classes "
                      f"({escaped(', '.join(archive.classes[:8]))}{more}){ignored}.")
    return str(DataSource.of_folder(archive.root))
