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

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from explorer.devices import has_native_bf16
from explorer.models import Block, blocks
from explorer.models.hooks import hooked
from explorer.paper.inside import prefix, probes
from explorer.paper.inside.defaults import DEFAULT_DRAWS
from explorer.paper.inside.probes import (
    InsideError,
    Probe,
    Progress,
    Subject,
    model_device,
    probe_evaluation,
    report,
    require_labels,
)


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
    precision: str = "fp32"  # what the forward passes computed in: "fp32", or "bf16" where it is native

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


def lesioned(model: nn.Module, removed: Sequence[Block]):
    """A ``with`` inside which ``model`` runs with the ``removed`` blocks taken out (see the
    module doc); InsideError before any hook is put on for a block that cannot be removed."""
    hooks = []
    for block in removed:
        if block.residual:
            hooks.append((block.branch_end, _zero_branch))
        elif block.downsampling:
            raise InsideError(f"{block.name} changes the shape of its input, so a plain net cannot skip it.")
        else:
            hooks.append((block.name, _skip_block))
    return hooked(model, after=hooks)


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


def lesion_precision(device: torch.device) -> str:
    """"bf16" where ``device`` computes bfloat16 in hardware (devices.has_native_bf16), else
    "fp32": emulated bf16 is slower than fp32 on a CPU without it. bf16 moves the errors by
    tenths of a point at most: ResNet-56 on the 2,000 shipped images, nothing removed 10.85%
    (fp32) and 10.95% (bf16), layer2.0 removed 17.15% and 17.10%, layer3.4 12.80% and 12.95%."""
    return "bf16" if has_native_bf16(device) else "fp32"


def lesions_of(candidates: Sequence[Block], draws: int, seed: int) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Every lesion of a study, as indices into ``candidates``: nothing removed, each block
    alone, then ``draws`` random subsets for each k; and (k, how many) of the random ones."""
    subsets = _random_subsets(len(candidates), draws, seed)
    lesions = [[]] + [[i] for i in range(len(candidates))] + [subset for _, drawn in subsets for subset in drawn]
    return lesions, [(k, len(drawn)) for k, drawn in subsets]


def lesion_study(subject: Subject, probe: Probe, *, draws: int = DEFAULT_DRAWS, seed: int = 0,
                 progress: Progress | None = None, reuse: bool = True) -> LesionStudy:
    """The error with each removable block removed, then with k random ones removed. With
    ``reuse`` (the default) the lesions share what they have in common (:mod:`.prefix`); the
    errors are the naive sweep's (``reuse=False``: a whole forward pass per lesion), exactly."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 0:
        raise InsideError(f"draws must be a whole number >= 0, got {draws!r}.")
    labels = require_labels(subject, probe)
    candidates = removable_blocks(subject.model, subject.spec)
    if not candidates:
        raise InsideError(f"{subject.name} has no block that can be removed.")
    lesions, sizes = lesions_of(candidates, draws, seed)
    precision = lesion_precision(model_device(subject.model))
    with torch.no_grad(), torch.autocast(model_device(subject.model).type, torch.bfloat16,
                                         enabled=precision == "bf16"):
        wrong = _prefix_wrong(subject, probe, labels, candidates, lesions, progress) if reuse else None
        if wrong is None:
            wrong = _naive_wrong(subject.model, probe, labels, candidates, lesions, progress)
    errors = [round(count / probe.count, 4) for count in wrong]
    singles = tuple(BlockLesion(block.name, errors[1 + i], block.downsampling) for i, block in enumerate(candidates))
    randoms, first = [], 1 + len(candidates)
    for k, count in sizes:
        drawn = errors[first:first + count]
        randoms.append(RandomLesion(k, round(sum(drawn) / count, 4), min(drawn), max(drawn)))
        first += count
    return LesionStudy(model=subject.name, residual=subject.spec.residual, baseline_error=errors[0],
                       blocks=singles, random=tuple(randoms), images=probe.count, source=probe.source, seed=seed,
                       precision=precision)


def _naive_wrong(model: nn.Module, probe: Probe, labels: torch.Tensor, candidates: Sequence[Block],
                 lesions: Sequence[Sequence[int]], progress: Progress | None) -> list[int]:
    """Wrong answers per lesion, a whole forward pass of every batch for each (Veit et al.'s procedure)."""
    wrong = []
    for done, lesion in enumerate(lesions, 1):
        with lesioned(model, [candidates[i] for i in lesion]):
            wrong.append(probe_evaluation(model, probe.images, labels).wrong)
        report(progress, done / len(lesions))
    return wrong


