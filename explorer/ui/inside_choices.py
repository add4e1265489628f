"""What the "Why shortcuts work" page computes on, and how long it will take, said before any
button is pressed (issue 38): the images (each net's own held-out split when it is on this
machine, else the 2,000 shipped validation images; never the 10 sample photos unless chosen),
a "How many" that stops at what the source holds, each view's estimate on this machine, and
the caption of the precomputed results shown at once."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from explorer.data import DataSource, SourceKind, default_cache_dir, source_kind
from explorer.data.cache import cache_slot
from explorer.data.packs import available_packs, pack_source
from explorer.paper.inside.probes import EVAL_PACK, SAMPLES, InsideError, ProbeData, probe_data
from explorer.server.inside_estimates import estimate_s
from explorer.settings import PROBE_IMAGES
from explorer.store.checkpoints import read_manifest
from explorer.ui.common import escaped
from explorer.words import spoken_duration


def _own(names: list[str]) -> ProbeData | None:
    """The held-out split the first of ``names`` was trained beside, when its folder is here."""
    entries = read_manifest()
    for name in names:
        if name in entries:
            config = entries[name].config
            chosen = probe_data("default", config.get("data"), config.get("val_size"))
            return chosen if source_kind(chosen.data) is SourceKind.FOLDER else None
    return None


def data_choice(where, names: list[str]) -> tuple[str, ProbeData]:
    """The images every view runs on: (the value load_probe reads, what it means here)."""
    options: dict[str, ProbeData] = {}
    own = _own(names)
    if own is not None:
        options["default"] = own
    if EVAL_PACK in available_packs():
        options[pack_source(EVAL_PACK)] = probe_data(pack_source(EVAL_PACK))
    options[SAMPLES] = probe_data(SAMPLES)
    if st.session_state.get("inside.data") not in options:
        st.session_state.pop("inside.data", None)  # a choice this machine no longer has
    data = where.selectbox("Images", list(options), key="inside.data", format_func=lambda value: _label(value, options),
                           help="What every view runs on: the CIFAR-10 validation images each net's training "
                                "held out, when that folder is on this machine; else the 2,000 shipped with the "
                                "app, from the same held-out part. No shipped net trained on any of them.")
    return data, options[data]


def _label(value: str, options: dict[str, ProbeData]) -> str:
    count = options[value].available
    if value == "default":
        return f"Own held-out split ({count:,})"  # of CIFAR-10, on this machine
    if value == SAMPLES:
        return "The 10 sample photos"
    return f"Shipped CIFAR-10 images ({count:,})"


def images_box(where, chosen: ProbeData, *, default: int, key: str = "inside.images", label: str = "How many") -> int:
    """How many of ``chosen``'s images a view runs on: never more than it holds (nor than
    settings.PROBE_IMAGES, the CLI's --images too)."""
    high = max(1, min(int(PROBE_IMAGES.high), chosen.available))
    if (st.session_state.get(key) or 0) > high:
        st.session_state.pop(key)  # another source was chosen: back to the default, within what it holds
    return int(where.number_input(label, int(PROBE_IMAGES.low), high, min(default, high), step=10 if high <= 500 else 100,
                                  key=key, help=f"Up to {high:,}: {chosen.about}."))


def _cached_folder(data: str) -> bool:
    """Whether a folder's decoded pixels are in the disk cache (else all its images are decoded first)."""
    source = DataSource.read(data)
    if source is None or source.kind is not SourceKind.FOLDER:
        return True
    root = Path(source.path).resolve()
    return cache_slot(default_cache_dir() / "folders", root, 32).is_file()


def estimate_caption(view: str, names: list[str], chosen: ProbeData, images: int, options: tuple = (),
                     where=st) -> float | None:
    """"Takes about 40 s on this machine …", before the view's button; None where it cannot be said."""
    if not names:
        return None
    images = min(images, chosen.available)
    try:
        seconds = estimate_s(view, names, images, options, chosen.data, _cached_folder(chosen.data))
    except (InsideError, ValueError, OSError) as error:
        where.caption(f"No estimate: {escaped(error)}")
        return None
    cores = os.cpu_count() or 1
    where.caption(f"Computing it here for {len(names)} net{'s' if len(names) > 1 else ''} on {images:,} images "
                  f"takes about **{spoken_duration(seconds)}** on this machine ({cores} cores; a forward pass of "
                  "each net timed here, scaled by the passes this view makes).")
    return seconds


def precomputed_caption(entries: list[dict], button: str, where=st) -> None:
    """Where the results shown at once come from: the images, the machine, the precision, the time."""
    if not entries:
        return
    first = entries[0]
    times = ", ".join(f"{escaped(e['model'])} {spoken_duration(float(e['wall_time_s']))}" for e in entries)
    where.caption(f"Precomputed on {escaped(first['data'])}: in {escaped(first['precision'])} on "
                  f"{escaped(first['machine'])}, it took {times}. Shipped with the app (pretrained/inside/); "
                  f"“{button}” computes it here, on the images chosen above.")


def computed_caption(results: list, seconds: dict[str, float], estimated: float | None, where=st) -> None:
    """What the results computed here were computed on, and how long they took against the estimate."""
    if not results:
        return
    took = sum(seconds.get(result.model, 0.0) for result in results)
    precision = {getattr(result, "precision", "fp32") for result in results}
    line = f"Computed here on {escaped(results[0].source)}; {'/'.join(sorted(precision))}"
    if took:
        line += f", {spoken_duration(took)}" + (f" (estimated {spoken_duration(estimated)})" if estimated else "")
    where.caption(line + ".")
