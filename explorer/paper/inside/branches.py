"""How much each block changes its input: the mean over images of ‖F(x)‖ / ‖x‖.

x is the block's input and F(x) its residual branch, read at the branch's last BatchNorm
(before the addition; :attr:`~explorer.models.Block.branch_end`). §3.1 argues that when the
identity is close to optimal, "it should be easier for the solver to find the perturbations
with reference to an identity mapping": in a trained ResNet the ratios are small (Fig. 7
shows it through the response stds). For a plain block the same tensor is the whole
block's output before its ReLU, which *replaces* x rather than adding to it, so its ratio
says how large the new representation is, not how small a change is.

Norms are over one image's whole tensor (channels × positions); a downsampling block's F(x)
has another shape than x, and the ratio still compares their sizes.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from explorer.models import Block, blocks
from explorer.models.hooks import hooked
from explorer.paper.inside.probes import InsideError, Probe, Progress, Subject, batches, model_device, report


@dataclass(frozen=True)
class BranchRatio:
    block: str  # e.g. "layer2.0"
    ratio: float  # mean over images of ‖F(x)‖ / ‖x‖
    downsampling: bool


@dataclass(frozen=True)
class Branches:
    model: str
    residual: bool
    blocks: tuple[BranchRatio, ...]  # input to output
    images: int
    source: str

    def to_json(self) -> dict:
        return {"model": self.model, "blocks": [{"block": b.block, "ratio": b.ratio} for b in self.blocks]}


def _per_image_norms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().flatten(1).double().norm(dim=1)


@contextmanager
def recorded_ratios(model: nn.Module, found: list[Block]):
    """Yields {block name: list of per-batch sums of ‖F(x)‖/‖x‖}, filled on each forward pass:
    ‖x‖ read by a pre-hook on the block, ‖F(x)‖ by a hook on its branch's last BatchNorm."""
    sums = {block.name: [] for block in found}
    inputs = {}

    def input_norms(name: str):
        def before(module, args):
            inputs[name] = _per_image_norms(args[0]).clamp_min(1e-12)
        return before

    def branch_ratio_sum(name: str):
        def after(module, args, output):
            sums[name].append(float((_per_image_norms(output) / inputs[name]).sum()))
        return after

    with hooked(model, before=[(block.name, input_norms(block.name)) for block in found],
                after=[(block.branch_end, branch_ratio_sum(block.name)) for block in found]):
        yield sums


@torch.no_grad()
def branch_ratios(subject: Subject, probe: Probe, *, progress: Progress | None = None) -> Branches:
    """‖F(x)‖ / ‖x‖ per block, averaged over the probe's images."""
    found = blocks(subject.model, subject.spec)
    if not found:
        raise InsideError(f"{subject.name} has no blocks (a VGG-style net): there is no branch to measure.")
    device = model_device(subject.model)
    with recorded_ratios(subject.model, found) as sums:
        for start, batch in batches(probe.images, device):
            subject.model(batch)
            report(progress, (start + batch.shape[0]) / probe.count)
    return Branches(model=subject.name, residual=subject.spec.residual, images=probe.count, source=probe.source,
                    blocks=tuple(BranchRatio(block.name, round(sum(sums[block.name]) / probe.count, 4),
                                             block.downsampling) for block in found))
