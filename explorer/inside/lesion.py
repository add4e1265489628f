"""Lesion study (Veit, Wilber & Belongie, NeurIPS 2016, "Residual networks behave like
ensembles of relatively shallow networks").

**Removing a residual block** at test time sets its branch F(x) to zero and keeps the
shortcut, so the block computes ReLU(shortcut(x)) (Veit et al. §4.1, Fig. 3a). It is done
with a forward hook on the branch's last BatchNorm that returns zeros: no copy of the model,
no re-tracing, the same weights for every lesion. Downsampling blocks can be removed too
(their option-A or projection shortcut still changes the shape), and are marked.

**Removing a plain block** means skipping it: its output is replaced by its input (a
forward hook on the block returning ``x``). Veit et al. (§4.1) compare with a VGG net whose
layers they delete one at a time; a layer can only be skipped where its input and output
have the same shape, so a plain net's downsampling blocks are not removable. The unit
removed is a whole block (two 3×3 layers), the same layers a residual lesion removes, so
plain and residual errors compare like for like.

**Unravelled view** (Veit et al. §3, Fig. 1): an n-block ResNet is a collection of 2ⁿ
paths, one per subset of blocks whose branch it passes through; C(n, k) of them have length
k, a binomial distribution centred on n/2 (their Fig. 6a). Removing a block removes the
paths through it and leaves the other half: error rises smoothly with the number of blocks
removed (their Fig. 5a), unlike a plain net, which has one path.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from explorer.inside.data import InsideError, Probe, Progress, Subject, evaluate, report, require_labels
from explorer.inside.defaults import DEFAULT_DRAWS
from explorer.models import Block, blocks



@dataclass(frozen=True)
class BlockLesion:
    block: str
    error: float  # top-1 error (fraction) with this block removed
    downsampling: bool


@dataclass(frozen=True)
class RandomLesion:
    removed: int  # k blocks removed at random
    error_mean: float
    error_min: float
    error_max: float


@dataclass(frozen=True)
class LesionStudy:
    model: str
    residual: bool
    baseline_error: float  # nothing removed
    blocks: tuple[BlockLesion, ...]  # every removable block, input to output
    random: tuple[RandomLesion, ...]  # k = 1 … half of the removable blocks
    images: int
    source: str
    seed: int

    def to_json(self) -> dict:
        return {"model": self.model, "baseline_error": self.baseline_error,
                "blocks": [{"block": b.block, "error": b.error, "downsampling": b.downsampling} for b in self.blocks],
                "random": [{"removed": r.removed, "error_mean": r.error_mean, "error_min": r.error_min,
                            "error_max": r.error_max} for r in self.random]}


def removable_blocks(model: nn.Module, spec) -> list[Block]:
    """Every block of a ResNet; the blocks of a plain net whose input and output shapes match."""
    return [block for block in blocks(model, spec) if block.residual or not block.downsampling]


def _zero_branch(module, inputs, output):
    return torch.zeros_like(output)  # F(x) = 0: the block passes only its shortcut


def _skip_block(module, inputs, output):
    return inputs[0]  # a plain block removed: its output is its input


@contextmanager
def lesioned(model: nn.Module, removed: Sequence[Block]):
    """Inside the block, ``model`` runs with the ``removed`` blocks taken out (see the module doc)."""
    handles = []
    try:
        for block in removed:
            if block.residual:
                handles.append(model.get_submodule(block.branch_end).register_forward_hook(_zero_branch))
            elif block.downsampling:
                raise InsideError(f"{block.name} changes the shape of its input, so a plain net cannot skip it.")
            else:
                handles.append(model.get_submodule(block.name).register_forward_hook(_skip_block))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def path_length_counts(n: int) -> list[int]:
    """C(n, k) for k = 0 … n: how many of an n-block ResNet's 2ⁿ paths pass through k branches."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InsideError(f"The number of blocks must be a whole number >= 0, got {n!r}.")
    return [math.comb(n, k) for k in range(n + 1)]


def _random_subsets(count: int, draws: int, seed: int) -> list[tuple[int, list[list[int]]]]:
    """For k = 1 … count // 2, ``draws`` seeded random k-subsets of range(count)."""
    rng = random.Random(seed)
    if draws == 0:
        return []
    return [(k, [sorted(rng.sample(range(count), k)) for _ in range(draws)]) for k in range(1, count // 2 + 1)]


def lesion_study(subject: Subject, probe: Probe, *, draws: int = DEFAULT_DRAWS, seed: int = 0,
                 progress: Progress | None = None) -> LesionStudy:
    """The error with each removable block removed, then with k random ones removed."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 0:
        raise InsideError(f"draws must be a whole number >= 0, got {draws!r}.")
    labels = require_labels(subject, probe)
    model = subject.model
    candidates = removable_blocks(model, subject.spec)
    if not candidates:
        raise InsideError(f"{subject.name} has no block that can be removed.")
    subsets = _random_subsets(len(candidates), draws, seed)
    total = 1 + len(candidates) + sum(len(drawn) for _, drawn in subsets)
    done = 0

    def error_without(removed: Sequence[Block]) -> float:
        nonlocal done
        with lesioned(model, removed):
            error = evaluate(model, probe.images, labels)[1]
        done += 1
        report(progress, done / total)
        return round(error, 4)

    baseline = error_without([])
    singles = tuple(BlockLesion(block.name, error_without([block]), block.downsampling) for block in candidates)
    randoms = []
    for k, drawn in subsets:
        errors = [error_without([candidates[i] for i in subset]) for subset in drawn]
        randoms.append(RandomLesion(k, round(sum(errors) / len(errors), 4), min(errors), max(errors)))
    return LesionStudy(model=subject.name, residual=subject.spec.residual, baseline_error=baseline,
                       blocks=singles, random=tuple(randoms), images=probe.count, source=probe.source, seed=seed)
