"""The ImageNet models of the paper: ResNet-18…152, their plain counterparts and VGG-19.

ResNet-18…152 are torchvision's builders unchanged, so their parameter counts and weights
are torchvision's. Two additions make the paper's comparisons reproducible:

* ``resnet50_v1`` / ``resnet101_v1`` / ``resnet152_v1``: the bottleneck exactly as in the
  2015 paper, stride 2 on the *first* 1×1 conv. torchvision ("ResNet v1.5") moves that
  stride to the 3×3 conv, which costs more multiply-adds (the 3×3 now runs at the higher
  resolution) and is slightly more accurate. The parameters are identical.
* ``plain18`` / ``plain34``: the same stacks with the shortcuts removed (Fig. 3, middle).
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision import models as tvm
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, conv1x1, conv3x3

from explorer.models.registry import ModelSpec, PaperNumbers, Stage, register_model

IMAGENET_INPUT = (3, 224, 224)
IMAGENET_CLASSES = 1000

# Table 1: rows of the paper, and the torchvision modules each is made of.
RESNET_STAGES: tuple[Stage, ...] = (
    ("conv1", ("conv1", "bn1", "relu")),
    ("conv2_x", ("maxpool", "layer1")),
    ("conv3_x", ("layer2",)),
    ("conv4_x", ("layer3",)),
    ("conv5_x", ("layer4",)),
    ("pool, fc", ("avgpool", "fc")),
)


def resnet_stages(model: nn.Module) -> tuple[Stage, ...]:
    return RESNET_STAGES


def vgg_stages(model: nn.Module) -> list[Stage]:
    """VGG's five conv groups end at a max pool; the classifier is the last row."""
    stages: list[Stage] = []
    group: list[str] = []
    for index, layer in enumerate(model.features):
        group.append(f"features.{index}")
        if isinstance(layer, nn.MaxPool2d):
            stages.append((f"conv{len(stages) + 1}", tuple(group)))
            group = []
    stages.append(("pool, fc", ("avgpool", "classifier")))
    return stages


class BottleneckV1(Bottleneck):
    """The bottleneck block of the 2015 paper (§3.3, Fig. 5 right).

    When a stage starts with stride 2, the paper's block downsamples in its first 1×1 conv;
    torchvision's ``Bottleneck`` (v1.5) downsamples in the 3×3 conv instead. Same
    parameters, different cost: at 224×224 ResNet-50 needs 3.86 GMACs here (paper: 3.8)
    against 4.09 for v1.5.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation, norm_layer)
        width = self.conv1.out_channels
        self.conv1 = conv1x1(inplanes, width, stride)
        self.conv2 = conv3x3(width, width, 1, groups, dilation)


class PlainBasicBlock(BasicBlock):
    """Two 3×3 convs with no shortcut: the "plain" baseline of §4.1 (Fig. 3, middle).

    A plain net has no shortcut at all, so the projection that torchvision's ``ResNet``
    hands to a block whose shape changes is dropped.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None):
        super().__init__(inplanes, planes, stride, None, groups, base_width, dilation, norm_layer)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        # No "out += identity" here: that one line is the whole difference.
        out = self.relu(out)
        return out


def _resnet(block: type[nn.Module], layers: tuple[int, int, int, int]) -> ResNet:
    return ResNet(block, list(layers), num_classes=IMAGENET_CLASSES)


_RESNET_NOTE = "torchvision's builder (ResNet v1.5: stride 2 on the 3×3 conv of a bottleneck)"

