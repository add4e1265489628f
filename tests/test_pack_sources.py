"""The shipped CIFAR-10 packs as data sources everywhere (issue 38): a machine without a CIFAR-10
folder trains the lab's class demo, "your own run", fine-tuning and `train` on real images, and
every page and command says which data it used."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from apptest_helpers import open_page

from explorer import settings
from explorer.data import DataError, check_source, check_training_source, load_data

REPO = Path(__file__).resolve().parents[1]
LAB, TRANSFER = "../pages/degradation.py", "../pages/transfer.py"
DEMO_LABEL = "CIFAR-10: 6,000 training images of 3 classes (+300 held out), shipped with the app"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A pretrained/ folder as on a fresh clone: the shipped checkpoints (copied: the manifest
    refuses links out of its folder) and the packs (linked, read only), with fine-tuned models
    saved under tmp_path."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    for path in [REPO / "pretrained" / "manifest.json", *(REPO / "pretrained").glob("*.safetensors")]:
        shutil.copy(path, folder / path.name)
    (folder / "data").symlink_to(REPO / "pretrained" / "data", target_is_directory=True)
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(folder))
    return folder


@pytest.fixture
def no_cifar(tmp_path, monkeypatch):
    """No CIFAR-10 here: no $EXPLORER_CIFAR10_DIR, no ../shared/data (conftest's cache folder is
    empty, so no torchvision download either)."""
    from explorer.paper import degradation

    monkeypatch.delenv("EXPLORER_CIFAR10_DIR", raising=False)
    monkeypatch.setattr(settings, "SHARED_DATA", tmp_path / "no-shared-data")
    assert degradation.cifar10_source() is None


# --- the sources ------------------------------------------------------------------------------

def test_a_pack_loads_as_shipped_in_a_seeded_order(shipped):
    demo = load_data("pack:cifar10-demo", image_size=8)
    assert demo.name == "pack:cifar10-demo" and demo.classes == ("automobile", "frog", "ship")
    assert (len(demo.train_labels), len(demo.val_labels), demo.image_size) == (6000, 300, 8)
    assert torch.bincount(demo.train_labels).tolist() == [2000] * 3 and torch.bincount(demo.val_labels).tolist() == [100] * 3
    # Stored by class, served shuffled: a train_limit of 300 still holds all three classes.
    assert len(set(demo.restricted(train_limit=300).train_labels.tolist())) == 3
    again, other = load_data("pack:cifar10-demo", image_size=8), load_data("pack:cifar10-demo", image_size=8, seed=1)
    assert torch.equal(again.train_images, demo.train_images)
    assert not torch.equal(other.train_labels, demo.train_labels)
    # The same images in another order: the pack's own split, never re-split.
    assert sorted(other.val_images.flatten(1).sum(1).tolist()) == sorted(demo.val_images.flatten(1).sum(1).tolist())
    evaluation = load_data("pack:cifar10-eval")
    assert (len(evaluation.train_labels), len(evaluation.val_labels), evaluation.image_size) == (0, 2000, 32)
    assert torch.bincount(evaluation.val_labels).tolist() == [200] * 10


def test_bad_uses_of_a_pack_are_refused_with_a_clear_message(shipped):
    with pytest.raises(DataError, match=r"No shipped data set 'cifar100': the shipped ones are pack:cifar10-demo, "
                                        r"pack:cifar10-eval"):
        check_source("pack:cifar100")
    with pytest.raises(DataError, match="own held-out images .*leave it unset"):
        load_data("pack:cifar10-demo", val_size=100)
    assert check_training_source("pack:cifar10-demo") == "pack:cifar10-demo"
    with pytest.raises(DataError, match="pack:cifar10-eval has no training images.*Train on pack:cifar10-demo"):
        check_training_source("pack:cifar10-eval")


def test_training_or_fine_tuning_on_the_evaluation_pack_is_refused_before_loading(shipped):
    from explorer.training.engine import check_config, preset
    from explorer.training.recipe import ConfigError
    from explorer.transfer.finetune import FinetuneConfig, check_finetune_config

    with pytest.raises(ConfigError, match="no training images"):
        check_config(preset("demo", data="pack:cifar10-eval"))
    with pytest.raises(ValueError, match="no training images"):
        check_finetune_config(FinetuneConfig(backbone="resnet20-cifar10", data="pack:cifar10-eval"))
    with pytest.raises(ValueError, match="val_size must be left unset"):
        check_finetune_config(FinetuneConfig(backbone="resnet20-cifar10", data="pack:cifar10-demo", val_size=50))
    assert FinetuneConfig(backbone="resnet20-cifar10").data == "pack:cifar10-demo"


def test_without_cifar10_the_default_data_is_the_demo_pack_and_says_so(shipped, no_cifar, monkeypatch, tmp_path):
    from explorer.paper import degradation

    demo = degradation.class_demo_config()
    assert demo.data == degradation.default_training_source() == "pack:cifar10-demo"
    assert demo.classes == degradation.CLASS_DEMO_CLASSES == ("automobile", "frog", "ship") and demo.lr == 0.2  # not synthetic's
    assert degradation.data_label(demo.data) == DEMO_LABEL
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(tmp_path / "empty"))  # a checkout without pretrained/data
    assert degradation.class_demo_config().data == "synthetic"
    folder = tmp_path / "cifar"
    folder.mkdir()
    monkeypatch.setenv("EXPLORER_CIFAR10_DIR", str(folder))  # a full folder wins when it is here
    assert degradation.default_training_source() == f"folder:{folder.resolve()}"
    assert degradation.data_label(degradation.default_training_source()) == f"CIFAR-10 from the folder {folder.resolve()}"


def test_a_link_may_name_the_pack(shipped, no_cifar):
    from explorer.server.links import lab_datasets, lab_from_params

    assert lab_datasets() == {"cifar10-demo": "pack:cifar10-demo", "synthetic": "synthetic"}
    link, notices = lab_from_params({"data": "cifar10-demo"})
    assert link.dataset == "cifar10-demo" and notices == []
    link, notices = lab_from_params({"data": "cifar10-eval"})  # not a training choice
    assert link.dataset == "cifar10-demo" and "not one of cifar10-demo, synthetic" in notices[0]


# --- the pages --------------------------------------------------------------------------------

def _plain(text: str) -> str:
    return text.replace("\\", "")  # ui.escaped's backslashes


def test_the_lab_defaults_to_the_demo_pack_and_names_it(shipped, no_cifar):
    at = open_page(LAB)
    assert at.selectbox(key="lab.dataset").value == DEMO_LABEL
    assert at.selectbox(key="lab.dataset").options[:2] == [DEMO_LABEL, "Synthetic (generated, instant)"]
    assert any(b.label.endswith("ResNet-56 on CIFAR-10 (shipped with the app)") for b in at.button)
    captions = [_plain(c.value) for c in at.caption]
    assert any(c.endswith(f"3 classes (automobile, frog, ship). Data: {DEMO_LABEL}.") for c in captions)
    assert f"Data: {DEMO_LABEL}." in captions  # under the "Your own run" picker too
    at = open_page(LAB, {"data": "cifar10-demo", "seed": "3"})
    assert at.selectbox(key="lab.dataset").value == DEMO_LABEL and at.number_input(key="lab.seed").value == 3


def test_the_labs_link_notices_show_above_the_collapsed_expander():
    at = open_page(LAB, {"seed": "-1", "data": "/etc"})
    order = [node.type for node in at.main.children.values()]
    notices = [i for i, node in at.main.children.items() if node.type == "warning" and "From the link" in node.value]
    assert len(notices) == 2 and max(notices) < order.index("expander")
    assert not any("From the link" in w.value for w in at.expander[0].warning)


def test_the_class_demo_trains_on_the_demo_pack_end_to_end(shipped, no_cifar, monkeypatch):
    """One short run (12 steps, not the demo's 300) through the page, as on a fresh machine."""
    from explorer.paper import degradation
    from explorer.store.runs import load_run

    full = degradation.class_demo_config
    monkeypatch.setattr(degradation, "class_demo_config", lambda source=None: replace(
        full(source), steps=12, milestones=(10,), warmup_steps=2, val_every=6))
    at = open_page(LAB)
    next(b for b in at.button if b.label.startswith("▶ Start the class demo")).click().run()
    deadline = time.monotonic() + 180
    while not any("Saved to" in c.value for c in at.caption) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    [saved] = Path(os.environ["EXPLORER_RUNS_DIR"]).glob("*.json")
    record = load_run(saved)
    assert record.config.data == "pack:cifar10-demo" and record.classes == ["automobile", "frog", "ship"]
    last = record.steps[-1]
    assert last.step == 12 and {m.name for m in last.models} == set(degradation.CLASS_DEMO_MODELS)
    assert all(0 <= m.val_error <= 1 for m in last.models)  # measured on the pack's 300 held-out images


def _radio(at, label: str):
    return next(radio for radio in at.radio if radio.label == label)


def test_the_transfer_page_offers_the_packs_and_an_empty_folder_box(shipped, no_cifar):
    from explorer.server.sessions import UPLOAD_PREFIX

    at = open_page(TRANSFER)
    data = _radio(at, "Data set")
    assert data.value == DEMO_LABEL and "Synthetic (generated, instant)" in data.options
    assert not any("cifar10-eval" in option or "validation" in option for option in data.options)  # no training images
    assert any(_plain(c.value) == f"Data: {DEMO_LABEL}." for c in at.caption)
    # The default backbone here is a shipped CIFAR-10 checkpoint, trained on these very images: said so.
    assert any("45,000 training images, all of these images among them" in _plain(i.value) for i in at.info)
    data.set_value("Synthetic (generated, instant)").run()
    assert not any("45,000 training images" in _plain(i.value) for i in at.info)
    data.set_value("Folder on this machine").run()
    box = next(t for t in at.text_input if t.label == "Folder with one sub-folder per class")
    assert box.value == "" and not at.error  # nothing typed: nothing to refuse
    box.set_value("/no/such/folder").run()
    [error] = [_plain(e.value) for e in at.error]
    assert "outside the allowed data folders" in error and UPLOAD_PREFIX not in error  # the session's own folder is not a root to name
    assert "set by EXPLORER_DATA_ROOTS" in error  # conftest sets it


def test_an_error_about_a_folder_names_only_the_roots_the_user_could_set(tmp_path, monkeypatch):
    from explorer.server.roots import RootsError, check_app_source

    root, uploads = tmp_path / "data", tmp_path / "explorer-upload-x"
    root.mkdir(), uploads.mkdir()
    monkeypatch.delenv("EXPLORER_DATA_ROOTS")
    with pytest.raises(RootsError) as refused:
        check_app_source("folder:/etc", [root, uploads], uploads=[uploads])
    message = str(refused.value)
    assert str(root) in message and str(uploads) not in message
    assert "set by" not in message and "the project's shared data; EXPLORER_DATA_ROOTS can name others" in message
    with pytest.raises(RootsError, match="allows no data folders"):  # only the uploads: none to name
        check_app_source("folder:/etc", [uploads], uploads=[uploads])


# --- the commands -----------------------------------------------------------------------------

def test_train_and_finetune_default_to_the_pack_and_say_so_first(shipped, no_cifar, tmp_path, capsys):
    from explorer.cli import main

    assert main(["train", "--models", "resnet20", "--steps", "2", "--width", "2", "--image-size", "8",
                 "--out", str(tmp_path / "run.json")]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first == f"data: {DEMO_LABEL} (pack:cifar10-demo)"
    assert json.loads((tmp_path / "run.json").read_text())["config"]["data"] == "pack:cifar10-demo"
    assert main(["finetune", "--backbone", "resnet20-cifar10", "--epochs", "1", "--limit", "64",
                 "--out", str(tmp_path / "tuned")]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"data: {DEMO_LABEL} (pack:cifar10-demo)"
    assert lines[1].startswith("note: resnet20-cifar10 was trained on CIFAR-10's 45,000 training images")
    assert (tmp_path / "tuned" / "resnet20-cifar10-linear-cifar10-demo.safetensors").is_file()
    assert main(["train", "--data", "pack:cifar10-eval", "--steps", "2", "--out", str(tmp_path / "x.json")]) == 2
    assert "no training images" in capsys.readouterr().err
