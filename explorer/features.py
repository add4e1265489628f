"""Feature maps: what each stage and block of a network outputs for an image.

torchvision's ``create_feature_extractor`` traces the model with ``torch.fx`` and returns
a copy of its graph that outputs the requested nodes; the copy shares the model's
parameters (no memory is duplicated) and has no hooks, so it is safe to call from several
sessions at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor

from explorer.classify import Classifier
from explorer.models import ModelSpec


@dataclass(frozen=True)
class FeaturePoint:
    name: str  # a module name that create_feature_extractor accepts: "layer2", "layer2.1"
    label: str  # what a student reads: "conv3_x (layer2), end of stage"


def feature_points(model: nn.Module, spec: ModelSpec) -> list[FeaturePoint]:
    """The stem, then every stage's blocks, input to output, each stage end marked."""
    points = []
    for stage, modules in spec.stages(model):
        if stage == "pool, fc":
            continue
        if stage == "conv1":
            points.append(FeaturePoint(modules[-1], f"conv1 ({modules[-1]}), the stem"))
            continue
        stage_module = model.get_submodule(modules[-1])
        blocks = list(stage_module.named_children()) if isinstance(stage_module, nn.Sequential) else []
        for index, (child, _) in enumerate(blocks):
            where = "end of stage" if index == len(blocks) - 1 else f"block {index + 1} of {len(blocks)}"
            points.append(FeaturePoint(f"{modules[-1]}.{child}", f"{stage} ({modules[-1]}.{child}), {where}"))
        if not blocks:  # VGG: a stage is a run of layers ending in a max pool
            points.append(FeaturePoint(modules[-1], f"{stage} ({modules[-1]}), end of stage"))
    return points


def feature_extractor(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """A traced copy of ``model`` returning ``{name: activation}`` (parameters shared)."""
    return create_feature_extractor(model, return_nodes=list(names)).eval()


@torch.no_grad()
def feature_maps(extractor: nn.Module, batch: Tensor) -> dict[str, Tensor]:
    return {name: value.detach() for name, value in extractor(batch).items()}


def image_feature_map(classifier: Classifier, extractor: nn.Module, image: Image.Image, point: str) -> Tensor:
    """One image's activation (C, h, w) at ``point``, with the shared model's lock held
    (the extractor runs the model's own layers, where another session's hooks may sit)."""
    batch = classifier.prepare([image])
    with classifier.lock:
        return feature_maps(extractor, batch)[point][0]


@dataclass(frozen=True)
class TopChannels:
    channels: list[int]  # channel indices, most active first
    mean_activation: list[float]  # their spatial mean activation
    maps: Tensor  # (k, h, w) on the CPU


def most_active_channels(activation: Tensor, k: int = 16) -> TopChannels:
    """The ``k`` channels of one image's activation (C, h, w) with the highest mean value."""
    if activation.dim() != 3:
        raise ValueError(f"expected one image's (C, h, w) activation, got shape {tuple(activation.shape)}")
    means = activation.float().mean(dim=(1, 2))
    values, indices = means.topk(min(k, means.numel()))
    return TopChannels(indices.tolist(), values.tolist(), activation[indices].float().cpu())
