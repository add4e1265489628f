"""Where a trained network looks, and how its gradients reach the first layers.

* Grad-CAM (Selvaraju et al. 2017) at the end of every stage of Table 1: each channel of a
  stage's output is weighted by the spatial mean of the class score's gradient, the weighted
  channels are summed and the negative part is dropped. Deep stages give coarse maps of
  *what* the object is, early stages finer maps of edges and texture.
* Gradient norms per layer: ‖∂score/∂W‖ for every conv and fc weight, input to output.
  In a deep plain net they shrink towards the input; shortcuts carry the gradient back
  unchanged (§3.1, and §4.1's discussion of vanishing gradients, which BatchNorm already
  prevents, so the norms stay healthy in both, unlike the training error).

Models here are shared by every session of the app (cached, frozen, in eval mode), so
nothing in this module changes one: captum's hooks are removed when a call returns, and the
weight gradients are taken through :func:`torch.func.functional_call` on detached copies of
the parameters' views, never on the cached parameters themselves. Callers serialise captum
calls on one model with the classifier's lock (hooks of two threads would mix).

The maps are data (non-negative, upsampled ones in [0, 1]); how they are coloured and drawn
is :mod:`explorer.present.overlays` (the CLI's PNG) and :mod:`explorer.present.figures` (the page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from torch import Tensor, nn
from torch.func import functional_call

from explorer.models import get_model_spec, stage_ends, weighted_layers
from explorer.store.classifiers import Classifier, ClassifierError, Prediction
from explorer.store.recent import input_key


def grad_cams(model: nn.Module, batch: Tensor, layers: Sequence[str], target: Tensor) -> dict[str, Tensor]:
    """Grad-CAM of ``target`` (one class index per image) at each of ``layers``.

    One forward and one backward pass for all layers together (captum's multi-layer
    gradient helper), instead of one pass per layer as :class:`captum.attr.LayerGradCam`
    does; the values are the same (tested). Returns ``{layer: (N, 1, h, w)}`` at each
    layer's own resolution, non-negative.
    """
    modules = [model.get_submodule(name) for name in layers]
    with torch.enable_grad():
        gradients, activations = compute_layer_gradients_and_eval(model, modules, batch, target)
    cams = {}
    for name, (gradient,), (activation,) in zip(layers, gradients, activations):
        channel_weights = gradient.mean(dim=(2, 3), keepdim=True)  # Grad-CAM's α_k^c
        cams[name] = torch.relu((channel_weights * activation).sum(dim=1, keepdim=True)).detach()
    return cams


def layer_grad_cam(model: nn.Module, batch: Tensor, layer: str, target: Tensor) -> Tensor:
    """Grad-CAM at any one layer, by captum's ``LayerGradCam``: (N, 1, h, w), non-negative."""
    with torch.enable_grad():
        cam = LayerGradCam(model, model.get_submodule(layer)).attribute(batch, target=target, relu_attributions=True)
    return cam.detach()


def upsample(cam: Tensor, size: tuple[int, int]) -> Tensor:
    """A CAM stretched bilinearly over the input image (captum's ``LayerAttribution.interpolate``),
    then scaled to [0, 1] per image, the way Grad-CAM maps are shown."""
    stretched = LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear").clamp_min(0)
    peak = stretched.amax(dim=(1, 2, 3), keepdim=True)
    return (stretched / peak.clamp_min(1e-12)).squeeze(1)


