"""`python -m explorer`: JSON contracts, clear errors, no tracebacks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_json_lists_every_registered_model(capsys):
    from explorer.models import model_names

    code, out, _ = run_cli(capsys, "models", "--json")
    entries = {entry["name"]: entry for entry in json.loads(out)}
    assert code == 0 and list(entries) == model_names()
    assert entries["resnet50"]["params"] == 25_557_032
    assert entries["resnet50"]["macs"] == pytest.approx(4.09e9, rel=0.01)
    assert entries["resnet50_v1"]["macs"] == pytest.approx(3.86e9, rel=0.01)
    assert entries["resnet18"]["weights"] == "missing"
    assert entries["plain34"]["weights"] == "none published"


def test_arch_json_gives_table_1_rows(capsys):
    code, out, _ = run_cli(capsys, "arch", "resnet101", "--json")
    result = json.loads(out)
    assert code == 0
    assert [row["stage"] for row in result["rows"]][:5] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x"]
    assert [row["output_size"] for row in result["rows"]][:5] == ["112×112", "56×56", "28×28", "14×14", "7×7"]
    assert result["rows"][3]["blocks"] == "[1×1, 256; 3×3, 256; 1×1, 1024] × 23"
    assert result["total_macs"] == sum(row["macs"] for row in result["rows"])
    assert result["total_params"] == 44_549_160


def test_arch_text_output(capsys):
    code, out, _ = run_cli(capsys, "arch", "resnet18")
    assert code == 0 and "[3×3, 64; 3×3, 64] × 2" in out and "untrained" in out


def test_unknown_model_is_a_one_line_error(capsys):
    code, out, err = run_cli(capsys, "arch", "resnet51")
    assert code == 2 and out == ""
    assert err.startswith("error: Unknown model 'resnet51'. Did you mean ")
    assert "resnet50" in err.splitlines()[0] and len(err.splitlines()) == 1


def test_weights_list_reports_missing_files(capsys):
    code, out, _ = run_cli(capsys, "weights", "list", "--json")
    files = {entry["name"]: entry for entry in json.loads(out)}
    assert code == 0
    assert files["resnet50"] == {"name": "resnet50", "file": "resnet50-0676ba61.pth", "path": None}


def test_weights_download_offline_exits_nonzero_with_instructions(tmp_path):
    # A proxy on a closed loopback port makes the download fail as it does offline,
    # on any machine, without touching the internet.
    env = {**os.environ, "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "explorer", "weights", "download", "resnet50", "--quiet", "--dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Could not download resnet50-0676ba61.pth" in result.stderr
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in result.stderr
    assert env["EXPLORER_PRETRAINED_DIR"] in result.stderr
    assert not list(tmp_path.iterdir())


def test_weights_download_rejects_unknown_names_before_downloading(capsys):
    code, _, err = run_cli(capsys, "weights", "download", "resnet50", "nosuchnet")
    assert code == 2 and "Unknown model 'nosuchnet'" in err


# --- issue 37: every bad flag is one line `error: …`, exit 2, before anything is loaded or written ---

BAD_FLAGS = [  # (argv, what the line must say); {tmp} is the test's folder, holding `afile` and `adir`
    (["weights", "download", "resnet18", "--dir", "{tmp}/missing"], "does not exist"),
    (["weights", "download", "resnet18", "--dir", "{tmp}/afile"], "is a file"),
    (["train", "--image-size", "100000"], "the image size must be a whole number from 4 to 512, got 100,000"),
    (["train", "--width", "1000000"], "the width (first-stage filters) must be a whole number from 1 to 128"),
    (["train", "--val-every", "0"], "the steps between validation passes must be a whole number from 1"),
    (["train", "--val-every", "-1"], "got -1"),
    (["train", "--model-threads", "100000"], "the number of model threads must be"),
    (["train", "--lr", "inf"], "the learning rate must be a number above 0 to 10, got inf"),
    (["train", "--lr", "nan"], "got nan"),
    (["train", "--milestones", "a,b"], "a milestone (the step of a ÷10 drop) must be a whole number"),
    (["train", "--out", "{tmp}/adir"], "is a folder; give a file name"),
    (["train", "--state", "{tmp}/afile"], "is a file; give a folder"),
    (["train", "--save-dir", "{tmp}/afile"], "is a file; give a folder"),
    (["train", "--steps", "80000"], "The number of steps must be a whole number from 1 to 64,000"),
    (["train", "--data", "synthetic:3000000"], "from 10 to 60,000"),
    (["train", "--no-such-flag"], "unrecognized arguments"),
    (["finetune", "--image-size", "100000"], "the image size must be"),
    (["responses", "plain20-cifar10", "--data", "synthetic:1000000000000"], "from 10 to 60,000"),
    (["responses", "plain20-cifar10", "--images", "100000"], "the number of probe images must be"),
    (["landscape", "resnet20-cifar10", "--grid", "1000000"], "The grid (points per axis) must be"),
    (["landscape", "resnet20-cifar10", "--span", "inf"], "The span"),
    (["landscape", "resnet20-cifar10", "--span", "1e308", "--json"], "The span"),
    (["landscape", "resnet20-cifar10", "--save-dir", "{tmp}/afile"], "is a file; give a folder"),
    (["lesion", "resnet20-cifar10", "--draws", "0"], "the random subsets per k must be"),
    (["classify", "x.png", "--topk", "0"], "topk"),
    (["weights"], "the following arguments are required: ACTION"),
]


@pytest.fixture
def nothing_loads(monkeypatch):
    """Fail the test if a command gets as far as loading data or a model."""
    import explorer.paper.inside.probes
    import explorer.training.engine

    def refuse(*args, **kwargs):
        raise AssertionError("loaded something before refusing the flag")
    monkeypatch.setattr(explorer.training.engine, "load_training_data", refuse)
    monkeypatch.setattr(explorer.paper.inside.probes, "load_subject", refuse)


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=[" ".join(a)[:50] for a, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_line_exit_2_and_writes_nothing(argv, message, tmp_path, monkeypatch, capsys,
                                                          nothing_loads):
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and out == ""
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and message in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["adir", "afile"]  # no run.json, no .tmp, no folder
    assert (tmp_path / "afile").read_text() == "keep"


def test_no_command_prints_the_help_and_exits_2(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and out == "" and "usage: python -m explorer" in err and "train" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_help_still_works(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0 and "--val-every" in out and "DIR/run.json" in out


def test_a_diverging_loss_ends_the_run_with_exit_2_and_keeps_its_record(tmp_path, monkeypatch, capsys):
    """A loss that becomes NaN stops its model (explorer.training.lockstep); the command then says so and
    exits 2 instead of 0. The flags cannot ask for such a rate any more, so the loss is poisoned."""
    import math
    from dataclasses import replace

    from explorer.store.runs import load_run
    from explorer.training.lockstep import Trainee

    finish = Trainee.finish

    def poisoned(self, step, measured, *args):
        if self.name == "plain20" and step >= 2:
            measured = replace(measured, loss_sum=math.nan)
        return finish(self, step, measured, *args)
    monkeypatch.setattr(Trainee, "finish", poisoned)
    out = tmp_path / "run.json"
    code, _, err = run_cli(capsys, "train", "--models", "plain20,resnet20", "--data", "synthetic:256", "--width", "2",
                           "--image-size", "8", "--batch-size", "16", "--steps", "3", "--warmup-steps", "0",
                           "--out", str(out))
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last == "error: training diverged: plain20 stopped at step 2: the loss became nan. Try a lower learning rate."
    record = load_run(out)
    assert record.steps[-1].step == 3 and "plain20 stopped at step 2" in record.messages[0]


def test_json_output_has_no_nan_or_infinity(monkeypatch, capsys):
    """A loss surface that overflowed prints null where the value is not finite."""
    import math

    import explorer.paper.inside.landscape
    import explorer.paper.inside.probes
    from explorer.paper.inside.landscape import Surface

    surface = Surface(model="m", alphas=(-1.0, 0.0, 1.0), betas=(-1.0, 0.0, 1.0), seed=0, images=1, source="x",
                      seconds=0.0, loss=((math.inf, 1.0, math.nan), (1.0, 0.5, 1.0), (-math.inf, 1.0, 1.0)))
    monkeypatch.setattr(explorer.paper.inside.probes, "load_subject", lambda name: object())
    monkeypatch.setattr(explorer.paper.inside.probes, "load_probe", lambda subject, data, images: object())
    monkeypatch.setattr(explorer.paper.inside.landscape, "loss_surface", lambda *a, **k: surface)
    code, out, _ = run_cli(capsys, "landscape", "m", "--grid", "3", "--json", "--quiet")

    def refuse(token):
        raise AssertionError(f"{token} is not JSON")
    assert code == 0 and json.loads(out, parse_constant=refuse)["loss"][0] == [None, 1.0, None]
