"""One registry for every model the app knows.

Pages, the CLI and the tests iterate :func:`list_models`, so a model registered here shows
up everywhere at once (the habit of torchvision's ``register_model`` and timm's
``list_models``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import WeightsEnum

# A stage is a row of the paper's Table 1: its name and the top-level modules it is made of.
# A model's ``stages`` list the stem first and the head (global pool, fc) last; the rows
# between are the body, made of blocks (see :mod:`explorer.models.anatomy`).
Stage = tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class PaperNumbers:
    """What the paper reports for a model, with the table or figure it comes from."""

    gmacs: float | None  # multiply-adds, ×10⁹ (the paper calls them FLOPs), 224×224 input
    top1_error: float | None  # % top-1 error: ImageNet val 10-crop, or CIFAR-10 test (Table 6)
    source: str  # where in the paper these numbers are printed
    params_m: float | None = None  # millions of parameters, where the paper prints them


BLOCK_KINDS = ("basic", "bottleneck", "plain", "vgg")
RESIDUAL_BLOCKS = ("basic", "bottleneck")


@dataclass(frozen=True)
class ModelSpec:
    """Everything the app needs to know about a model before building it."""

    name: str
    family: str  # "imagenet" or "cifar": decides input size, classes and preprocessing
    builder: Callable[..., nn.Module]  # keyword options (e.g. width=, shortcut=) pass through
    depth: int  # weighted layers, counted as the paper does (conv + fc)
    block: str  # "basic", "bottleneck", "plain" or "vgg"
    input_size: tuple[int, int, int]  # (C, H, W) the model is measured at
    num_classes: int
    stages: Callable[[nn.Module], Sequence[Stage]]  # Table 1's rows: stem first, head last
    summary: str
    weights: WeightsEnum | None = None  # torchvision's published weights, if any
    paper: PaperNumbers | None = None
    # The anatomy of a block, read by explorer.models.anatomy instead of guessing from names.
    # ``branch``: (conv, BatchNorm) attribute pairs of one block's residual branch F(x), in
    # forward order; empty for a net without blocks (VGG).
    branch: tuple[tuple[str, str], ...] = ()
    shortcut_attribute: str | None = None  # the block's shortcut module: "downsample", "shortcut"
    twin: str | None = None  # the same stack with/without shortcuts: resnet34 <-> plain34 (§4.1)
    variant_of: str | None = None  # the torchvision model this one re-builds as in the paper

    def __post_init__(self):
        if self.block not in BLOCK_KINDS:
            raise ValueError(f"block must be one of {BLOCK_KINDS}, got {self.block!r} for {self.name}.")

    def __reduce__(self):
        # Specs are registry singletons holding builder functions: pickle them by name, so
        # results that carry one (an Analysis) can come back from a worker process.
        return get_model_spec, (self.name,)

    @property
    def residual(self) -> bool:
        """Whether the blocks add a shortcut (Eq. 1): basic and bottleneck blocks do."""
        return self.block in RESIDUAL_BLOCKS

    @property
    def imagenet_top1(self) -> float | None:
        """torchvision's measured top-1 accuracy (%) of the published weights."""
        if self.weights is None:
            return None
        return self.weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]


class UnknownModelError(ValueError):
    """A model name that is not registered; the message suggests close names."""


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"A model named {spec.name!r} is already registered.")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(family: str | None = None) -> list[ModelSpec]:
    """Registered models in registration order, optionally of one family."""
    return [spec for spec in _REGISTRY.values() if family is None or spec.family == family]


def model_names(family: str | None = None) -> list[str]:
    return [spec.name for spec in list_models(family)]


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"Unknown model {name!r}.{hint} Known models: {', '.join(_REGISTRY)}."
        ) from None


def build_model(name: str, *, device: torch.device | str | None = None, **options) -> nn.Module:
    """A freshly initialised (untrained) model in eval mode.

    ``device="meta"`` builds shapes only: no memory, no compute, which is all the
    architecture tables need. ``options`` go to the builder (CIFAR nets take ``width``,
    ``shortcut`` and ``num_classes``); a builder that does not know one raises TypeError.
    """
    spec = get_model_spec(name)
    with torch.device(device or "cpu"):
        model = spec.builder(**options)
    return model.eval()
