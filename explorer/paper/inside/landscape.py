"""Loss surfaces around the trained weights (Li et al., NeurIPS 2018, "Visualizing the Loss
Landscape of Neural Nets").

The loss is evaluated at θ + α·δ + β·η for a grid of (α, β), where δ and η are random
Gaussian directions, *filter-normalised* (Li et al. §4): each filter of δ (one output slice
of a conv or fc weight) is rescaled to the norm of the same filter of θ. Without this the
picture depends on the scale of the weights, which BN makes arbitrary (a net whose weights
are ten times larger computes the same function but looks ten times flatter).

As in Li et al.'s ``--xignore biasbn``, BatchNorm parameters, biases and every other 1-D
parameter get a zero direction, and BN runs in eval mode: its running statistics are the
trained ones at every point. Points are evaluated with ``torch.func.functional_call``, which
runs the model's own modules on other parameter tensors: the trained weights are never
touched and the model is never copied. ``torch.func.vmap`` evaluates a chunk of grid points
in one forward pass (the weights stacked along a new first axis, a conv becoming a grouped
conv), which on a small probe cuts the per-call overhead that otherwise dominates: on the
2-core CPU a row of 31 points on 16 images took 7 s this way against 46 s point by point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from explorer.paper.inside import probes
from explorer.paper.inside.defaults import DEFAULT_GRID, DEFAULT_SPAN
from explorer.paper.inside.probes import (
    InsideError,
    Probe,
    Progress,
    Subject,
    batches,
    model_device,
    report,
    require_labels,
)
from explorer.settings import LANDSCAPE_GRID, LANDSCAPE_SPAN, LimitError

Direction = dict[str, torch.Tensor]  # parameter name -> a tensor of its shape


@dataclass(frozen=True)
class Surface:
    """The loss on a grid around the trained weights; ``loss[i][j]`` is at ``alphas[i]``, ``betas[j]``."""

    model: str
    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    loss: tuple[tuple[float, ...], ...]  # mean cross-entropy over the probe's images
    seed: int  # seeds the two random directions
    images: int
    source: str  # the probe's data, in words
    seconds: float  # wall time of the computation

    def line(self) -> tuple[float, ...]:
        """The 1-D slice along the first direction (β = 0): the row of the surface there."""
        if 0.0 not in self.betas:
            raise InsideError("The 1-D slice needs β = 0 on the grid: use an odd number of points.")
        column = self.betas.index(0.0)
        return tuple(row[column] for row in self.loss)

    def to_json(self) -> dict:
        return {"model": self.model, "alphas": list(self.alphas), "betas": list(self.betas),
                "loss": [list(row) for row in self.loss]}


def perturbed_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters that move: conv and fc weights (2-D and more). BN's weight and bias and
    all biases are 1-D and stay at their trained values (Li et al.'s "biasbn" option)."""
    return [(name, parameter) for name, parameter in model.named_parameters() if parameter.dim() > 1]


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> Direction:
    """A Gaussian direction with each filter scaled to the norm of the weight's filter (Li et al. §4).

    A filter is one output slice ``weight[k]`` (a conv's ``(C_in, kh, kw)`` kernel, or an fc
    row). A filter of zeros in θ gets a zero direction.
    """
    direction = {}
    for name, weight in perturbed_parameters(model):
        noise = torch.randn(weight.shape, generator=generator, dtype=torch.float32).to(weight)
        filter_norms = weight.detach().flatten(1).norm(dim=1)
        noise_norms = noise.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (filter_norms / noise_norms).view(-1, *([1] * (weight.dim() - 1)))
        direction[name] = noise * scale
    return direction


def random_directions(model: nn.Module, seed: int, count: int = 2) -> list[Direction]:
    """``count`` filter-normalised directions, drawn in order from one seeded generator (so the
    first direction of a 2-D surface is the direction of the 1-D slice with the same seed)."""
    generator = torch.Generator().manual_seed(seed)
    return [filter_normalized_direction(model, generator) for _ in range(count)]


POINT_IMAGES = 2048  # grid points × images in one vmapped forward pass: bounds the activations' memory


