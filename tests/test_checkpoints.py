"""Our own safetensors checkpoints: manifest entries, hash and architecture checks."""

import json

import pytest
import torch
from safetensors.torch import save_file

from explorer.checkpoints import CheckpointError, load_checkpoint, read_manifest, save_checkpoint, sha256_of
from explorer.models import build_model
from explorer.train import preset

BUILD = {"width": 4, "shortcut": "A", "num_classes": 10}


def _save(folder, key="resnet20-test", name="resnet20"):
    model = build_model(name, **BUILD)
    entry = save_checkpoint(model, key=key, model_name=name, build=BUILD, classes=list("abcdefghij"),
                            val_error=0.5, config={"steps": 3}, steps=3, wall_time_s=1.0, device="cpu",
                            folder=folder)
    return model, entry


def test_round_trip_gives_identical_predictions(tmp_path):
    model, entry = _save(tmp_path)
    loaded, loaded_entry = load_checkpoint("resnet20-test", folder=tmp_path)
    image = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.eval()(image), loaded(image))
    assert loaded_entry == entry and entry.sha256 == sha256_of(tmp_path / entry.file)
    assert entry.params == sum(p.numel() for p in model.parameters())
    assert not loaded.training


def test_manifest_keeps_other_entries(tmp_path):
    _save(tmp_path, "a", "plain20")
    _save(tmp_path, "b", "resnet20")
    assert set(read_manifest(tmp_path)) == {"a", "b"}


def test_altered_bytes_are_refused(tmp_path):
    _, entry = _save(tmp_path)
    path = tmp_path / entry.file
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        load_checkpoint("resnet20-test", folder=tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    _, entry = _save(tmp_path)
    # Replace the file by plain32 weights and make the hash agree: only the architecture check is left.
    other = build_model("plain32", **BUILD)
    save_file(dict(other.state_dict()), str(tmp_path / entry.file))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["checkpoints"]["resnet20-test"]["sha256"] = sha256_of(tmp_path / entry.file)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not fit the resnet20 architecture"):
        load_checkpoint("resnet20-test", folder=tmp_path)


def test_unknown_or_missing_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint 'nope'"):
        load_checkpoint("nope", folder=tmp_path)
    _, entry = _save(tmp_path)
    (tmp_path / entry.file).unlink()
    with pytest.raises(CheckpointError, match="listed in the manifest but missing"):
        load_checkpoint("resnet20-test", folder=tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not a valid checkpoint manifest"):
        read_manifest(tmp_path)


def test_shortened_schedules_keep_the_papers_learning_rate_drops_in_place():
    assert preset("paper").milestones == (32_000, 48_000)
    assert preset("paper", steps=6_400).milestones == (3_200, 4_800)
    assert preset("paper", steps=6_400, milestones=(100,)).milestones == (100,)
