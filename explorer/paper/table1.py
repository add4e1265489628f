"""The paper's Table 1, regenerated from live models.

Everything here runs on PyTorch's ``meta`` device: modules and tensors carry shapes but no
data, so measuring ResNet-152 or VGG-19 costs no memory and no arithmetic.

Cost convention: multiply-accumulates (MACs), counted by ``torch.utils.flop_counter``
(convolutions, linear layers and matrix products). This is what the paper calls FLOPs
("3.6 billion FLOPs (multiply-adds)", §3.3). BatchNorm, ReLU, pooling and the shortcut
additions are not counted, in the paper or here.

``FlopCounterMode`` installs process-wide module hooks while it counts, so a server with
other threads calls :func:`analyze`, :func:`zoo_rows` and :func:`paper_table` through
:meth:`explorer.server.isolation.IsolationWorker.run` (the architecture page does); the CLI and the tests
call them directly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from explorer.models import ModelSpec, build_model, get_model_spec, list_models, shortcut_attributes
from explorer.models.hooks import hooked


@dataclass(frozen=True)
class LayerRow:
    name: str  # dotted module name, usable with model.get_submodule(name)
    kind: str  # module class
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    macs: int


@dataclass(frozen=True)
class StageRow:
    stage: str  # the paper's layer name: conv1, conv2_x, ...
    output_size: str  # spatial size, "56×56"
    blocks: str  # the block spec written as in Table 1
    params: int
    macs: int


@dataclass(frozen=True)
class Analysis:
    spec: ModelSpec
    layers: tuple[LayerRow, ...]  # every leaf module, in registration order
    stages: tuple[StageRow, ...]  # the rows of Table 1
    params: int
    macs: int  # for one image at spec.input_size


@contextlib.contextmanager
def record_output_shapes(model: nn.Module) -> Iterator[dict[str, tuple[int, ...]]]:
    """Record the last output shape of every submodule during the forward passes inside."""
    shapes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])
        return hook

    with hooked(model, after=[(module, recorder(name)) for name, module in model.named_modules() if name]):
        yield shapes


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.cache
def analyze(name: str) -> Analysis:
    """Params, MACs and output shapes of every layer and every Table 1 stage of a model.

    Cached per name: an architecture never changes, and the result is immutable.
    """
    spec = get_model_spec(name)
    model = build_model(name, device="meta")
    image = torch.empty(1, *spec.input_size, device="meta")
    with record_output_shapes(model) as shapes, FlopCounterMode(display=False, depth=None) as counter:
        model(image)
    # FlopCounterMode counts FLOPs = 2 × MACs, keyed by "<RootClass>.<dotted name>".
    macs_by_module = {
        key.partition(".")[2]: sum(ops.values()) // 2
        for key, ops in counter.get_flop_counts().items()
        if "." in key
    }

    layers = tuple(
        LayerRow(name, type(module).__name__, shapes.get(name, ()),
                 count_parameters(module), macs_by_module.get(name, 0))
        for name, module in model.named_modules()
        if name and not list(module.children())
    )
    stages = []
    for stage, module_names in spec.stages(model):
        modules = [model.get_submodule(n) for n in module_names]
        spatial = [shapes[n] for n in module_names if len(shapes.get(n, ())) == 3]
        stages.append(StageRow(
            stage=stage,
            output_size=f"{spatial[-1][1]}×{spatial[-1][2]}" if spatial else "1×1",
            blocks=describe_modules(modules),
            params=sum(count_parameters(m) for m in modules),
            macs=sum(macs_by_module.get(n, 0) for n in module_names),
        ))
    return Analysis(spec, layers, tuple(stages), count_parameters(model), counter.get_total_flops() // 2)


# --- block specs written like the paper ------------------------------------------------

def _conv_spec(conv: nn.Conv2d, *, with_stride: bool) -> str:
    kh, kw = conv.kernel_size
    text = f"{kh}×{kw}, {conv.out_channels}"
    if with_stride and conv.stride[0] > 1:
        text += f", stride {conv.stride[0]}"
    return text


def describe_module(module: nn.Module) -> str | None:
    """One module as the paper writes it, or None for layers the paper leaves implicit."""
    if isinstance(module, nn.Conv2d):
        return _conv_spec(module, with_stride=True)
    if isinstance(module, nn.MaxPool2d):
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        s = module.stride if isinstance(module.stride, int) else module.stride[0]
        return f"{k}×{k} max pool, stride {s}"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
        return "average pool"
    if isinstance(module, nn.Linear):
        return f"{module.out_features}-d fc"
    if isinstance(module, nn.Sequential):
        return describe_modules(list(module))
    convs = [
        child for name, child in module.named_children()
        if isinstance(child, nn.Conv2d) and name not in shortcut_attributes()
    ]
    if convs:
        # A residual (or plain) block: its convs in order. Table 1 omits the strides
        # inside blocks ("downsampling is performed by conv3_1, conv4_1, and conv5_1").
        return "[" + "; ".join(_conv_spec(c, with_stride=False) for c in convs) + "]"
    return None


def describe_modules(modules: list[nn.Module]) -> str:
    """Consecutive identical entries are folded into ``[…] × n`` as in Table 1."""
    parts = [text for text in map(describe_module, modules) if text]
    folded = []
    for text, run in groupby(parts):
        count = len(list(run))
        if count == 1:
            folded.append(text)
        else:
            folded.append(f"{text if text.startswith('[') else f'[{text}]'} × {count}")
    return " → ".join(folded)


# --- the zoo ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooRow:
    name: str
    depth: int
    block: str
    params: int
    gmacs: float
    paper_gmacs: float | None
    imagenet_top1: float | None  # torchvision's published weights, % accuracy
    paper_top1_error: float | None
    paper_params_m: float | None  # Table 6 prints the CIFAR nets' parameters
    summary: str


def zoo_row(name: str) -> ZooRow:
    analysis = analyze(name)
    spec = analysis.spec
    return ZooRow(
        name=spec.name,
        depth=spec.depth,
        block=spec.block,
        params=analysis.params,
        gmacs=analysis.macs / 1e9,
        paper_gmacs=spec.paper.gmacs if spec.paper else None,
        imagenet_top1=spec.imagenet_top1,
        paper_top1_error=spec.paper.top1_error if spec.paper else None,
        paper_params_m=spec.paper.params_m if spec.paper else None,
        summary=spec.summary,
    )


def zoo_rows(family: str | None = None) -> list[ZooRow]:
    """:func:`zoo_row` of every registered model (of one family), in registration order."""
    return [zoo_row(spec.name) for spec in list_models(family)]


def paper_table(names: list[str]) -> dict[str, list[str]]:
    """Table 1 laid out as in the paper: one column of block specs per model.

    Returns ``{"layer name": [...], "output size": [...], name: [...], ...}`` with a last
    row of GMACs. All models must share the same stage names (the ImageNet ResNets do).
    """
    analyses = [analyze(name) for name in names]
    first = analyses[0]
    table = {
        "layer name": [row.stage for row in first.stages] + ["GMACs"],
        "output size": [row.output_size for row in first.stages] + [""],
    }
    for analysis in analyses:
        if [r.stage for r in analysis.stages] != [r.stage for r in first.stages]:
            raise ValueError(f"{analysis.spec.name} has other stages than {first.spec.name}.")
        table[analysis.spec.name] = [row.blocks for row in analysis.stages] + [f"{analysis.macs / 1e9:.2f}"]
    return table