def _losses(subject: Subject, probe: Probe, labels: torch.Tensor, directions: list[Direction],
            points: list[tuple[float, ...]], progress: Progress | None) -> list[float]:
    """The mean cross-entropy at θ + Σ cᵢ·dᵢ for each ``points`` coordinates c, in order."""
    model = subject.model
    trained = {name: parameter.detach() for name, parameter in model.named_parameters()}
    buffers = dict(model.named_buffers())  # BN's running statistics: the trained ones everywhere

    def loss_at(parameters, images, targets):
        logits = functional_call(model, (parameters, buffers), (images,))
        return F.cross_entropy(logits.float(), targets, reduction="sum")

    batched = vmap(loss_at, in_dims=(0, None, None))
    image_batch = min(probes.BATCH_SIZE, probe.count)
    chunk = max(1, POINT_IMAGES // image_batch)
    device = model_device(model)
    losses = []
    was_training = model.training
    model.eval()
    try:
        for first in range(0, len(points), chunk):
            coordinates = torch.tensor(points[first:first + chunk], dtype=torch.float32, device=device)
            stacked = {name: _moved(weight, coordinates, [d.get(name) for d in directions])
                       for name, weight in trained.items()}
            total = torch.zeros(len(coordinates), dtype=torch.float64, device=device)
            with torch.no_grad():
                for start, images in batches(probe.images, device, image_batch):
                    total += batched(stacked, images, labels[start:start + images.shape[0]].to(device)).double()
            losses += (total / probe.count).tolist()
            report(progress, len(losses) / len(points))
    finally:
        model.train(was_training)
    return losses


def _moved(weight: torch.Tensor, coordinates: torch.Tensor, directions: list[torch.Tensor | None]) -> torch.Tensor:
    """θ + Σ cᵢ·dᵢ for each row c of ``coordinates``, stacked: shape (points, *weight.shape)."""
    points = coordinates.shape[0]
    if directions[0] is None:  # not perturbed (BN, biases): the trained value at every point
        return weight.expand(points, *weight.shape)
    moved = weight.expand(points, *weight.shape).clone()
    for column, direction in enumerate(directions):
        moved += coordinates[:, column].view(-1, *([1] * weight.dim())) * direction
    return moved


def grid_axis(grid: int, span: float) -> tuple[float, ...]:
    """``grid`` evenly spaced coordinates from −span to +span (0 is one of them when ``grid`` is odd).

    Both are checked against their declared ranges (``settings.LANDSCAPE_GRID``, ``LANDSCAPE_SPAN``)
    before anything is allocated: the cost grows as grid² forward passes, and a span of 1e308
    overflows every loss to infinity."""
    for limit, value, what, why in (
            (LANDSCAPE_GRID, grid, "The grid (points per axis)", "one point is just the trained weights"),
            (LANDSCAPE_SPAN, span, "The span (α, β in [−span, span])", "in filter-normalised units; Li et al. plot 1")):
        try:
            limit.check(value, what)
        except LimitError as error:
            raise InsideError(f"{str(error).rstrip('.')} ({why}).") from None
    return tuple(round(float(value), 6) + 0.0 for value in torch.linspace(-span, span, grid, dtype=torch.float64))


def loss_surface(subject: Subject, probe: Probe, *, grid: int = DEFAULT_GRID, span: float = DEFAULT_SPAN,
                 seed: int = 0, progress: Progress | None = None) -> Surface:
    """The 2-D loss surface on a ``grid`` × ``grid`` lattice of [−span, span]² (Li et al. Fig. 5)."""
    axis = grid_axis(grid, span)
    labels = require_labels(subject, probe)
    started = time.perf_counter()
    directions = random_directions(subject.model, seed, 2)
    losses = _losses(subject, probe, labels, directions, [(a, b) for a in axis for b in axis], progress)
    rows = tuple(tuple(round(value, 4) for value in losses[i * grid:(i + 1) * grid]) for i in range(grid))
    return Surface(model=subject.name, alphas=axis, betas=axis, loss=rows, seed=seed,
                   images=probe.count, source=probe.source, seconds=round(time.perf_counter() - started, 1))


def loss_line(subject: Subject, probe: Probe, *, points: int = DEFAULT_GRID, span: float = DEFAULT_SPAN,
              seed: int = 0, progress: Progress | None = None) -> Surface:
    """The 1-D slice along the first direction of ``seed`` (Li et al. Fig. 3): a one-column
    :class:`Surface` with ``betas == (0.0,)``, the same values as that surface's β = 0 column."""
    axis = grid_axis(points, span)
    labels = require_labels(subject, probe)
    started = time.perf_counter()
    directions = random_directions(subject.model, seed, 1)
    losses = _losses(subject, probe, labels, directions, [(alpha,) for alpha in axis], progress)
    rows = tuple((round(value, 4),) for value in losses)
    return Surface(model=subject.name, alphas=axis, betas=(0.0,), loss=rows, seed=seed,
                   images=probe.count, source=probe.source, seconds=round(time.perf_counter() - started, 1))
