"""The CIFAR-10 nets of §4.2: plain-n and ResNet-n for n = 20, 32, 44, 56, 110.

The first layer is a 3×3 conv with 16 filters; then three stages of 2n 3×3 layers on
32×32, 16×16 and 8×8 maps with 16, 32 and 64 filters; global average pooling and a
10-way fc: 6n + 2 weighted layers. Plain and residual nets are the same block with one
``residual`` switch, so the comparison changes nothing but the shortcut. ``resnet20()`` …
``resnet110()`` and ``plain20()`` … ``plain110()`` build them (as torchvision's ``resnet18()``
does); each is registered under its own name, so ``build_model("resnet20", width=4)`` is the same.

Shortcuts where the shape changes (§4.2 uses option A): "A" subsamples x and pads the
new channels with zeros (no parameters, :class:`PadShortcut`); "B" is a 1×1 projection
with BatchNorm.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from explorer.models.registry import ModelSpec, PaperNumbers, Stage, register_model

CIFAR_INPUT = (3, 32, 32)
CIFAR_CLASSES = 10
SHORTCUT_OPTIONS = ("A", "B")


class PadShortcut(nn.Module):
    """Option A: identity with zero-padding for increasing dimensions (§3.3, §4.2).

    Takes every ``stride``-th pixel (the 1×1, stride-2 subsampling the paper implies) and
    appends zero channels, so it adds no parameters.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.extra_channels = out_planes - in_planes
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class CifarBlock(nn.Module):
    """Two 3×3 conv layers, with (``residual=True``) or without a shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *,
                 residual: bool = True, shortcut: str = "A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module | None = None
        if residual:
            if stride == 1 and in_planes == planes:
                self.shortcut = nn.Identity()
            elif shortcut == "A":
                self.shortcut = PadShortcut(in_planes, planes, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.shortcut is not None:
            out = out + self.shortcut(identity)
        out = self.relu(out)
        return out


class CifarNet(nn.Module):
    """6n + 2 layers: conv1, three stages of n blocks, global average pool, fc (§4.2)."""

    def __init__(self, blocks_per_stage: int, *, residual: bool, shortcut: str = "A",
                 width: int = 16, num_classes: int = CIFAR_CLASSES):
        super().__init__()
        if shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"shortcut must be one of {SHORTCUT_OPTIONS}, got {shortcut!r}.")
        if width < 1:
            raise ValueError(f"width must be a positive number of filters, got {width}.")
        widths = (width, 2 * width, 4 * width)  # 16, 32, 64 filters in the paper
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = widths[0]
        for index, planes in enumerate(widths):
            stride = 1 if index == 0 else 2
            layers = []
            for block in range(blocks_per_stage):
                layers.append(CifarBlock(in_planes, planes, stride if block == 0 else 1,
                                         residual=residual, shortcut=shortcut))
                in_planes = planes
            self.add_module(f"layer{index + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He initialisation (§3.4, citing He et al. 2015 "Delving deep into rectifiers").
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.avgpool(x).flatten(1)
        return self.fc(x)


CIFAR_STAGES: tuple[Stage, ...] = (
    ("conv1", ("conv1", "bn1", "relu")),
    ("stage1", ("layer1",)),
    ("stage2", ("layer2",)),
    ("stage3", ("layer3",)),
    ("pool, fc", ("avgpool", "fc")),
)


def cifar_stages(model: nn.Module) -> tuple[Stage, ...]:
    return CIFAR_STAGES


def _cifar_net(depth: int, *, residual: bool, width: int, shortcut: str, num_classes: int) -> CifarNet:
    """The 6n + 2-layer net of §4.2: n = (depth − 2) / 6 blocks in each of the three stages."""
    return CifarNet((depth - 2) // 6, residual=residual, shortcut=shortcut, width=width, num_classes=num_classes)


# The public builders, one per net of §4.2, in the style of torchvision's ``resnet18()``.
# ``width`` is the first stage's filters (16 in the paper), ``shortcut`` option A or B (§3.3).

def plain20(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """Plain-20: ResNet-20 without its shortcuts (Fig. 6, left)."""
    return _cifar_net(20, residual=False, width=width, shortcut=shortcut, num_classes=num_classes)


def plain32(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """Plain-32 (Fig. 6, left)."""
    return _cifar_net(32, residual=False, width=width, shortcut=shortcut, num_classes=num_classes)


def plain44(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """Plain-44 (Fig. 6, left)."""
    return _cifar_net(44, residual=False, width=width, shortcut=shortcut, num_classes=num_classes)


def plain56(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """Plain-56: deeper than plain-20 and worse, on training error too (Fig. 1, Fig. 6 left)."""
    return _cifar_net(56, residual=False, width=width, shortcut=shortcut, num_classes=num_classes)


def plain110(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """Plain-110: ResNet-110 without its shortcuts (not plotted in Fig. 6; here for the comparison)."""
    return _cifar_net(110, residual=False, width=width, shortcut=shortcut, num_classes=num_classes)


def resnet20(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """ResNet-20 (Table 6: 0.27M parameters, 8.75% test error)."""
    return _cifar_net(20, residual=True, width=width, shortcut=shortcut, num_classes=num_classes)


def resnet32(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """ResNet-32 (Table 6: 0.46M parameters, 7.51% test error)."""
    return _cifar_net(32, residual=True, width=width, shortcut=shortcut, num_classes=num_classes)


def resnet44(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """ResNet-44 (Table 6: 0.66M parameters, 7.17% test error)."""
    return _cifar_net(44, residual=True, width=width, shortcut=shortcut, num_classes=num_classes)


def resnet56(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """ResNet-56 (Table 6: 0.85M parameters, 6.97% test error)."""
    return _cifar_net(56, residual=True, width=width, shortcut=shortcut, num_classes=num_classes)


def resnet110(*, width: int = 16, shortcut: str = "A", num_classes: int = CIFAR_CLASSES) -> CifarNet:
    """ResNet-110 (Table 6: 1.7M parameters, 6.43% test error; §4.2's warm-up at 0.01)."""
    return _cifar_net(110, residual=True, width=width, shortcut=shortcut, num_classes=num_classes)


# Table 6: parameters (millions, option A) and CIFAR-10 test error (%) of the ResNets.
# The plain nets' errors are only plotted (Fig. 6, left), so none are given for them.
_TABLE_6 = {20: (0.27, 8.75), 32: (0.46, 7.51), 44: (0.66, 7.17), 56: (0.85, 6.97), 110: (1.7, 6.43)}
_BUILDERS = {20: (plain20, resnet20), 32: (plain32, resnet32), 44: (plain44, resnet44), 56: (plain56, resnet56),
             110: (plain110, resnet110)}

for _depth, (_params_m, _error) in _TABLE_6.items():
    for _residual, _builder in zip((False, True), _BUILDERS[_depth]):
        _name = _builder.__name__
        register_model(ModelSpec(
            name=_name,
            family="cifar",
            builder=_builder,
            depth=_depth,
            block="basic" if _residual else "plain",
            input_size=CIFAR_INPUT,
            num_classes=CIFAR_CLASSES,
            stages=cifar_stages,
            branch=(("conv1", "bn1"), ("conv2", "bn2")),
            shortcut_attribute="shortcut",
            twin=f"{'plain' if _residual else 'resnet'}{_depth}",
            summary=(f"CIFAR-10 {'ResNet' if _residual else 'plain net'}-{_depth} (§4.2): "
                     f"{(_depth - 2) // 6} blocks per stage, 16/32/64 filters"),
            paper=(PaperNumbers(None, _error, "Table 6", params_m=_params_m) if _residual
                   else PaperNumbers(None, None, "Fig. 6", params_m=_params_m)),
        ))
