"""The registry and the ImageNet models, checked against torchvision and the paper."""

import re

import pytest
import torch
from torch import fx

from explorer.models import (
    UnknownModelError,
    blocks,
    build_model,
    conv_bn_pairs,
    counted_layers,
    get_model_spec,
    list_models,
    model_names,
    shortcut_modules,
    stage_ends,
)
from explorer.models.cifar import PadShortcut
from explorer.paper.diagrams import shortcut_kind
from explorer.paper.table1 import analyze

# torchvision's published parameter counts (also the paper's models: Table 1 / Table 3).
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}

# GMACs at 224×224 measured by FlopCounterMode (the reference figures). The v1
# variants are the paper's block (Table 1: 3.8 / 7.6 / 11.3); torchvision's are v1.5.
EXPECTED_GMACS = {
    "resnet18": 1.81, "resnet34": 3.66,
    "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
    "resnet50_v1": 3.86, "resnet101_v1": 7.57, "resnet152_v1": 11.28,
    "vgg19": 19.6,  # Fig. 3
}


@pytest.mark.parametrize("name, expected", TORCHVISION_PARAMS.items())
def test_parameter_counts_equal_torchvision(name, expected):
    assert analyze(name).params == expected


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"])
def test_paper_v1_has_same_parameters_as_torchvision_v1_5(name):
    assert analyze(f"{name}_v1").params == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name, gmacs", EXPECTED_GMACS.items())
def test_gmacs_within_one_percent(name, gmacs):
    assert analyze(name).macs / 1e9 == pytest.approx(gmacs, rel=0.01)


@pytest.mark.parametrize("name", ["resnet50_v1", "resnet101_v1", "resnet152_v1", "resnet18", "resnet34"])
def test_paper_faithful_models_match_table_1_within_two_percent(name):
    # Table 1 prints 1.8 / 3.6 / 3.8 / 7.6 / 11.3 (×10⁹ multiply-adds).
    spec = get_model_spec(name)
    assert analyze(name).macs / 1e9 == pytest.approx(spec.paper.gmacs, rel=0.02)


def test_torchvision_v1_5_costs_more_than_the_paper_block():
    assert analyze("resnet50").macs > analyze("resnet50_v1").macs * 1.05


@pytest.mark.parametrize("name", [n for n in model_names("imagenet") if get_model_spec(n).residual])
def test_table_1_output_sizes(name):
    sizes = [row.output_size for row in analyze(name).stages]
    assert sizes == ["112×112", "56×56", "28×28", "14×14", "7×7", "1×1"]


def test_v1_bottleneck_strides_in_the_first_1x1_conv():
    paper, torchvision_v15 = build_model("resnet50_v1", device="meta"), build_model("resnet50", device="meta")
    assert paper.layer2[0].conv1.stride == (2, 2) and paper.layer2[0].conv2.stride == (1, 1)
    assert torchvision_v15.layer2[0].conv1.stride == (1, 1) and torchvision_v15.layer2[0].conv2.stride == (2, 2)


@pytest.mark.parametrize("name", ["plain18", "plain34"])
def test_plain_nets_have_no_shortcuts(name):
    model = build_model(name, device="meta")
    assert not [n for n, _ in model.named_modules() if "downsample" in n]
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            assert shortcut_kind(block) == "none"
            graph = fx.symbolic_trace(block).graph
            assert all("add" not in str(node.target) for node in graph.nodes)


