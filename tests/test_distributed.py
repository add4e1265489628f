"""torchrun + DistributedDataParallel: two CPU processes with gloo, as a cluster would run them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import explorer
from explorer.store.checkpoints import load_checkpoint
from explorer.training.distributed import Launch, launch_from_environment, rank_and_world_size, sum_over_ranks

TESTS = Path(__file__).parent


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # The ranks import the same explorer package as this test, installed or not.
    source_root = str(Path(explorer.__file__).parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def test_two_gloo_ranks_agree_on_the_weights_after_training(tmp_path):
    result = _torchrun(str(TESTS / "ddp_worker.py"), str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    weights = [k for k in rank0 if k.endswith(".weight") and "bn" not in k]
    assert len(weights) == 2 * 20  # plain20 and resnet20: 19 convs + fc each (shortcut A adds none)
    for key in weights:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # Each rank trained on its own half of every global batch of 16.
    assert rank0["batches"].shape == rank1["batches"].shape == (4, 8, 3, 8, 8)
    for step in range(4):
        assert not torch.equal(rank0["batches"][step], rank1["batches"][step])
    # The ranks report the same training error: it is summed over both halves of the batch.
    torch.testing.assert_close(rank0["train_error"], rank1["train_error"])
    # Only rank 0 spends time on validation (every 2 steps and at the end).
    assert rank0["val_measured"][:, 0].tolist() == [False, True, False, True]
    assert not rank1["val_measured"].any()
    # Four steps of SGD moved the weights away from the shared initialisation.
    torch.manual_seed(0)
    from explorer.models import build_model

    fresh = build_model("plain20", width=2)
    assert not torch.equal(fresh.conv1.weight, rank0["plain20.conv1.weight"])


def test_torchrun_cli_trains_records_and_saves_once(tmp_path):
    result = _torchrun("-m", "explorer", "train", "--models", "resnet20", "--data", "synthetic:200",
                       "--steps", "3", "--batch-size", "8", "--width", "2", "--image-size", "8",
                       "--device", "cpu", "--out", str(tmp_path / "run.json"),
                       "--save-dir", str(tmp_path / "ckpt"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torchrun: 2 processes on cpu, 4 images each per step" in result.stderr
    assert result.stdout.count("resnet20: training error") == 1  # rank 0 alone reports
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["finished"] and len(record["steps"]) == 3
    model, entry = load_checkpoint("resnet20-synthetic", folder=tmp_path / "ckpt")
    assert entry.steps == 3 and entry.config["batch_size"] == 8
    assert model.conv1.weight.shape == (2, 3, 3, 3)


def test_uneven_batch_is_refused_before_training(tmp_path):
    result = _torchrun("-m", "explorer", "train", "--models", "resnet20", "--data", "synthetic:200",
                       "--steps", "2", "--batch-size", "7", "--width", "2", "--image-size", "8",
                       "--device", "cpu", "--out", str(tmp_path / "run.json"), cwd=tmp_path)
    assert result.returncode != 0
    # Each rank says why in one line; the only traceback is torchrun's own failure report.
    assert result.stderr.count("error: The batch size (7) must divide evenly over the 2 processes.") == 2
    assert f'File "{Path(explorer.__file__).parent}' not in result.stderr  # no frame of ours


def test_single_process_is_not_distributed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launch_from_environment() is None
    assert rank_and_world_size() == (0, 1)
    values = torch.tensor([1.0, 2.0])
    assert sum_over_ranks(values).tolist() == [1.0, 2.0]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launch_from_environment() == Launch(rank=1, world_size=4, local_rank=1)
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="start the command with torchrun"):
        launch_from_environment()
