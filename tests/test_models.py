"""The registry and the ImageNet models, checked against torchvision and the paper."""

import re

import pytest
import torch
from torch import fx

from explorer.architecture import analyze
from explorer.diagrams import shortcut_kind
from explorer.models import UnknownModelError, build_model, get_model_spec, list_models, model_names

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


@pytest.mark.parametrize("name", [n for n in model_names("imagenet") if get_model_spec(n).has_shortcuts])
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
