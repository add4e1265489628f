"""Layer responses (He et al. 2015, §4.2, Fig. 7): how strongly each 3×3 layer responds.

"The responses are the outputs of each 3×3 layer, after BN and before other nonlinearity
(ReLU/addition)." A forward hook on each such layer's BatchNorm reads that tensor as it is
made, before the in-place ReLU overwrites it, and accumulates sums in float64 over all the
probe's images. The std reported is the population standard deviation of all the response's
values (images, channels and positions together); the paper does not say more precisely
how it pools, and this is the reading of "std of layer responses" that needs no choice.

The paper's claims: ResNets' responses are generally smaller than their plain twins', and a
deeper ResNet has smaller responses. The residual functions are thus "generally closer to
zero than the non-residual functions" (§3.1's motivation, borne out in Fig. 7).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from explorer.models import conv_bn_pairs
from explorer.models.hooks import hooked
from explorer.paper.inside.probes import Probe, Progress, Subject, batches, model_device, report


@dataclass(frozen=True)
class LayerResponse:
    layer: str  # the conv, e.g. "layer2.0.conv1"
    std: float  # of its BN output, before ReLU/addition


@dataclass(frozen=True)
class Responses:
    model: str
    layers: tuple[LayerResponse, ...]  # in forward order (the paper's "layer index")
    images: int
    source: str

    def by_magnitude(self) -> tuple[LayerResponse, ...]:
        """Largest first: Fig. 7, bottom ("sorted by magnitude")."""
        return tuple(sorted(self.layers, key=lambda response: response.std, reverse=True))

    def to_json(self) -> list[dict]:
        return [{"layer": response.layer, "std": response.std} for response in self.layers]


class _Moments:
    """Running count, sum and sum of squares of every value seen (float64, so 10⁹ values
    still give an exact enough variance)."""

    def __init__(self):
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, values: torch.Tensor) -> None:
        values = values.detach().double()
        self.count += values.numel()
        self.total += float(values.sum())
        self.squares += float(values.square().sum())

    def std(self) -> float:
        mean = self.total / self.count
        return max(0.0, self.squares / self.count - mean * mean) ** 0.5


@contextmanager
def recorded_moments(model: nn.Module, modules: list[str]):
    """Yields {module name: _Moments} filled with the outputs of ``modules`` on each forward
    pass inside the block; the hooks are removed on exit, errors are not swallowed."""
    moments = {name: _Moments() for name in modules}

    def accumulate(accumulator: _Moments):
        def hook(module, inputs, output):
            accumulator.add(output)  # now: the in-place ReLU that follows overwrites it
        return hook

    with hooked(model, after=[(name, accumulate(moments[name])) for name in modules]):
        yield moments


def response_layers(subject: Subject) -> list[tuple[str, str]]:
    """(conv, BN) of every 3×3 layer followed by BN, in forward order: Fig. 7's layers (the stem's
    7×7 conv and a bottleneck's 1×1 convs are left out, as they are not 3×3 layers)."""
    return [(conv, bn) for conv, bn in conv_bn_pairs(subject.model, subject.spec)
            if subject.model.get_submodule(conv).kernel_size == (3, 3)]


@torch.no_grad()
def layer_responses(subject: Subject, probe: Probe, *, progress: Progress | None = None) -> Responses:
    """The std of each 3×3 layer's response over the probe's images (Fig. 7)."""
    layers = response_layers(subject)
    device = model_device(subject.model)
    with recorded_moments(subject.model, [bn for _, bn in layers]) as moments:
        for start, batch in batches(probe.images, device):
            subject.model(batch)
            report(progress, (start + batch.shape[0]) / probe.count)
    return Responses(model=subject.name, images=probe.count, source=probe.source,
                     layers=tuple(LayerResponse(conv, round(moments[bn].std(), 4)) for conv, bn in layers))


def mean_std(responses: Responses) -> float:
    """The mean of the layers' stds: one number per net, to compare nets (plain vs residual, 20 vs 56)."""
    return sum(layer.std for layer in responses.layers) / max(1, len(responses.layers))
