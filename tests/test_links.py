"""Shareable links: settings -> query parameters -> the same settings; hostile values fall back."""

import pytest

from explorer.paper.degradation import CLASS_DEMO_MODELS
from explorer.server.links import (
    MAX_STEPS,
    InspectLink,
    LabLink,
    inspect_from_params,
    inspect_to_params,
    lab_datasets,
    lab_from_params,
    lab_to_params,
)
from explorer.training.engine import PRESETS

DATASETS = ("cifar10", "synthetic")
MODELS = ("resnet20-cifar10", "plain20-cifar10", "resnet50")
SAMPLES = ("airplane", "cat", "ship")
CLASSES = {"resnet20-cifar10": ("airplane", "cat"), "plain20-cifar10": ("airplane", "cat"), "resnet50": ("tench",)}
STAGES = {"resnet20-cifar10": ("conv1", "layer1", "layer2", "layer3"), "plain20-cifar10": ("layer1",),
          "resnet50": ("layer4",)}


def read_inspect(params):
    return inspect_from_params(params, models=MODELS, samples=SAMPLES, classes_of=CLASSES.get, stages_of=STAGES.get)


def test_lab_settings_round_trip():
    link = LabLink(preset="paper", models=("plain56", "resnet56"), dataset="synthetic", seed=7, steps=1200)
    params = lab_to_params(link)
    assert params == {"preset": "paper", "models": "plain56,resnet56", "data": "synthetic", "seed": "7",
                      "steps": "1200"}
    assert all(isinstance(v, str) for v in params.values())
    assert lab_from_params(params, DATASETS) == (link, [])
    # Streamlit's get_all gives one-element lists: the same settings.
    assert lab_from_params({k: [v] for k, v in params.items()}, DATASETS) == (link, [])


def test_an_empty_link_gives_the_lab_defaults_without_notices():
    assert lab_from_params({}, DATASETS) == (LabLink(dataset="cifar10"), [])
    link, notices = lab_from_params({"preset": "paper"}, ["synthetic"])
    assert (link.steps, link.dataset, link.models, notices) == (PRESETS["paper"].steps, "synthetic",
                                                                CLASS_DEMO_MODELS, [])


def test_a_link_never_names_a_path_for_the_data():
    for hostile in ("folder:/etc", "../../etc/passwd", "/work/shared/data", "folder", "zip", "cifar10/../x"):
        link, notices = lab_from_params({"data": hostile}, DATASETS)
        assert link.dataset == "cifar10" and len(notices) == 1 and "not one of cifar10, synthetic" in notices[0]
    link, notices = lab_from_params({"data": "cifar10"}, ["synthetic"])  # CIFAR-10 is not on this machine
    assert link.dataset == "synthetic" and notices


@pytest.mark.parametrize("value", ["-1", "1e9", "99999999999999999999", "0x10", "12.5", "", " 3", "٣", "65000"])
def test_bad_numbers_fall_back_to_the_defaults(value):
    link, notices = lab_from_params({"steps": value, "seed": value}, DATASETS)
    assert (link.steps, link.seed) == (PRESETS["demo"].steps, 0)
    assert len(notices) == 2 and f"from 1 to {MAX_STEPS:,}" in notices[1]


def test_unknown_models_are_dropped_and_none_left_means_the_default():
    link, notices = lab_from_params({"models": "resnet20,../../x,resnet20,plain1000"}, DATASETS)
    assert link.models == ("resnet20",) and len(notices) == 1 and "'../../x'" in notices[0]
    link, notices = lab_from_params({"models": "resnet50,,"}, DATASETS)  # an ImageNet net is not a lab model
    assert link.models == CLASS_DEMO_MODELS and len(notices) == 2


def test_repeated_huge_and_unknown_values_are_refused_with_notices():
    link, notices = lab_from_params({"preset": ["demo", "paper"], "seed": "1" * 5000, "steps": [],
                                     "utm_source": "mail"}, DATASETS)
    assert link == LabLink(dataset="cifar10")
    assert len(notices) == 2 and "2 times" in notices[0] and "5,000 characters" in notices[1]
    assert all(len(notice) < 300 for notice in notices)  # a hostile value is never echoed whole
    link, notices = lab_from_params({"preset": "<script>"}, DATASETS)
    assert link.preset == "demo" and "'<script>'" in notices[0]


def test_the_inspect_view_round_trips():
    link = InspectLink(model="plain20-cifar10", sample="cat", target="airplane", stage="layer1",
                       look="feature-maps")
    params = inspect_to_params(link)
    assert params == {"model": "plain20-cifar10", "sample": "cat", "class": "airplane", "stage": "layer1",
                      "look": "feature-maps"}
    assert read_inspect(params) == (link, [])
    gradients = InspectLink(model="plain20-cifar10", look="gradients")
    assert read_inspect(inspect_to_params(gradients)) == (gradients, [])
    assert inspect_to_params(InspectLink(model="resnet50")) == {"model": "resnet50"}
    assert read_inspect({}) == (InspectLink(model="resnet20-cifar10"), [])


def test_inspect_values_are_checked_against_the_chosen_model():
    # ResNet-50 has neither CIFAR's classes nor a "layer1" feature point in this list.
    link, notices = read_inspect({"model": "resnet50", "class": "cat", "stage": "layer1"})
    assert link == InspectLink(model="resnet50") and len(notices) == 2
    link, notices = read_inspect({"model": "/etc/passwd", "sample": "../samples/cat", "stage": "layer2"})
    # a link from before looks were named: a stage is chosen only in the feature maps, so they open
    assert link == InspectLink(model="resnet20-cifar10", stage="layer2", look="feature-maps") and len(notices) == 2
    link, notices = read_inspect({"look": "<script>", "stage": "layer2"})
    assert link.look == "feature-maps" and "'<script>'" in notices[0]
    link, notices = read_inspect({"look": ["gradients", "grad-cam"]})  # repeated: refused
    assert link.look is None and len(notices) == 1
    with pytest.raises(ValueError, match="at least one model"):
        inspect_from_params({}, models=[], samples=SAMPLES)


def test_the_lab_datasets_a_link_may_name_are_never_paths():
    choices = lab_datasets()
    assert list(choices)[-1] == "synthetic" and set(choices) <= {"cifar10", "cifar10-demo", "synthetic"}
    assert all("/" not in choice for choice in choices)
