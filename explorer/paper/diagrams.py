"""Block diagrams drawn from a model's real modules.

``torch.fx`` traces the block's ``forward``, so the picture is the code that runs: a
BasicBlock with a projection shortcut really shows ``downsample.0 → downsample.1`` joining
the main path at the addition, and a plain block really has no addition at all.

Tracing patches ``torch.nn.Module.__call__`` for the whole process while it runs, so a
server with other threads must call :func:`block_diagrams` through
:meth:`explorer.server.isolation.IsolationWorker.run` (the architecture page does).
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from explorer.models import ModelSpec, blocks, build_model, get_model_spec, shortcut_attributes

_MAIN = "#1f77b4"
_SHORTCUT = "#d62728"


def _label(name: str, module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        stride = f", /{module.stride[0]}" if module.stride[0] > 1 else ""
        return f"{name}\\n{kh}×{kw} conv, {module.out_channels}{stride}"
    if isinstance(module, nn.BatchNorm2d):
        return f"{name}\\nBatchNorm"
    if isinstance(module, nn.ReLU):
        return f"{name}\\nReLU"
    return f"{name}\\n{type(module).__name__}"


def _is_add(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add)


def _is_shortcut(target: str) -> bool:
    return target.split(".")[0] in shortcut_attributes()


def shortcut_kind(block: nn.Module) -> str:
    """"projection", "identity", "zero-padding" or "none" (a plain block)."""
    for name in sorted(shortcut_attributes()):
        shortcut = getattr(block, name, None)
        if shortcut is None:
            continue
        if any(isinstance(m, nn.Conv2d) for m in shortcut.modules()):
            return "projection"
        if not isinstance(shortcut, nn.Identity):
            return "zero-padding"
    graph = fx.symbolic_trace(block).graph
    return "identity" if any(_is_add(node) for node in graph.nodes) else "none"


def block_dot(block: nn.Module, title: str) -> str:
    """Graphviz DOT source for one residual (or plain) block, traced with torch.fx."""
    traced = fx.symbolic_trace(block)
    modules = dict(traced.named_modules())
    lines = [
        "digraph block {",
        "  rankdir=TB; nodesep=0.5; ranksep=0.3;",
        # Projector sizes (issue 38): Streamlit shrinks the drawing to its column, two blocks
        # side by side, so labels are drawn large (18-22 pt) and lines thick.
        f'  label="{title}"; labelloc=t; fontsize=22; fontname="Helvetica";',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=18];',
        '  edge [color="#1f77b4", penwidth=2.4, fontname="Helvetica", fontsize=16];',
    ]
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            lines.append(f'  {node.name} [label="x (block input)", shape=ellipse, fillcolor="#ffffff"];')
        elif node.op == "output":
            lines.append(f'  {node.name} [label="output", shape=ellipse, fillcolor="#ffffff"];')
        elif node.op == "call_module":
            shortcut = _is_shortcut(node.target)
            fill = "#fdecea" if shortcut else "#eef3fb"
            lines.append(f'  {node.name} [label="{_label(node.target, modules[node.target])}", fillcolor="{fill}"];')
        elif _is_add(node):
            lines.append(f'  {node.name} [label="+", xlabel="F(x) + shortcut", shape=circle, '
                         'width=0.6, fixedsize=true, fontsize=26, fillcolor="#fff7d6"];')
        else:
            lines.append(f'  {node.name} [label="{node.name}"];')
    for node in traced.graph.nodes:
        for source in node.all_input_nodes:
            on_shortcut = (
                any(n.op == "call_module" and _is_shortcut(n.target) for n in (source, node))
                or (source.op == "placeholder" and _is_add(node))
            )
            attributes = [f'color="{_SHORTCUT if on_shortcut else _MAIN}"']
            if on_shortcut and source.op == "placeholder":
                kind = "identity x" if _is_add(node) else "projection"
                attributes += [f'label=" {kind}"', f'fontcolor="{_SHORTCUT}"']
            lines.append(f"  {source.name} -> {node.name} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines)


def block_examples(model: nn.Module, spec: ModelSpec) -> list[tuple[str, str]]:
    """The first block of each shortcut kind: projection, identity, zero-padding or none."""
    found: dict[str, tuple[str, str]] = {}
    captions = {  # equation and option names from §3.2 and §4.1
        "projection": "Projection shortcut (Eq. 2, option B): a 1×1 conv (stride 2 where the size "
                      "halves) matches the new shape.",
        "identity": "Identity shortcut (Eq. 1): x is added unchanged, no parameters.",
        "zero-padding": "Zero-padding shortcut (option A): x is subsampled and padded with zero channels.",
        "none": "Plain block: no shortcut, so no addition (the paper's plain baseline).",
    }
    for block in blocks(model, spec):  # none in VGG
        kind = shortcut_kind(model.get_submodule(block.name))
        found.setdefault(kind, (block.name, captions[kind]))
    return list(found.values())


@dataclass(frozen=True)
class BlockDiagram:
    block: str  # dotted module name, "layer1.0"
    block_class: str  # "BasicBlock", "Bottleneck", "CifarBlock"
    caption: str  # which shortcut it shows, with the paper's equation
    dot: str  # Graphviz source
    forward_source: str  # the block's ``forward``, as the student's code to read


def block_diagrams(name: str) -> list[BlockDiagram]:
    """:func:`block_examples` of a registered model, drawn, on the meta device (no weights)."""
    model = build_model(name, device="meta")
    diagrams = []
    for block_name, caption in block_examples(model, get_model_spec(name)):
        block = model.get_submodule(block_name)
        diagrams.append(BlockDiagram(block_name, type(block).__name__, caption,
                                     block_dot(block, f"{block_name}: {type(block).__name__}"),
                                     inspect.getsource(type(block).forward)))
    return diagrams
