"""The CIFAR nets of §4.2 and the lock-step training engine, on generated data."""

import math
import threading

import pytest
import torch
import torch.nn.functional as F

from explorer.data import Augmentation, InMemoryData
from explorer.models import build_model, model_names, weighted_layers
from explorer.models.cifar import PadShortcut
from explorer.paper.diagrams import shortcut_kind
from explorer.paper.table1 import analyze
from explorer.store.runs import RunError, load_run, new_record, save_run
from explorer.training.engine import TrainConfig, check_config, preset, train

# Table 6, option A: 0.27M / 0.46M / 0.66M / 0.85M / 1.7M parameters.
TABLE_6_PARAMS = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}


@pytest.mark.parametrize("depth, millions", TABLE_6_PARAMS.items())
def test_parameter_counts_match_table_6(depth, millions):
    params = analyze(f"resnet{depth}").params
    assert params / 1e6 == pytest.approx(millions, abs=0.01 if depth < 110 else 0.05)
    assert analyze(f"plain{depth}").params == params  # option A shortcuts have no parameters


@pytest.mark.parametrize("depth", TABLE_6_PARAMS)
def test_depth_is_6n_plus_2_weighted_layers(depth):
    assert len(weighted_layers(build_model(f"plain{depth}", device="meta"))) == depth


def test_feature_map_sizes_follow_section_4_2():
    assert [row.output_size for row in analyze("resnet56").stages] == ["32×32", "32×32", "16×16", "8×8", "1×1"]


def test_plain_nets_have_no_shortcut_modules():
    model = build_model("plain56", device="meta")
    assert all(block.shortcut is None for stage in (model.layer1, model.layer2, model.layer3) for block in stage)
    assert {shortcut_kind(b) for b in model.layer2} == {"none"}


def test_option_a_pads_zeros_and_option_b_projects():
    resnet_a = build_model("resnet20")
    assert isinstance(resnet_a.layer2[0].shortcut, PadShortcut)
    x = torch.randn(2, 16, 8, 8)
    padded = resnet_a.layer2[0].shortcut(x)
    assert padded.shape == (2, 32, 4, 4)
    assert torch.equal(padded[:, :16], x[:, :, ::2, ::2]) and not padded[:, 16:].any()
    resnet_b = build_model("resnet20", shortcut="B")
    assert shortcut_kind(resnet_b.layer2[0]) == "projection"
    assert analyze("resnet20").params < sum(p.numel() for p in resnet_b.parameters())


@pytest.mark.parametrize("name", ["plain20", "resnet20"])
def test_every_parameter_gets_a_gradient(name):
    model = build_model(name, width=4).train()
    loss = F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="shortcut must be one of"):
        build_model("resnet20", shortcut="C")