# (name, builder, depth, block, torchvision weights, paper numbers, summary)
# Paper numbers: GMACs from Table 1 (Fig. 3 for VGG-19); top-1 error from Table 2
# (18/34-layer, plain and ResNet option A) and Table 3 (50/101/152, option B).
_IMAGENET_MODELS = (
    ("resnet18", tvm.resnet18, 18, "basic", tvm.ResNet18_Weights.IMAGENET1K_V1,
     PaperNumbers(1.8, 27.88, "Table 1 (FLOPs), Table 2 (error)"), "ResNet-18, basic blocks"),
    ("resnet34", tvm.resnet34, 34, "basic", tvm.ResNet34_Weights.IMAGENET1K_V1,
     PaperNumbers(3.6, 25.03, "Table 1 (FLOPs), Table 2 (error)"), "ResNet-34, basic blocks"),
    ("resnet50", tvm.resnet50, 50, "bottleneck", tvm.ResNet50_Weights.IMAGENET1K_V1,
     PaperNumbers(3.8, 22.85, "Table 1 (FLOPs), Table 3 (error)"), f"ResNet-50, {_RESNET_NOTE}"),
    ("resnet101", tvm.resnet101, 101, "bottleneck", tvm.ResNet101_Weights.IMAGENET1K_V1,
     PaperNumbers(7.6, 21.75, "Table 1 (FLOPs), Table 3 (error)"), f"ResNet-101, {_RESNET_NOTE}"),
    ("resnet152", tvm.resnet152, 152, "bottleneck", tvm.ResNet152_Weights.IMAGENET1K_V1,
     PaperNumbers(11.3, 21.43, "Table 1 (FLOPs), Table 3 (error)"), f"ResNet-152, {_RESNET_NOTE}"),
    ("resnet50_v1", lambda: _resnet(BottleneckV1, (3, 4, 6, 3)), 50, "bottleneck", None,
     PaperNumbers(3.8, 22.85, "Table 1 (FLOPs), Table 3 (error)"),
     "ResNet-50 as in the paper: stride 2 on the first 1×1 conv (no published torchvision weights)"),
    ("resnet101_v1", lambda: _resnet(BottleneckV1, (3, 4, 23, 3)), 101, "bottleneck", None,
     PaperNumbers(7.6, 21.75, "Table 1 (FLOPs), Table 3 (error)"),
     "ResNet-101 as in the paper: stride 2 on the first 1×1 conv (no published torchvision weights)"),
    ("resnet152_v1", lambda: _resnet(BottleneckV1, (3, 8, 36, 3)), 152, "bottleneck", None,
     PaperNumbers(11.3, 21.43, "Table 1 (FLOPs), Table 3 (error)"),
     "ResNet-152 as in the paper: stride 2 on the first 1×1 conv (no published torchvision weights)"),
    ("plain18", lambda: _resnet(PlainBasicBlock, (2, 2, 2, 2)), 18, "plain", None,
     PaperNumbers(1.8, 27.94, "Table 1 (FLOPs), Table 2 (error)"), "Plain-18: ResNet-18 without shortcuts"),
    ("plain34", lambda: _resnet(PlainBasicBlock, (3, 4, 6, 3)), 34, "plain", None,
     PaperNumbers(3.6, 28.54, "Fig. 3 (FLOPs), Table 2 (error)"), "Plain-34: ResNet-34 without shortcuts"),
    ("vgg19", tvm.vgg19, 19, "vgg", tvm.VGG19_Weights.IMAGENET1K_V1,
     PaperNumbers(19.6, None, "Fig. 3 (FLOPs)"), "VGG-19 (torchvision), the paper's Fig. 3 reference"),
)

# torchvision's blocks: the branch F(x) of Fig. 5, and the shortcut projection's attribute.
_BRANCHES = {
    "basic": (("conv1", "bn1"), ("conv2", "bn2")),
    "plain": (("conv1", "bn1"), ("conv2", "bn2")),
    "bottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    "vgg": (),
}
# Table 2 compares these pairs; the _v1 nets re-build torchvision's v1.5 models as in the paper.
_TWINS = {"resnet18": "plain18", "plain18": "resnet18", "resnet34": "plain34", "plain34": "resnet34"}
_VARIANT_OF = {"resnet50_v1": "resnet50", "resnet101_v1": "resnet101", "resnet152_v1": "resnet152"}

for _name, _builder, _depth, _block, _weights, _paper, _summary in _IMAGENET_MODELS:
    register_model(ModelSpec(
        name=_name,
        family="imagenet",
        builder=_builder,
        depth=_depth,
        block=_block,
        input_size=IMAGENET_INPUT,
        num_classes=IMAGENET_CLASSES,
        stages=vgg_stages if _block == "vgg" else resnet_stages,
        summary=_summary,
        weights=_weights,
        paper=_paper,
        branch=_BRANCHES[_block],
        shortcut_attribute=None if _block == "vgg" else "downsample",
        twin=_TWINS.get(_name),
        variant_of=_VARIANT_OF.get(_name),
    ))
