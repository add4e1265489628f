"""Writers that lose nothing (issue 37): one atomic writer with one file mode, a locked
manifest, names that are never silently reused, bounded auto-saved runs, and a manifest in
which one bad entry hides only itself."""

import json
import multiprocessing
import os
import stat
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from apptest_helpers import open_page
from torch import nn

from explorer import files
from explorer.store import checkpoints, runs
from explorer.store.checkpoints import (
    CheckpointError,
    NameTakenError,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
    skipped_entries,
)
from explorer.store.runs import RunRecord, load_run, prune_runs, save_new_run, save_run
from explorer.training.engine import preset
from explorer.training.lockstep import StepRecord

BUILD = {"width": 2, "shortcut": "A", "num_classes": 3}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _save(folder: Path, key: str, **options):
    """A real (tiny) resnet20 checkpoint: it loads back, so the entry is a sound one."""
    from explorer.models import build_model

    torch.manual_seed(0)
    return save_checkpoint(build_model("resnet20", **BUILD), key=key, model_name="resnet20", build=BUILD,
                           classes=["a", "b", "c"], val_error=0.5, config={"data": "synthetic"}, steps=1,
                           wall_time_s=0.1, device="cpu", folder=folder, **options)


def _save_linear(folder: str, key: str, barrier=None) -> None:
    """One process's (or thread's) save: a 2×2 linear layer, as fast as a save can be."""
    if barrier is not None:
        barrier.wait(timeout=30)  # every saver reads the manifest at the same moment
    save_checkpoint(nn.Linear(2, 2), key=key, model_name="resnet20", build=BUILD, classes=["a", "b"],
                    val_error=None, config={"data": "synthetic"}, steps=1, wall_time_s=0.0, device="cpu",
                    folder=Path(folder))


def test_sixteen_processes_saving_at_once_keep_sixteen_entries(tmp_path):
    context = multiprocessing.get_context("fork")  # the parent's imports come along: each saver starts at once
    barrier = context.Barrier(16)
    savers = [context.Process(target=_save_linear, args=(str(tmp_path), f"model-{i}", barrier)) for i in range(16)]
    for saver in savers:
        saver.start()
    for saver in savers:
        saver.join(timeout=60)
    assert [saver.exitcode for saver in savers] == [0] * 16
    manifest = json.loads((tmp_path / "manifest.json").read_text())["checkpoints"]
    assert sorted(manifest) == sorted(f"model-{i}" for i in range(16))
    assert len(read_manifest(tmp_path)) == 16 and skipped_entries(tmp_path) == []
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))  # nothing half-written left


def test_sixteen_threads_saving_at_once_keep_sixteen_entries(tmp_path):
    barrier = threading.Barrier(16)
    savers = [threading.Thread(target=_save_linear, args=(str(tmp_path), f"t{i}", barrier)) for i in range(16)]
    for saver in savers:
        saver.start()
    for saver in savers:
        saver.join(timeout=60)
    assert len(json.loads((tmp_path / "manifest.json").read_text())["checkpoints"]) == 16


def test_every_file_the_project_writes_is_0644_whatever_the_umask(tmp_path, monkeypatch):
    """A private umask would make files written with ``open`` 0600; the temporary files of
    ``NamedTemporaryFile`` are 0600 under any umask. Every writer gives 0644."""
    from explorer.data.cache import write_cache
    from explorer.paper.inside.landscape import Surface
    from explorer.paper.inside.precomputed import save_result
    from explorer.paper.inside.responses import LayerResponse, Responses
    from explorer.paper.inside.surfaces import save_surface
    from explorer.store.state import save_state

    record = runs.new_record("r", preset("demo", steps=1), "cpu", {})
    training = SimpleNamespace(config=preset("demo"), state_dict=lambda: ({"w": torch.zeros(2)}, {"step": 0}))
    surface = Surface(model="m", alphas=(-1.0, 0.0, 1.0), betas=(-1.0, 0.0, 1.0), seed=0, images=1, source="x",
                      seconds=0.0, loss=((1.0,) * 3,) * 3)
    responses = Responses(model="m", layers=(LayerResponse("conv1", 1.0),), images=1, source="x")
    previous = os.umask(0o077)
    try:
        entry = _save(tmp_path / "pretrained", "resnet20-toy")
        written = [tmp_path / "pretrained" / entry.file, tmp_path / "pretrained" / "manifest.json",
                   save_run(record, tmp_path / "runs" / "chosen.json"), save_new_run(record, tmp_path / "runs"),
                   save_state(tmp_path / "state", training, record), save_surface(surface, "test", tmp_path / "land"),
                   tmp_path / "land" / "manifest.json", files.atomic_write(tmp_path / "plain.txt", "x"),
                   save_result("responses", responses, command="c", seconds=0.0, machine="m", folder=tmp_path / "in"),
                   tmp_path / "in" / "manifest.json",
                   files.create_new(tmp_path / "new.txt", b"x")]
        write_cache(tmp_path / "cache" / "slot.safetensors", "key", torch.zeros(1, 3, 2, 2, dtype=torch.uint8),
                    torch.zeros(1, dtype=torch.int64), ("a",), tmp_path)
        written.append(tmp_path / "cache" / "slot.safetensors")
    finally:
        os.umask(previous)
    assert {str(path.relative_to(tmp_path)): oct(_mode(path)) for path in written} == {
        str(path.relative_to(tmp_path)): "0o644" for path in written}
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no temporary file left anywhere


