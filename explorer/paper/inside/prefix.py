"""The lesion study without recomputing what its lesions share (issue 38).

Removing block i changes nothing before it: the activation entering block i is the one the
intact net computes. And the lesions of one study share more than that: every lesion whose
first removed block is i, and the single removal of i itself, agree up to their *second*
removed block, and so on. So the lesions, each a set of removed blocks, are arranged in a
trie over the blocks in forward order (:func:`plan`): a node is the activation entering one
block with a given set of earlier blocks removed, and each node is computed once per batch,
for every lesion that passes through it. The naive sweep runs one whole forward pass per
lesion; on a 27-block ResNet-56 with 3 draws per k, the trie computes 47% of the blocks that
sweep computes (:func:`Plan.fraction`).

A removed block costs next to nothing here: a residual one is ReLU(shortcut(x)) (Veit et
al.'s F(x) = 0, without computing F), a plain one is skipped. The errors are exactly the naive
sweep's (the same modules run on the same tensors, in batches of the same size): :func:`chain`
checks it on the first batch, and the study falls back to the naive sweep where it does not
hold (a model whose forward is not stem, blocks, pool, fc).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from explorer.models import Block, ModelSpec, blocks
from explorer.models.anatomy import head_stage, stem_stage

REMOVED_COST = 0.1  # a removed residual block (its shortcut and a ReLU) in blocks' worth of work
HEAD_COST = 0.05  # pooling and the fc layer, in blocks' worth (a CIFAR block is 2 × 2.4M MACs an image)


@dataclass(frozen=True)
class Node:
    """The activation entering block ``position`` for the lesions in ``lesions``, which agree
    on every block before it. ``removed`` and ``kept`` are where they go next (either may be
    None); at the end of the net (``position == blocks``) the lesions are scored."""

    position: int
    lesions: tuple[int, ...]  # indices into the plan's lesion list
    removed: Node | None = None
    kept: Node | None = None


def _node(position: int, lesions: list[int], sets: Sequence[frozenset[int]], count: int) -> Node:
    if position == count:
        return Node(position, tuple(lesions))
    removed = [i for i in lesions if position in sets[i]]
    kept = [i for i in lesions if position not in sets[i]]
    return Node(position, tuple(lesions),
                removed=_node(position + 1, removed, sets, count) if removed else None,
                kept=_node(position + 1, kept, sets, count) if kept else None)


@dataclass(frozen=True)
class Plan:
    """The trie of a study's lesions (each a set of block positions removed) over ``count`` blocks."""

    root: Node
    count: int
    lesions: tuple[frozenset[int], ...]
    removed_cost: tuple[float, ...]  # per position: what running that block removed costs, in blocks

    def cost(self) -> float:
        """Blocks' worth of work per batch: the stem once, each node's block, the head per leaf."""
        total, stack = 1.0, [self.root]
        while stack:
            node = stack.pop()
            if node.position == self.count:
                total += HEAD_COST
                continue
            total += (node.kept is not None) + (node.removed is not None) * self.removed_cost[node.position]
            stack += [child for child in (node.removed, node.kept) if child is not None]
        return total

    def naive_cost(self) -> float:
        """The naive sweep's blocks' worth per batch: a whole pass per lesion (its hooks run a
        removed block, then zero its branch or return its input)."""
        return len(self.lesions) * (1.0 + self.count + HEAD_COST)

    def fraction(self) -> float:
        """This plan's work over the naive sweep's."""
        return self.cost() / self.naive_cost()


def plan(lesions: Sequence[Sequence[int]], count: int, removed_cost: Sequence[float]) -> Plan:
    """The trie of ``lesions`` (each a collection of positions in 0 … count − 1)."""
    sets = tuple(frozenset(lesion) for lesion in lesions)
    return Plan(_node(0, list(range(len(sets))), sets, count), count, sets, tuple(removed_cost))


@dataclass(frozen=True)
class Chain:
    """A net as stem → blocks → head, each callable on the activation before it."""

    stem: tuple[nn.Module, ...]
    blocks: tuple[Block, ...]  # every block of the body, in forward order
    modules: tuple[nn.Module, ...]  # the blocks' modules
    shortcuts: tuple[nn.Module | None, ...]  # each block's shortcut module (None: identity)
    head: tuple[nn.Module, ...]

    def run_stem(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.stem:
            x = module(x)
        return x

    def run_block(self, position: int, x: torch.Tensor, removed: bool) -> torch.Tensor:
        if not removed:
            return self.modules[position](x)
        if not self.blocks[position].residual:
            return x  # a plain block removed is skipped: its output is its input
        shortcut = self.shortcuts[position]
        return F.relu(x if shortcut is None else shortcut(x))  # F(x) = 0: ReLU(0 + shortcut(x))

    def run_head(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.head:
            x = module(x.flatten(1) if isinstance(module, nn.Linear) else x)
        return x

    def removed_cost(self) -> list[float]:
        return [REMOVED_COST if block.residual else 0.0 for block in self.blocks]


def chain(model: nn.Module, spec: ModelSpec) -> Chain | None:
    """``model`` as a :class:`Chain`, or None when its body is not just its blocks in order."""
    found = blocks(model, spec)
    if not found:
        return None
    _, stem = stem_stage(model, spec)
    _, head = head_stage(model, spec)
    body = [name for _, modules in list(spec.stages(model))[1:-1] for name in modules]
    body_blocks = [f"{name}.{child}" for name in body if isinstance(model.get_submodule(name), nn.Sequential)
                   for child, _ in model.get_submodule(name).named_children()]
    stages = [isinstance(model.get_submodule(name), nn.Sequential) for name in body]
    extra = body[:stages.index(True)] if True in stages else body  # ImageNet's maxpool, before layer1
    if body_blocks != [block.name for block in found] or not all(stages[len(extra):]):
        return None  # something besides blocks inside or between the stages
    return Chain(stem=tuple(model.get_submodule(name) for name in [*stem, *extra]), blocks=tuple(found),
                 modules=tuple(model.get_submodule(block.name) for block in found),
                 shortcuts=tuple(model.get_submodule(block.shortcut) if block.shortcut else None for block in found),
                 head=tuple(model.get_submodule(name) for name in head))


Score = Callable[[Sequence[int], torch.Tensor], None]  # score(lesion indices, logits)


def execute(node: Node, x: torch.Tensor, links: Chain, score: Score, ran: Callable[[], None] | None = None) -> None:
    """Walk the trie from ``node`` with ``x`` entering its block: each node's block runs once;
    ``score`` gets the logits of each leaf's lesions; ``ran()`` after each leaf (progress)."""
    while node.position < len(links.blocks):
        if node.removed is not None and node.kept is not None:  # lesions part here: the removed ones first
            execute(node.removed, links.run_block(node.position, x, True), links, score, ran)
            x, node = links.run_block(node.position, x, False), node.kept
        elif node.removed is not None:
            x, node = links.run_block(node.position, x, True), node.removed
        else:
            x, node = links.run_block(node.position, x, False), node.kept
    score(node.lesions, links.run_head(x))
    if ran is not None:
        ran()
