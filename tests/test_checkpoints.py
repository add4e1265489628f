"""Our own safetensors checkpoints: manifest entries, hash and architecture checks."""

import json
import os
import time

import pytest
import torch
from safetensors.torch import save_file

from explorer.models import build_model
from explorer.store import checkpoints
from explorer.store.checkpoints import (
    CheckpointEntry,
    CheckpointError,
    describe_entry,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
    sha256_of,
    trained_label,
)
from explorer.training.engine import preset

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


def _age(path, seconds: float) -> int:
    """Set the file's mtime ``seconds`` in the past (old enough to be trusted); returns it in ns."""
    stamp = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(stamp, stamp))
    return stamp


@pytest.fixture
def counted_reads(monkeypatch):
    """The paths the manifest reader parses, one item per read from disk."""
    reads = []
    parse = checkpoints._read_manifest_file
    monkeypatch.setattr(checkpoints, "_read_manifest_file", lambda path: reads.append(path) or parse(path))
    return reads


def test_the_manifest_is_read_once_until_its_mtime_changes(tmp_path, counted_reads):
    _save(tmp_path)
    stamp = _age(tmp_path / "manifest.json", 60)
    for _ in range(3):
        assert list(read_manifest(tmp_path)) == ["resnet20-test"]
    assert counted_reads == [tmp_path / "manifest.json"]
    read_manifest(tmp_path)["intruder"] = None  # a caller's copy: the cache keeps its own
    assert list(read_manifest(tmp_path)) == ["resnet20-test"]
    os.utime(tmp_path / "manifest.json", ns=(stamp + 10**9, stamp + 10**9))  # `touch`: one second later
    assert list(read_manifest(tmp_path)) == ["resnet20-test"] and list(read_manifest(tmp_path)) == ["resnet20-test"]
    assert len(counted_reads) == 2


def test_a_reader_of_its_own_keeps_its_own_cache(tmp_path, counted_reads):
    _save(tmp_path)
    _age(tmp_path / "manifest.json", 60)
    mine = checkpoints.ManifestReader()
    assert list(mine.read(tmp_path)) == list(read_manifest(tmp_path)) == ["resnet20-test"]
    assert list(mine.read(tmp_path)) == ["resnet20-test"] and mine.skipped(tmp_path) == []
    assert counted_reads == [tmp_path / "manifest.json"] * 2  # once for each reader, then from its cache


def test_a_manifest_rewritten_within_one_clock_tick_is_read_again(tmp_path, counted_reads, monkeypatch):
    # Same size and same mtime, as when two writes land in one tick of the file system's clock:
    # a file younger than SETTLED_NS is not trusted, so the second version is seen.
    monkeypatch.setattr(checkpoints, "SETTLED_NS", 3600 * 10**9)  # "young" for an hour: no race with the clock
    _save(tmp_path)
    path = tmp_path / "manifest.json"
    stamp = _age(path, 60)
    assert read_manifest(tmp_path)["resnet20-test"].val_error == 0.5
    path.write_text(path.read_text().replace('"val_error": 0.5', '"val_error": 0.4'))
    os.utime(path, ns=(stamp, stamp))
    assert read_manifest(tmp_path)["resnet20-test"].val_error == 0.4
    assert len(counted_reads) == 2


def _entry(**changes) -> CheckpointEntry:
    fields = dict(key="resnet20-cifar10", file="resnet20-cifar10.safetensors", sha256="0" * 64, model="resnet20",
                  build=BUILD, classes=list("abcdefghij"), params=272_474, val_error=0.0875,
                  config={"data": "folder:../shared/data/cifar10/train"}, steps=64_000, wall_time_s=5_700.0,
                  device="cuda")
    return CheckpointEntry(**{**fields, **changes})


def test_one_formatter_describes_an_entry_in_every_place():
    entry = _entry()
    assert describe_entry(entry) == ("resnet20 trained by this project on cifar10 (10 classes, 64,000 steps, "
                                     "95 min on cuda): 8.75% validation error")
    assert describe_entry(entry, "choice") == "resnet20-cifar10 (trained here on cifar10, 8.8% validation error)"
    assert describe_entry(entry, "cell") == trained_label(entry) == "8.8% (cifar10, 64,000 steps)"
    unmeasured = _entry(val_error=None)
    assert describe_entry(unmeasured).endswith(": no validation error recorded")
    assert describe_entry(unmeasured, "choice") == "resnet20-cifar10 (trained here on cifar10)"
    assert trained_label(unmeasured) == "? (cifar10, 64,000 steps)" and trained_label(None) is None
    finetuned = _entry(key="flowers", kind="finetuned", val_error=0.25, wall_time_s=42.4, device="cpu",
                       build={"head": "seed", "num_classes": 3}, classes=["daisy", "rose", "tulip"],
                       config={"data": "folder:/photos/flowers", "backbone": "resnet20-cifar10", "train": "head",
                               "epochs": 5})
    assert describe_entry(finetuned) == ("resnet20 backbone (resnet20-cifar10) with a seed head, fine-tuned (head) "
                                         "on flowers (3 classes, 5 epochs, 42 s on cpu): 75.0% validation accuracy")
    assert describe_entry(finetuned, "choice") == "flowers (fine-tuned here on flowers, 75.0% validation accuracy)"
    with pytest.raises(ValueError, match="form must be one of"):
        describe_entry(entry, "tweet")


def test_shortened_schedules_keep_the_papers_learning_rate_drops_in_place():
    assert preset("paper").milestones == (32_000, 48_000)
    assert preset("paper", steps=6_400).milestones == (3_200, 4_800)
    assert preset("paper", steps=6_400, milestones=(100,)).milestones == (100,)