def _separable_data(n=512, size=8, classes=4, seed=0) -> InMemoryData:
    """Each class is a colour; noise on top. Learnable in a few dozen steps."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    colours = torch.tensor([[220, 30, 30], [30, 220, 30], [30, 30, 220], [220, 220, 30]])[:classes]
    images = colours[labels][:, :, None, None].expand(n, 3, size, size).float()
    images = (images + 40 * torch.randn(n, 3, size, size, generator=generator)).clamp(0, 255).to(torch.uint8)
    split = n - n // 8
    return InMemoryData("colours", tuple(f"c{i}" for i in range(classes)),
                        images[:split], labels[:split], images[split:], labels[split:])


def test_engine_lowers_resnet20_training_error_well_below_chance():
    config = TrainConfig(models=("resnet20",), steps=60, batch_size=32, milestones=(), width=4,
                         image_size=8, val_every=30, window=10, grad_every=10,
                         augmentation=Augmentation(pad=1))
    records = list(train(config, _separable_data()))
    final = records[-1].models[0]
    assert len(records) == 60
    assert final.train_error < 0.3 and final.val_error < 0.3  # chance is 0.75
    assert records[9].models[0].grad_norms is not None and len(records[9].models[0].grad_norms) == 20


def test_a_few_hundred_steps_take_resnet20_well_below_chance_on_the_synthetic_set():
    from explorer.data import load_data

    # Three seeds: at lr 0.1 the first steps are chaotic, so one seed ends anywhere between
    # 38% and 78% (seeds 0-2); their mean is the stable number.
    config = TrainConfig(models=("resnet20",), data="synthetic:4000", steps=200, batch_size=64, milestones=(),
                         width=16, image_size=16, val_every=200, window=25, repeat=3)
    records = list(train(config, load_data(config.data, image_size=16)))
    final = [m.train_error for m in records[-1].models]
    assert sum(final) / 3 < 0.65 and max(final) < 0.85  # 10 classes: chance is 0.9
    assert [m.seed for m in records[-1].models] == [0, 1, 2]
    assert all(m.train_error > 0.75 for m in records[0].models)


def test_models_train_in_lock_step_and_stop_within_one_step():
    stop = threading.Event()
    config = TrainConfig(models=("plain20", "resnet20"), steps=1000, batch_size=16, width=2, image_size=8)
    seen = []
    for record in train(config, _separable_data(), stop=stop):
        seen.append(record)
        assert [m.name for m in record.models] == ["plain20", "resnet20"]
        if record.step == 3:
            stop.set()
    assert len(seen) == 3


def test_a_diverging_model_stops_with_a_message_and_the_others_go_on(monkeypatch):
    # A rate of 1e12 is far outside its declared range (explorer.settings), so the range check is
    # skipped here to reach the engine's own guard against a loss that is no longer finite.
    import explorer.training.engine

    monkeypatch.setattr(explorer.training.engine, "check_config", lambda config, data=None: None)
    config = TrainConfig(models=("plain20", "resnet20"), steps=8, batch_size=16, lr=1e12, width=2,
                         image_size=8, milestones=())
    records = list(train(config, _separable_data()))
    messages = [m.stopped for r in records for m in r.models if m.stopped]
    assert messages and "Try a lower learning rate" in messages[0]


@pytest.mark.parametrize("change, message", [
    ({"models": ("resnet21",)}, "Unknown model"),
    ({"models": ("resnet50",)}, "ImageNet model"),
    ({"models": ()}, "at least one model"),
    ({"batch_size": 10_000}, "larger than the 448 training images"),
    ({"steps": 0}, "from 1 to 64,000"),
    ({"lr": -1.0}, "learning rate must be a number above 0"),
])
def test_impossible_settings_get_clear_messages(change, message):
    config = TrainConfig(**{"models": ("resnet20",), **change})
    with pytest.raises(ValueError, match=message):
        check_config(config, _separable_data())


def test_run_records_round_trip_and_export(tmp_path):
    config = preset("demo", models=("plain20", "resnet20"), steps=4, batch_size=16, width=2, image_size=8,
                    val_every=2)
    record = new_record("tiny", config, "cpu", {"plain20": ["conv1.weight"]})
    for step in train(config, _separable_data()):
        record.append(step)
    path = save_run(record, tmp_path / "tiny.json")
    loaded = load_run(path)
    assert loaded.to_json() == record.to_json() and loaded.config.steps == 4
    assert loaded.series("resnet20", "val_error")[0] == [2, 4]
    assert loaded.to_csv().splitlines()[0].startswith("step,epoch,elapsed_s,model,loss")
    assert len(loaded.to_csv().splitlines()) == 1 + 4 * 2
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(RunError, match="Could not read the run"):
        load_run(tmp_path / "broken.json")


def test_cifar_models_are_in_the_registry():
    assert model_names("cifar") == [f"{kind}{d}" for d in (20, 32, 44, 56, 110) for kind in ("plain", "resnet")]
    assert not math.isnan(analyze("plain110").macs)