def gradient_norms(model: nn.Module, batch: Tensor, target: Tensor) -> list[tuple[str, float]]:
    """‖∂ logit[target] / ∂W‖ of every conv and fc weight, input to output (shortcut
    projections excluded: they are not counted in the paper's depth).

    No gradient is stored in the cached model: its parameters are detached (same storage,
    no copy) and the forward runs through ``functional_call`` with those, so gradients land
    on the detached tensors only. ``functional_call`` swaps them into the module for the
    duration of the call, so callers sharing the model hold its lock (two overlapping swaps
    could restore the wrong tensors).
    """
    names = [name for name, _ in weighted_layers(model)]
    parameters = {name: p.detach().requires_grad_(True) for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    with torch.enable_grad():
        logits = functional_call(model, {**parameters, **buffers}, (batch,))
        score = logits.gather(1, target.view(-1, 1)).sum()
        grads = torch.autograd.grad(score, [parameters[name] for name in names])
    return [(name, grad.norm().item()) for name, grad in zip(names, grads)]


@dataclass(frozen=True)
class StageCam:
    stage: str  # the Table 1 row: "conv4_x", "stage3"
    layer: str  # the module: "layer3"
    cam: Tensor  # (h, w) at the layer's own resolution, non-negative
    upsampled: Tensor  # (H, W) over the model's input, scaled to [0, 1]

    @cached_property  # read on every rerun of the Inspect page, by every session shown this explanation
    def empty(self) -> bool:
        """Nothing to show: the weighted feature maps lower the class score everywhere, and
        Grad-CAM keeps only what raises it (the ReLU of Selvaraju et al., Eq. 2). Common at an
        early stage, whose features are not yet about any class, and at any stage for a class
        the image does not show."""
        return not bool((self.cam > 0).any())

    @property
    def title(self) -> str:
        return f"{self.stage} ({self.layer})" + (": empty" if self.empty else "")


@dataclass(frozen=True)
class Explanation:
    """Read-only: the classifier remembers it and hands the same object to every session."""
    model_input: Tensor  # uint8 (3, H, W): exactly what the network sees
    predictions: tuple[Prediction, ...]
    target: str  # the class the maps explain
    cams: tuple[StageCam, ...]


def explain(classifier: Classifier, image: Image.Image, *, target: str | None = None, topk: int = 5) -> Explanation:
    """Top-``topk`` classes and a Grad-CAM per stage for ``target`` (default: the top class);
    an input explained recently for the same class is answered from the classifier's memory."""
    model_input = classifier.model_input(image)
    predictions = classifier.predict([image], topk=topk)[0]
    target = predictions[0].label if target is None else target
    if target not in classifier.classes:
        listed = f": {', '.join(classifier.classes)}" if len(classifier.classes) <= 20 else ""
        raise ClassifierError(f"{target!r} is not one of {classifier.name}'s classes{listed}.")
    key = (input_key(model_input), target, topk)
    remembered = classifier.explanations.get(key)
    if remembered is not None:
        return remembered
    batch = classifier.to_model(model_input.unsqueeze(0).to(classifier.device))
    index = torch.tensor([classifier.classes.index(target)], device=classifier.device)
    ends = stage_ends(classifier.model, get_model_spec(classifier.model_name))
    with classifier.lock:  # captum hooks into the shared model: one call at a time
        remembered = classifier.explanations.get(key)  # another session's, while this one queued
        if remembered is not None:
            return remembered
        cams = grad_cams(classifier.model, batch, [layer for _, layer in ends], index)
    size = tuple(model_input.shape[-2:])
    explanation = Explanation(model_input, tuple(predictions), target, tuple(
        StageCam(stage, layer, cams[layer][0, 0].cpu(), upsample(cams[layer], size)[0].cpu()) for stage, layer in ends))
    classifier.explanations.put(key, explanation)
    return explanation


def class_gradient_norms(classifier: Classifier, image: Image.Image, target: str) -> list[tuple[str, float]]:
    """:func:`gradient_norms` of one image for the class named ``target``."""
    batch = classifier.prepare([image])
    index = torch.tensor([classifier.classes.index(target)], device=classifier.device)
    with classifier.lock:
        return gradient_norms(classifier.model, batch, index)


@dataclass(frozen=True)
class GradientSeries:
    label: str  # the classifier's name: "plain20-cifar10"
    residual: bool  # whether its net adds shortcuts (the figure colours it by this)
    norms: list[tuple[str, float]]  # (weight name, ‖∂score/∂W‖), input to output


def compare_gradient_norms(classifiers: Sequence[Classifier], image: Image.Image,
                           target: str) -> list[GradientSeries]:
    """:func:`class_gradient_norms` of each classifier (e.g. a plain net and its residual
    twin), plain nets first as in the paper's figures."""
    series = [GradientSeries(c.name, get_model_spec(c.model_name).residual, class_gradient_norms(c, image, target))
              for c in classifiers]
    return sorted(series, key=lambda s: s.residual)