def _prefix_wrong(subject: Subject, probe: Probe, labels: torch.Tensor, candidates: Sequence[Block],
                  lesions: Sequence[Sequence[int]], progress: Progress | None) -> list[int] | None:
    """Wrong answers per lesion, each shared activation computed once (:mod:`.prefix`); None
    where the model is not a chain of blocks, or where the first batch shows that the shortcut
    computation differs from the model's own (then the naive sweep runs instead)."""
    links = prefix.chain(subject.model, subject.spec)
    if links is None:
        return None
    trie = _trie(links, candidates, lesions)
    leaves, device = _leaves(trie.root), model_device(subject.model)
    wrong, done = [0] * len(lesions), 0
    total = leaves * -(-probe.count // probes.BATCH_SIZE)

    def ran() -> None:
        nonlocal done
        done += 1
        report(progress, done / total)

    expected: list[torch.Tensor] = []  # the model's own logits on the first batch
    for start, batch in probes.batches(probe.images, device):
        target = labels[start:start + batch.shape[0]].to(device)
        if start == 0 and not _shortcuts_match(subject.model, links, candidates, batch, expected):
            return _naive_instead(subject)

        def score(indices, logits, target=target, first=start == 0) -> None:
            if first and 0 in indices and not torch.equal(logits, expected[0]):
                expected.clear()  # the chain is not the model's forward: the naive sweep decides
            miss = int((logits.float().argmax(dim=1) != target).sum())
            for index in indices:
                wrong[index] += miss
        prefix.execute(trie.root, links.run_stem(batch), links, score, ran)
        if not expected:
            return _naive_instead(subject)
    return wrong


def _naive_instead(subject: Subject) -> None:
    logging.getLogger("explorer").warning("%s's forward is not its chain of blocks: the lesion study runs the "
                                          "naive sweep", subject.name)


def _leaves(node: prefix.Node) -> int:
    children = [child for child in (node.removed, node.kept) if child is not None]
    return sum(_leaves(child) for child in children) if children else 1


def _shortcuts_match(model: nn.Module, links: prefix.Chain, candidates: Sequence[Block], batch: torch.Tensor,
                     expected: list[torch.Tensor]) -> bool:
    """Whether a removed block computed as ReLU(shortcut(x)) equals the model's own block with
    its branch zeroed, on ``batch``, for each kind of shortcut once (identity, option A's
    padding, a projection); ``expected`` gets the model's logits, which the chain's intact
    path must then equal."""
    seen, checked = set(), []
    for p, block in enumerate(links.blocks):
        kind = type(links.shortcuts[p]).__name__
        if block in candidates and block.residual and kind not in seen:
            seen.add(kind)
            checked.append(p)
    inputs: dict[int, torch.Tensor] = {}

    def keep_input(p: int):
        return lambda module, args: inputs.__setitem__(p, args[0])

    with hooked(model, before=[(links.modules[p], keep_input(p)) for p in checked]):
        expected.append(model(batch))
    for p in checked:
        with lesioned(model, [links.blocks[p]]):
            zeroed = links.modules[p](inputs[p])
        if not torch.equal(links.run_block(p, inputs[p], True), zeroed):
            return False
    return True


def lesion_passes(subject: Subject, draws: int = DEFAULT_DRAWS, seed: int = 0, batches: int = 1) -> float:
    """What :func:`lesion_study` costs in whole forward passes over the probe's images: the
    trie's blocks' worth over a pass's (:mod:`.prefix`), plus the model's own pass on the first
    of ``batches`` batches that checks the chain; a naive sweep's one pass per lesion where the
    model is not a chain."""
    candidates = removable_blocks(subject.model, subject.spec)
    lesions, _ = lesions_of(candidates, draws, seed)
    links = prefix.chain(subject.model, subject.spec)
    if links is None:
        return float(len(lesions))
    trie = _trie(links, candidates, lesions)
    return trie.cost() / (1.0 + trie.count + prefix.HEAD_COST) + 1.0 / max(1, batches)


def _trie(links: prefix.Chain, candidates: Sequence[Block], lesions: Sequence[Sequence[int]]) -> prefix.Plan:
    position = {block.name: p for p, block in enumerate(links.blocks)}
    return prefix.plan([[position[candidates[i].name] for i in lesion] for lesion in lesions], len(links.blocks),
                       links.removed_cost())
