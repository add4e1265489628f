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
