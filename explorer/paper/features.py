"""Feature maps: what each stage and block of a network outputs for an image.

The output of a block is caught by a forward hook on that block, registered for one
forward pass and removed when it returns or raises (:func:`explorer.models.hooks.captured_outputs`). torchvision's
``create_feature_extractor`` computes the same tensors (a test checks they are equal), but
it traces the model with ``torch.fx``, which patches ``torch.nn.Module.__call__`` for the
whole process while it traces: on a server, another session's training or Grad-CAM would
fail meanwhile. A hook touches only the one model, and the shared model's lock keeps other
sessions' forward passes out of it while it is registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor, nn

from explorer.models import ModelSpec, blocks, body_stages, stem_stage
from explorer.models.hooks import captured_outputs
from explorer.store.classifiers import Classifier


@dataclass(frozen=True)
class FeaturePoint:
    name: str  # a module name: "layer2", "layer2.1"
    label: str  # what a student reads: "conv3_x (layer2), end of stage"
    stage_end: bool = False  # the last block (or layer) of a body stage: where Grad-CAM looks


def feature_points(model: nn.Module, spec: ModelSpec) -> list[FeaturePoint]:
    """The stem, then every stage's blocks, input to output, each stage end marked."""
    stem, stem_modules = stem_stage(model, spec)
    points = [FeaturePoint(stem_modules[-1], f"{stem} ({stem_modules[-1]}), the stem")]
    all_blocks = blocks(model, spec)
    for stage, modules in body_stages(model, spec):
        in_stage = [block for block in all_blocks if block.stage == stage]
        for block in in_stage:
            last = block.index == len(in_stage) - 1
            where = "end of stage" if last else f"block {block.index + 1} of {len(in_stage)}"
            points.append(FeaturePoint(block.name, f"{stage} ({block.name}), {where}", stage_end=last))
        if not in_stage:  # VGG: a stage is a run of layers ending in a max pool
            points.append(FeaturePoint(modules[-1], f"{stage} ({modules[-1]}), end of stage", stage_end=True))
    return points


@torch.no_grad()
def feature_maps(model: nn.Module, batch: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
    """``{name: activation (N, C, h, w)}`` of the modules ``names`` for ``batch``."""
    with captured_outputs(model, names) as outputs:
        model(batch)
    return {name: outputs[name] for name in names}


def image_feature_map(classifier: Classifier, image: Image.Image, point: str) -> Tensor:
    """One image's activation (C, h, w) at ``point``, with the shared model's lock held
    (the hook must see this forward pass only, and no other session's)."""
    batch = classifier.prepare([image])
    with classifier.lock:
        return feature_maps(classifier.model, batch, [point])[point][0]


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