def test_a_folder_in_place_of_the_file_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(IsADirectoryError):
        files.atomic_write(tmp_path / "out.json", "x")
    assert list(tmp_path.iterdir()) == [tmp_path / "out.json"]
    files.create_new(tmp_path / "once.txt", "first")
    with pytest.raises(FileExistsError):
        files.create_new(tmp_path / "once.txt", "second")
    assert (tmp_path / "once.txt").read_text() == "first" and len(list(tmp_path.iterdir())) == 2


def test_a_taken_name_is_refused_never_replaced_and_a_free_one_is_offered(tmp_path):
    first = _save(tmp_path, "mine", replace=False)
    with pytest.raises(NameTakenError, match="'mine' is already saved in .*'mine-2' is free.*Nothing was replaced"):
        _save(tmp_path, "mine", replace=False)
    assert read_manifest(tmp_path)["mine"].sha256 == first.sha256 == checkpoints.sha256_of(tmp_path / first.file)
    assert files.free_name("mine", {"mine", "mine-2"}) == "mine-3" and files.free_name("new", {"mine"}) == "new"
    # The CLI's documented re-training (`train --save-dir pretrained`) replaces its own key, as before.
    assert _save(tmp_path, "mine").key == "mine" and list(read_manifest(tmp_path)) == ["mine"]


def test_a_taken_finetune_name_is_refused_and_the_model_can_still_be_saved(tmp_path, monkeypatch):
    from explorer.models import build_model
    from explorer.transfer import finetune
    from explorer.transfer.recipe import FinetuneConfig

    result = SimpleNamespace(epochs_done=1, model=build_model("resnet20", **BUILD), model_name="resnet20",
                             backbone_build=BUILD, classes=["a", "b", "c"], val_accuracy=0.5, preprocessing={},
                             history=[], steps=1, wall_time_s=0.1, device="cpu")
    config = FinetuneConfig(backbone="resnet20-cifar10", data="synthetic:100")
    folder = tmp_path / "finetuned"
    first = finetune.save_finetuned(result, config, "my-model", folder=folder)
    assert finetune.suggested_key(config, folder) == "resnet20-cifar10-linear-synthetic"
    with pytest.raises(NameTakenError) as taken:
        finetune.save_finetuned(result, config, "my-model", folder=folder)
    assert taken.value.free == "my-model-2" and "Nothing was replaced" in str(taken.value)
    assert read_manifest(folder)["my-model"].sha256 == first.sha256
    assert finetune.save_finetuned(result, config, taken.value.free, folder=folder).key == "my-model-2"
    finetune.save_finetuned(result, config, finetune.suggested_key(config, folder), folder=folder)
    assert finetune.suggested_key(config, folder) == "resnet20-cifar10-linear-synthetic-2"  # versioned past it
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(tmp_path / "shipped"))
    _save(tmp_path / "shipped", "resnet20-cifar10")
    with pytest.raises(NameTakenError, match="the name of a shipped checkpoint.*'resnet20-cifar10-2' is free"):
        finetune.check_save_name("resnet20-cifar10", folder)


def _record(name: str = "demo-synthetic") -> RunRecord:
    record = runs.new_record(name, preset("demo", steps=1), "cpu", {})
    record.append(StepRecord(step=1, epoch=0.0, elapsed_s=0.0, images_per_s=0.0, models=()))
    return record


def test_runs_ending_in_the_same_second_get_names_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(runs.time, "strftime", lambda _format: "20250101-120000")  # one frozen second
    paths = [save_new_run(_record(), tmp_path) for _ in range(3)]
    assert [p.name for p in paths] == ["20250101-120000-demo-synthetic.json", "20250101-120000-demo-synthetic-2.json",
                                       "20250101-120000-demo-synthetic-3.json"]
    saved = []
    threads = [threading.Thread(target=lambda i=i: saved.append(save_new_run(_record(f"t-{i % 2}"), tmp_path)))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(saved)) == 8 and all(load_run(path).name in ("t-0", "t-1") for path in saved)
    assert len(list(tmp_path.glob("*.json"))) == 11


