"""torchvision's ImageNet weights: where they are looked for, how they are fetched and loaded.

Files are torchvision's own (``resnet50-0676ba61.pth`` and so on). They are looked for in
the project's ``pretrained/`` folder and in the torch hub cache, where torchvision itself
puts them. Downloads go through torchvision's downloader, which checks the sha256 prefix
written in the file name. Loading always uses ``torch.load(..., weights_only=True)``: a
``.pth`` file is a pickle, and only the restricted unpickler is safe on files from the web.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import WeightsEnum

from explorer.models import ModelSpec, get_model_spec
from explorer.settings import pretrained_dir


class WeightsError(RuntimeError):
    """Weights that cannot be found, fetched or loaded; the message says what to do."""


def hub_checkpoint_dir() -> Path:
    """Where torchvision downloads to (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def search_dirs() -> list[Path]:
    return [pretrained_dir(), hub_checkpoint_dir()]


def weights_filename(weights: WeightsEnum) -> str:
    return Path(urlparse(weights.url).path).name


def _published_weights(spec: ModelSpec) -> WeightsEnum:
    if spec.weights is None:
        raise WeightsError(f"torchvision publishes no ImageNet weights for {spec.name}.")
    return spec.weights


def get_instructions(spec: ModelSpec) -> str:
    """The exact command and folders to get a model's weights, for banners and errors."""
    weights = _published_weights(spec)
    return (
        f"Run `python -m explorer weights download {spec.name}`, or, without internet, "
        f"fetch {weights.url} on another machine and copy {weights_filename(weights)} into "
        f"{pretrained_dir()} (or {hub_checkpoint_dir()})."
    )


@dataclass(frozen=True)
class WeightsStatus:
    name: str
    filename: str | None  # None: torchvision publishes no weights for this model
    path: Path | None  # None: not present on this machine

    @property
    def present(self) -> bool:
        return self.path is not None


def find_weights(spec: ModelSpec) -> Path | None:
    """The first search folder holding the model's weights file, or None."""
    if spec.weights is None:
        return None
    filename = weights_filename(spec.weights)
    for folder in search_dirs():
        if (folder / filename).is_file():
            return folder / filename
    return None


def weights_status(spec: ModelSpec) -> WeightsStatus:
    filename = weights_filename(spec.weights) if spec.weights is not None else None
    return WeightsStatus(spec.name, filename, find_weights(spec))


def load_weights_file(model: nn.Module, path: Path) -> None:
    """Load a torchvision ``.pth`` state dict into ``model`` (strict, weights_only)."""
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle can fail in many ways; all mean "not a weights file"
        raise WeightsError(f"{path} is not a readable PyTorch weights file ({error}).") from error
    if not isinstance(state_dict, dict):
        raise WeightsError(f"{path} holds a {type(state_dict).__name__}, not a state dict.")
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise WeightsError(
            f"{path} does not fit {type(model).__name__}: {str(error).splitlines()[0]}"
        ) from error


def require_weights(spec: ModelSpec) -> Path:
    """Where the model's ImageNet weights are; WeightsError (with instructions) if absent."""
    path = find_weights(spec)
    if path is None:
        raise WeightsError(f"No ImageNet weights for {spec.name} on this machine. {get_instructions(spec)}")
    return path


def load_pretrained(model: nn.Module, name: str) -> Path:
    """Load the model's ImageNet weights from disk; WeightsError (with instructions) if absent."""
    path = require_weights(get_model_spec(name))
    load_weights_file(model, path)
    return path


def download_weights(name: str, *, dest: Path | None = None, progress: bool = True) -> Path:
    """Fetch a registered model's torchvision weights; return where they were saved."""
    return fetch_weights(_published_weights(get_model_spec(name)), dest=dest, progress=progress)


def fetch_weights(weights: WeightsEnum, *, dest: Path | None = None, progress: bool = True) -> Path:
    """Download a torchvision weights entry with its hash check, into ``dest``.

    Raises WeightsError, whose message names the URL and the folders to copy the file
    into by hand, when the download or the check fails (offline, say).
    """
    folder = dest or hub_checkpoint_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file of that name, or a folder that cannot be made
        raise WeightsError(f"Cannot save into {folder}: {error.strerror or error}; give a folder.") from error
    filename = weights_filename(weights)
    try:
        # torchvision's own downloader: torch.hub verifies the sha256 prefix written in the
        # file name, and weights_only=True loads the result with the safe unpickler.
        weights.get_state_dict(model_dir=str(folder), progress=progress, check_hash=True,
                               weights_only=True, map_location="cpu")
    except Exception as error:  # URLError, HTTPError, hash mismatch (RuntimeError), unpickling
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(
            f"Could not download {filename} ({reason}). Without internet, fetch {weights.url} "
            f"on another machine and copy {filename} into {pretrained_dir()} "
            f"(or {hub_checkpoint_dir()})."
        ) from error
    return folder / filename
