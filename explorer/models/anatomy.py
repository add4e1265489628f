"""The anatomy of a model: which layers count in its depth, where its stages end, which
modules are shortcuts.

Everything here is read from the model's registry entry (:class:`ModelSpec`: its Table 1
``stages``, the ``branch`` of its blocks, its ``shortcut_attribute``) and from the modules
themselves, never guessed from a model's or a module's name.

* The stem is the first row of ``spec.stages`` ("conv1"), the head the last ("pool, fc");
  the rows between are the body, made of blocks (§3.3, Table 1).
* A block's residual branch F(x) is its ``branch`` of conv/BatchNorm pairs; the shortcut
  module (a 1×1 projection, Eq. 2, or option A's zero padding) is not part of the depth the
  paper counts ("the 34-layer ResNet" has 33 branch or stem convs + 1 fc).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from explorer.models.registry import ModelSpec, Stage, list_models


@dataclass(frozen=True)
class Block:
    name: str  # qualified module name, e.g. "layer2.0"
    stage: str  # the Table 1 row it belongs to: "conv3_x" (ImageNet), "stage2" (CIFAR)
    index: int  # position within its stage, 0-based
    residual: bool  # True when the block adds a shortcut (False for plain blocks)
    branch_end: str  # the BatchNorm whose output is F(x) before the addition: "layer2.0.bn2"
    shortcut: str | None  # the module that projects or pads x; None for identity and plain blocks
    downsampling: bool  # the block changes spatial size or channel count


def stem_stage(model: nn.Module, spec: ModelSpec) -> Stage:
    """The first row of Table 1 ("conv1"): the layers before the first stage of blocks."""
    return tuple(spec.stages(model))[0]


def head_stage(model: nn.Module, spec: ModelSpec) -> Stage:
    """The last row of Table 1 ("pool, fc"): global pooling and the classifier."""
    return tuple(spec.stages(model))[-1]


def body_stages(model: nn.Module, spec: ModelSpec) -> list[Stage]:
    """Table 1's rows minus the stem and the head: conv2_x … conv5_x, or stage1 … stage3."""
    return list(spec.stages(model))[1:-1]


def stage_ends(model: nn.Module, spec: ModelSpec) -> list[tuple[str, str]]:
    """(Table 1 row, name of its last module) of every body stage:
    ("conv2_x", "layer1") … ("conv5_x", "layer4") for an ImageNet ResNet,
    ("stage1", "layer1") … ("stage3", "layer3") for a CIFAR net (§4.2)."""
    return [(stage, modules[-1]) for stage, modules in body_stages(model, spec)]


def _is_block(module: nn.Module, spec: ModelSpec) -> bool:
    return bool(spec.branch) and all(hasattr(module, conv) for conv, _ in spec.branch)


def _shortcut_of(block: nn.Module, name: str, spec: ModelSpec) -> str | None:
    if not spec.residual or spec.shortcut_attribute is None:
        return None
    module = getattr(block, spec.shortcut_attribute, None)
    if module is None or isinstance(module, nn.Identity):
        return None  # a parameter-free identity: x is added unchanged (Eq. 1)
    return f"{name}.{spec.shortcut_attribute}"


def _changes_shape(block: nn.Module, spec: ModelSpec) -> bool:
    convs = [getattr(block, conv) for conv, _ in spec.branch]
    return convs[0].in_channels != convs[-1].out_channels or any(c.stride != (1, 1) for c in convs)


def blocks(model: nn.Module, spec: ModelSpec) -> list[Block]:
    """Every block of the body, input to output; [] for a net without blocks (VGG)."""
    found = []
    for stage, modules in body_stages(model, spec):
        index = 0
        for module_name in modules:
            container = model.get_submodule(module_name)
            children = container.named_children() if isinstance(container, nn.Sequential) else ()
            for child_name, child in children:
                if not _is_block(child, spec):
                    continue
                name = f"{module_name}.{child_name}"
                found.append(Block(
                    name=name, stage=stage, index=index, residual=spec.residual,
                    branch_end=f"{name}.{spec.branch[-1][1]}",
                    shortcut=_shortcut_of(child, name, spec),
                    downsampling=_changes_shape(child, spec),
                ))
                index += 1
    return found


def shortcut_modules(model: nn.Module, spec: ModelSpec | None = None) -> list[str]:
    """Qualified names of every shortcut module (projections and option A's padding).

    Without ``spec`` (a model whose registry entry the caller does not have, e.g. a
    fine-tuned backbone), any non-identity module held under one of the registered
    :func:`shortcut_attributes` is a shortcut.
    """
    if spec is not None:
        return [block.shortcut for block in blocks(model, spec) if block.shortcut is not None]
    attributes = shortcut_attributes()
    return [f"{name}.{attribute}" if name else attribute
            for name, module in model.named_modules() for attribute in sorted(attributes)
            if isinstance(getattr(module, attribute, None), nn.Module)
            and not isinstance(getattr(module, attribute), nn.Identity)]


def counted_layers(model: nn.Module, spec: ModelSpec | None = None) -> list[tuple[str, nn.Module]]:
    """The conv and fc layers the paper counts in the depth, input to output: every
    ``Conv2d`` and ``Linear`` outside the shortcut modules (§3.3: projections are extra)."""
    shortcuts = tuple(f"{name}." for name in shortcut_modules(model, spec))
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear)) and not f"{name}.".startswith(shortcuts)]


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weights of :func:`counted_layers`, input to output, named as in the model's
    ``state_dict`` ("layer1.0.conv1.weight"): the conv and fc layers the paper counts in a
    depth, whose gradient norms the lab draws."""
    return [(f"{name}.weight", module.weight) for name, module in counted_layers(model)]


def conv_bn_pairs(model: nn.Module, spec: ModelSpec) -> list[tuple[str, str]]:
    """(conv, BatchNorm) of the stem and of every conv in every block, input to output:
    the layers whose responses the paper's Fig. 7 plots (the BN output, before ReLU/addition)."""
    _, stem = stem_stage(model, spec)
    pairs = [(conv, bn) for conv, bn in zip(stem, stem[1:])
             if isinstance(model.get_submodule(conv), nn.Conv2d)
             and isinstance(model.get_submodule(bn), nn.BatchNorm2d)]
    for block in blocks(model, spec):
        pairs += [(f"{block.name}.{conv}", f"{block.name}.{bn}") for conv, bn in spec.branch]
    return pairs


def shortcut_attributes() -> frozenset[str]:
    """The attribute names registered models give their blocks' shortcut modules
    ("downsample" in torchvision, "shortcut" in the CIFAR nets), for code that sees one
    block without its model's registry entry (the block diagrams)."""
    return frozenset(spec.shortcut_attribute for spec in list_models() if spec.shortcut_attribute)