def test_auto_saved_runs_are_pruned_to_the_newest_runs_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_RUNS_KEPT", "3")
    old = []
    for age in range(5):  # five older runs, the oldest first in line
        path = save_run(_record(), tmp_path / f"20240101-00000{age}-old.json")
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
        old.append(path)
    by_hand = save_run(_record(), tmp_path / "my-favourite.json")  # not a name the lab gives: never pruned
    os.utime(by_hand, (1, 1))
    newest = save_new_run(_record(), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted([old[3].name, old[4].name, newest.name,
                                                                     by_hand.name])
    assert prune_runs(tmp_path, keep=1) == [old[4], old[3]] and newest.is_file()


def test_a_job_saves_its_run_once_and_a_resumed_one_keeps_its_file(tmp_path):
    from explorer.server.jobs import TrainingJob

    job = TrainingJob(replace(preset("demo"), steps=1), device="cpu", name="r", save_dir=tmp_path)
    job._record.steps.append({"step": 1, "models": []})
    job._after()
    first = job._saved_to
    job._after()  # a resumed run writes the same file again, not a second one
    assert job._saved_to == first and list(tmp_path.glob("*.json")) == [first] and _mode(first) == 0o644


def _manifest_with(folder: Path, **entries) -> None:
    raw = json.loads((folder / "manifest.json").read_text())
    raw["checkpoints"].update(entries)
    (folder / "manifest.json").write_text(json.dumps(raw))


def test_one_bad_manifest_entry_is_skipped_with_its_name_and_the_others_still_load(tmp_path):
    good = _save(tmp_path, "good")
    sound = {k: v for k, v in vars(good).items() if k != "key"}
    outside = tmp_path.parent / f"{tmp_path.name}-outside.safetensors"
    outside.write_bytes((tmp_path / good.file).read_bytes())
    (tmp_path / "link.safetensors").symlink_to(outside)
    _manifest_with(tmp_path, **{
        "no-sha": {k: v for k, v in sound.items() if k != "sha256"},
        "wrong-type": {**sound, "params": "many"},
        "not-an-object": [1, 2],
        "passwd": {**sound, "file": "../../etc/passwd"},
        "absolute": {**sound, "file": "/etc/passwd"},
        "link-out": {**sound, "file": "link.safetensors"},
        "odd-kind": {**sound, "kind": "pickle"},
        "no-head": {**sound, "kind": "finetuned"},  # a fine-tuned entry without its head: not describable
    })
    assert list(read_manifest(tmp_path)) == ["good"]
    problems = " ".join(skipped_entries(tmp_path))
    for key in ("no-sha", "wrong-type", "not-an-object", "passwd", "absolute", "link-out", "odd-kind", "no-head"):
        assert f"'{key}'" in problems, key
    assert "missing sha256" in problems and "wrong type of params" in problems and "'../../etc/passwd'" in problems
    model, entry = load_checkpoint("good", folder=tmp_path)
    assert entry.sha256 == good.sha256 and not model.training
    with pytest.raises(CheckpointError, match="No checkpoint 'passwd'"):
        load_checkpoint("passwd", folder=tmp_path)
    # A later save keeps the entries this version skips, as they were (nobody's data is dropped).
    _save(tmp_path, "another")
    kept = json.loads((tmp_path / "manifest.json").read_text())["checkpoints"]
    assert kept["passwd"]["file"] == "../../etc/passwd" and kept["not-an-object"] == [1, 2]
    assert sorted(read_manifest(tmp_path)) == ["another", "good"]


def test_a_file_entry_that_leads_out_is_refused_at_load_too(tmp_path):
    """The check is made again when loading: a link swapped in after the manifest was read."""
    good = _save(tmp_path, "good")
    entry = read_manifest(tmp_path)["good"]
    (tmp_path / good.file).unlink()
    (tmp_path / good.file).symlink_to("/etc/passwd")
    with pytest.raises(CheckpointError, match="leads out of"):
        checkpoints.load_entry(entry, tmp_path)
    with pytest.raises(CheckpointError, match="not a plain path"):
        checkpoints.load_entry(replace(entry, file="../../etc/passwd"), tmp_path)


def test_the_app_lists_the_other_checkpoints_and_names_the_bad_one(monkeypatch, tmp_path):
    from explorer.store.classifiers import classifier_names

    folder = Path(os.environ["EXPLORER_PRETRAINED_DIR"])
    good = _save(folder, "resnet20-toy")
    _manifest_with(folder, **{"evil": {**{k: v for k, v in vars(good).items() if k != "key"},
                                       "file": "../../etc/passwd"}})
    assert classifier_names()[:1] == ["resnet20-toy"] and "evil" not in classifier_names()
    assert any("'evil'" in problem and "not a plain path" in problem for problem in skipped_entries())


def _save_section_page():
    """The transfer page's save section after a (stand-in) finished fine-tune."""
    from types import SimpleNamespace

    import torch

    from explorer.models import build_model
    from explorer.transfer.recipe import FinetuneConfig
    from explorer.ui.transfer import save_section

    torch.manual_seed(0)
    build = {"width": 2, "shortcut": "A", "num_classes": 3}
    result = SimpleNamespace(epochs_done=1, model=build_model("resnet20", **build), model_name="resnet20",
                             backbone_build=build, classes=["a", "b", "c"], val_accuracy=0.5, preprocessing={},
                             history=[], steps=1, wall_time_s=0.1, device="cpu")
    job = SimpleNamespace(config=FinetuneConfig(backbone="resnet20-cifar10", data="synthetic:100"),
                          snapshot=lambda: SimpleNamespace(result=result, state="finished"))
    save_section(SimpleNamespace(job=job, running=False))


def test_the_page_refuses_a_taken_name_says_which_is_free_and_keeps_the_model():
    from streamlit.testing.v1 import AppTest

    from explorer.store.checkpoints import finetuned_dir

    at = AppTest.from_function(_save_section_page, default_timeout=60).run()
    assert at.text_input[0].value == "resnet20-cifar10-linear-synthetic"  # a free name, suggested
    at.text_input[0].set_value("mine").run()
    next(b for b in at.button if b.label == "Save").click().run()
    first = read_manifest(finetuned_dir())["mine"]
    next(b for b in at.button if b.label == "Save").click().run()  # the same name again
    message = at.error[0].value.replace("\\", "")
    assert "'mine' is already saved" in message and "'mine-2' is free" in message and "model is kept" in message
    assert read_manifest(finetuned_dir())["mine"] == first  # nothing replaced
    at.text_input[0].set_value("mine-2").run()
    next(b for b in at.button if b.label == "Save").click().run()  # the model was kept: it saves now
    assert not at.exception and not at.error and sorted(read_manifest(finetuned_dir())) == ["mine", "mine-2"]


def test_the_inspect_page_names_the_bad_entry_and_offers_the_others():
    from explorer.models import build_model

    folder = Path(os.environ["EXPLORER_PRETRAINED_DIR"])
    build = {"width": 2, "shortcut": "A", "num_classes": 10}
    good = save_checkpoint(build_model("resnet20", **build), key="resnet20-toy", model_name="resnet20", build=build,
                           classes=[f"c{i}" for i in range(10)], val_error=0.5,
                           config={"data": "synthetic", "image_size": 8}, steps=1, wall_time_s=0.1, device="cpu",
                           folder=folder)
    _manifest_with(folder, **{"[evil](http://ev.il)": {**{k: v for k, v in vars(good).items() if k != "key"},
                                                        "file": "/etc/passwd"}})
    at = open_page("../pages/inspect_image.py")
    warnings = [w.value for w in at.warning if "evil" in w.value]
    assert len(warnings) == 1 and "not a plain path" in warnings[0] and "](" not in warnings[0].replace("\\]", "")
    assert at.selectbox(key="inspect.model").value == "resnet20-toy" and not at.error


def test_finetune_cli_refuses_a_taken_name_before_training(tmp_path, capsys, monkeypatch):
    from explorer import data
    from explorer.cli import main

    _save(tmp_path, "taken")
    monkeypatch.setattr(data, "load_data", lambda *a, **k: pytest.fail("the data was loaded for a taken name"))
    assert main(["finetune", "--backbone", "resnet20-cifar10", "--name", "taken", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "'taken' is already saved" in error and "'taken-2' is free" in error
    assert list(read_manifest(tmp_path)) == ["taken"]


def test_a_landscape_entry_outside_its_folder_is_skipped_and_the_others_load(tmp_path):
    from explorer.paper.inside.landscape import Surface
    from explorer.paper.inside.surfaces import save_surface, shipped_surfaces

    surface = Surface(model="m", alphas=(-1.0, 0.0, 1.0), betas=(-1.0, 0.0, 1.0), seed=0, images=1, source="x",
                      seconds=0.0, loss=((1.0,) * 3,) * 3)
    save_surface(surface, "test", tmp_path)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    raw["landscapes"]["evil"] = {**raw["landscapes"]["m"], "file": "../../etc/passwd"}
    raw["landscapes"]["broken"] = {"file": 3}
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    assert list(shipped_surfaces(tmp_path)) == ["m"]