def test_plain34_is_resnet34_minus_the_three_projections():
    # The three projection shortcuts of ResNet-34 (1×1 conv + BN at conv3_1, conv4_1, conv5_1).
    projections = sum((c // 2) * c + 2 * c for c in (128, 256, 512))
    assert analyze("resnet34").params - analyze("plain34").params == projections


@pytest.mark.parametrize("name", model_names())
def test_every_model_builds_and_maps_an_image_to_class_logits(name):
    spec = get_model_spec(name)
    model = build_model(name, device="meta")
    logits = model(torch.empty(2, *spec.input_size, device="meta"))
    assert logits.shape == (2, spec.num_classes)


def test_registry_names_follow_the_convention():
    names = model_names()
    assert len(names) == len(set(names))
    for spec in list_models():
        assert re.fullmatch(r"[a-z]+\d+(_v1)?", spec.name), spec.name
        assert spec.family in ("imagenet", "cifar")
        assert spec.block in ("basic", "bottleneck", "plain", "vgg")


def test_imagenet_accuracy_comes_from_torchvision_metadata():
    import torchvision

    assert get_model_spec("resnet50").imagenet_top1 == (
        torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"])
    assert get_model_spec("plain34").imagenet_top1 is None


def test_unknown_model_names_suggest_close_ones():
    with pytest.raises(UnknownModelError, match=r"Did you mean [\w, ]*resnet50"):
        get_model_spec("resnet5O")


# --- the anatomy: what the registry entry says, checked against the modules ------------------


@pytest.mark.parametrize("name", model_names())
def test_counted_layers_are_the_papers_depth(name):
    spec = get_model_spec(name)
    layers = counted_layers(build_model(name, device="meta"), spec)
    assert len(layers) == spec.depth  # ResNet-50 → 50, plain-34 → 34, resnet56 → 56, vgg19 → 19
    assert layers[-1][0] in ("fc", "classifier.6")  # forward order: the classifier last


def test_resnet50_counts_no_shortcut_projection():
    model, spec = build_model("resnet50", device="meta"), get_model_spec("resnet50")
    found = blocks(model, spec)
    assert len(found) == 16 and [b.name for b in found if b.shortcut] == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    assert shortcut_modules(model, spec) == [f"layer{i}.0.downsample" for i in (1, 2, 3, 4)]
    assert not any("downsample" in name for name, _ in counted_layers(model, spec))
    # 54 conv and fc layers in all: the 4 projections are what the paper does not count.
    assert sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules()) == 54
    assert found[3].branch_end == "layer2.0.bn3" and found[3].stage == "conv3_x" and found[3].index == 0


def test_resnet56_blocks_downsample_twice_with_option_a():
    model, spec = build_model("resnet56", device="meta"), get_model_spec("resnet56")
    found = blocks(model, spec)
    assert len(found) == 27 and all(b.residual for b in found)  # 3 stages × n = 9 blocks
    assert [b.name for b in found if b.downsampling] == ["layer2.0", "layer3.0"]
    assert [b.shortcut for b in found if b.shortcut] == ["layer2.0.shortcut", "layer3.0.shortcut"]
    assert isinstance(model.get_submodule("layer2.0.shortcut"), PadShortcut)  # identity blocks: None
    assert [b.index for b in found[:10]] == [*range(9), 0] and found[9].stage == "stage2"


def test_option_b_projections_are_shortcuts_and_not_counted():
    model, spec = build_model("resnet20", device="meta", shortcut="B"), get_model_spec("resnet20")
    assert shortcut_modules(model, spec) == ["layer2.0.shortcut", "layer3.0.shortcut"]
    assert len(counted_layers(model, spec)) == 20
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 21  # 19 + two 1×1 projections
    assert counted_layers(model) == counted_layers(model, spec)  # without the entry: the same layers


def test_plain_blocks_have_no_shortcut_but_still_downsample():
    model, spec = build_model("plain34", device="meta"), get_model_spec("plain34")
    found = blocks(model, spec)
    assert len(found) == 16 and not any(b.residual or b.shortcut for b in found)
    assert [b.name for b in found if b.downsampling] == ["layer2.0", "layer3.0", "layer4.0"]
    assert found[0].branch_end == "layer1.0.bn2"


def test_conv_bn_pairs_are_the_stem_and_every_block_conv():
    pairs = conv_bn_pairs(build_model("resnet20", device="meta"), get_model_spec("resnet20"))
    assert len(pairs) == 19  # Fig. 7's layers: 6n + 1 conv layers, each followed by BN
    assert pairs[:3] == [("conv1", "bn1"), ("layer1.0.conv1", "layer1.0.bn1"), ("layer1.0.conv2", "layer1.0.bn2")]
    assert len(conv_bn_pairs(build_model("resnet50", device="meta"), get_model_spec("resnet50"))) == 49
    assert conv_bn_pairs(build_model("vgg19", device="meta"), get_model_spec("vgg19")) == []  # no BN


def test_stage_ends_are_the_body_stages_last_modules():
    assert stage_ends(build_model("resnet18", device="meta"), get_model_spec("resnet18")) == [
        ("conv2_x", "layer1"), ("conv3_x", "layer2"), ("conv4_x", "layer3"), ("conv5_x", "layer4")]
    assert [stage for stage, _ in stage_ends(build_model("resnet20", device="meta"), get_model_spec("resnet20"))] == [
        "stage1", "stage2", "stage3"]
    assert blocks(build_model("vgg19", device="meta"), get_model_spec("vgg19")) == []


def test_twins_are_symmetric_and_differ_only_in_shortcuts():
    twins = {spec.name: spec.twin for spec in list_models() if spec.twin}
    assert {"resnet18", "plain18", "resnet34", "plain34", "resnet20", "plain20", "resnet110"} <= set(twins)
    for name, twin in twins.items():
        spec, other = get_model_spec(name), get_model_spec(twin)
        assert other.twin == name and other.depth == spec.depth and other.family == spec.family
        assert other.residual != spec.residual
    assert get_model_spec("resnet50").twin is None and get_model_spec("vgg19").twin is None


def test_variants_rebuild_a_registered_model_with_its_parameters():
    variants = {spec.name: spec.variant_of for spec in list_models() if spec.variant_of}
    assert variants == {"resnet50_v1": "resnet50", "resnet101_v1": "resnet101", "resnet152_v1": "resnet152"}
    for name, original in variants.items():
        assert analyze(name).params == analyze(original).params


def test_the_cifar_builders_are_public_and_registered_under_their_names():
    """resnet20() … plain110(), as torchvision's resnet18(): the registry's builder for each name."""
    import explorer.models as models

    names = [f"{kind}{depth}" for depth in (20, 32, 44, 56, 110) for kind in ("plain", "resnet")]
    assert model_names("cifar") == names  # registration (display) order unchanged
    for name in names:
        builder = getattr(models, name)
        assert get_model_spec(name).builder is builder and name in models.__all__
    torch.manual_seed(0)
    direct = models.resnet20(width=4, shortcut="B", num_classes=3)
    torch.manual_seed(0)
    built = build_model("resnet20", width=4, shortcut="B", num_classes=3)
    assert [(k, v.shape) for k, v in direct.state_dict().items()] == [(k, v.shape) for k, v in built.state_dict().items()]
    assert all(torch.equal(a, b) for a, b in zip(direct.state_dict().values(), built.state_dict().values()))
    assert direct.fc.out_features == 3 and models.plain56(width=2).layer1[0].shortcut is None
    with pytest.raises(TypeError):
        models.resnet20(16)  # keyword options only, as build_model passes them


def test_weighted_layers_are_the_counted_layers_weights():
    from explorer.models import weighted_layers

    model = build_model("resnet20", device="meta", shortcut="B")
    layers = weighted_layers(model)
    assert [name for name, _ in layers] == [f"{name}.weight" for name, _ in counted_layers(model)]
    assert len(layers) == 20 and layers[0][0] == "conv1.weight" and layers[-1][0] == "fc.weight"
    assert all(weight is model.get_parameter(name) for name, weight in layers)
