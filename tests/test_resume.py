"""The training engine: resumable states, seeds and repeats, schedules, speed switches.

Tiny nets on synthetic data, so each test takes seconds on two CPU cores.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from explorer.cli import main
from explorer.data import load_data
from explorer.present.figures import training_curves_figure
from explorer.store.runs import load_run, new_record
from explorer.store.state import StateError, load_state, save_state, state_path
from explorer.training.engine import Training, config_from_dict, layer_names, preset, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--models", "plain20,resnet20", "--data", "synthetic:256", "--preset", "demo", "--width", "2",
        "--image-size", "8", "--batch-size", "16", "--lr", "0.1", "--warmup-steps", "0"]


def _tiny(**overrides):
    return preset("demo", **{"models": ("plain20", "resnet20"), "data": "synthetic:256", "width": 2,
                             "image_size": 8, "batch_size": 16, "steps": 12, "val_every": 5, "lr": 0.1,
                             "warmup_steps": 0, **overrides})


def _weights(state_file: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(state_file)).items() if k.startswith("model.")}


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "explorer", "train", *args], cwd=cwd, env={**os.environ},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_run_killed_with_sigkill_and_resumed_ends_with_the_same_weights(tmp_path):
    """The run is killed at an arbitrary instant after its first state; the resumed run and
    an uninterrupted one end within 1e-6 of each other (CPU)."""
    steps = "400"
    whole = _cli(*TINY, "--steps", steps, "--state", str(tmp_path / "whole"), "--out", str(tmp_path / "whole.json"),
                 cwd=tmp_path)
    killed = _cli(*TINY, "--steps", steps, "--state", str(tmp_path / "killed"), "--state-every", "25",
                  "--out", str(tmp_path / "killed.json"), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not state_path(tmp_path / "killed").exists():
        assert killed.poll() is None, killed.communicate()
        assert time.monotonic() < deadline, "no state was written"
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in the middle of later steps, maybe while a state is written
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert whole.wait(timeout=300) == 0, whole.communicate()
    saved = load_state(tmp_path / "killed")
    assert 0 < saved.step < 400, "kill the run between its first state and its end"
    resumed = subprocess.run([sys.executable, "-m", "explorer", "train", "--resume", str(tmp_path / "killed")],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {tmp_path / 'killed'} at step {saved.step:,}" in resumed.stderr
    a, b = _weights(state_path(tmp_path / "whole")), _weights(state_path(tmp_path / "killed"))
    assert a.keys() == b.keys() and len(a) > 100
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) <= 1e-6
    # Without --out the resumed run writes its record beside its state, never where the state says.
    assert not (tmp_path / "killed.json").exists()
    record = load_run(tmp_path / "killed" / "run.json")
    assert record.finished and record.steps[-1].step == 400
    assert [s.step for s in record.steps] == [s.step for s in load_run(tmp_path / "whole.json").steps]


def test_resume_in_process_equals_one_run_and_extends_with_steps(tmp_path):
    config = _tiny(steps=10)
    data = load_data(config.data, image_size=config.image_size)
    whole = Training(config, data)
    losses = [m.loss for r in whole.steps() for m in r.models]

    first = Training(config, data)
    record = new_record("part", config, "cpu", layer_names(config))
    for step in first.steps():
        record.append(step)
        if step.step == 4:
            break
    save_state(tmp_path, first, record)
    saved = load_state(tmp_path)
    assert saved.step == 4 and saved.config == config and len(saved.record.steps) == 4
    second = Training(config, data)
    from explorer.store.state import restore

    restore(saved, second)
    rest = [m.loss for r in second.steps() for m in r.models]
    assert rest == pytest.approx(losses[4 * 2:], abs=1e-6)
    for a, b in zip(whole.models.values(), second.models.values()):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_cli_resume_extends_a_finished_run_and_refuses_to_overwrite_a_state(tmp_path, capsys):
    state = tmp_path / "state"
    assert main(["train", *TINY, "--steps", "6", "--state", str(state), "--out", str(tmp_path / "run.json")]) == 0
    assert load_state(state).step == 6
    # A second run into the same folder would lose the first: refused.
    assert main(["train", *TINY, "--steps", "6", "--state", str(state), "--out", str(tmp_path / "other.json")]) == 2
    assert "already holds a training state" in capsys.readouterr().err
    assert main(["train", "--resume", str(state), "--steps", "9"]) == 0
    extended = load_state(state)
    assert extended.step == 9 and extended.config.steps == 9 and extended.config.schedule_steps == 6
    assert "began with --out" in capsys.readouterr().err  # the state's --out is shown as a hint ...
    assert load_run(tmp_path / "run.json").steps[-1].step == 6  # ... and never written to
    assert load_run(state / "run.json").steps[-1].step == 9  # the record goes beside the state
    assert main(["train", "--resume", str(state), "--steps", "3"]) == 2
    assert "already at step 9" in capsys.readouterr().err


def test_resume_may_switch_compile_on_and_nothing_else_of_the_config(tmp_path):
    import argparse

    from explorer.cli.train import _resumed_config

    state = tmp_path / "state"
    assert main(["train", *TINY, "--steps", "3", "--state", str(state), "--out", str(tmp_path / "run.json")]) == 0
    saved = load_state(state).config
    assert not saved.engine.compile
    config, _ = _resumed_config(argparse.Namespace(resume=state, steps=None, compile=True))
    assert config.engine.compile and config.with_engine(compile=False) == saved
    config, _ = _resumed_config(argparse.Namespace(resume=state, steps=None, compile=False))
    assert config == saved


def test_a_long_cpu_run_at_paper_width_is_told_about_compile_and_a_short_one_is_not():
    from explorer.cli.training_run import _compile_would_pay

    paper = preset("paper", models=("resnet20",))
    assert _compile_would_pay(paper, "cpu", 64_000)
    assert not _compile_would_pay(paper, "cpu", 1_000)  # would not pay back its ~30 s
    assert not _compile_would_pay(paper.with_engine(compile=True), "cpu", 64_000)
    assert not _compile_would_pay(preset("demo"), "cpu", 64_000)  # small nets: no gain
    assert not _compile_would_pay(paper, "meta", 64_000)  # only measured on CPU


def test_a_run_resumed_on_another_machine_names_both_in_the_manifest(tmp_path, monkeypatch):
    import explorer.devices
    import explorer.store.runs

    state, shipped = tmp_path / "state", tmp_path / "shipped"
    monkeypatch.setattr(explorer.store.runs, "machine_description", lambda device: "First CPU, 2 cores")
    assert main(["train", *TINY, "--steps", "3", "--state", str(state), "--out", str(tmp_path / "run.json")]) == 0
    monkeypatch.setattr(explorer.devices, "machine_description", lambda device: "Second CPU, 2 cores")
    assert main(["train", "--resume", str(state), "--steps", "5", "--save-dir", str(shipped),
                 "--out", str(tmp_path / "run.json")]) == 0
    entries = json.loads((shipped / "manifest.json").read_text())["checkpoints"].values()
    assert {entry["machine"] for entry in entries} == {"First CPU, 2 cores, then Second CPU, 2 cores"}
    assert load_run(tmp_path / "run.json").environment["machines"] == ["First CPU, 2 cores", "Second CPU, 2 cores"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "format", "config"])
def test_a_damaged_or_foreign_state_is_refused_in_one_line_and_left_alone(tmp_path, capsys, damage):
    state = tmp_path / "state"
    assert main(["train", *TINY, "--steps", "3", "--state", str(state), "--out", str(tmp_path / "run.json")]) == 0
    path = state_path(state)
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a state at all")
    elif damage == "missing":
        path.unlink()
    else:  # rewrite the metadata: another format, or a config of another engine version
        from safetensors import safe_open
        from safetensors.torch import save_file

        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        if damage == "format":
            metadata["format"] = "99"
        else:
            config = json.loads(metadata["config"])
            config["momentum_schedule"] = "new"
            del config["nesterov"]
            metadata["config"] = json.dumps(config)
        save_file(tensors, str(path), metadata=metadata)
    before = path.read_bytes() if path.exists() else None
    assert main(["train", "--resume", str(state)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ")
    expected = {"truncated": "damaged or truncated", "garbage": "damaged or truncated", "missing": "No training state",
                "format": "format '99'", "config": "unknown fields: momentum_schedule; missing fields: nesterov"}
    assert expected[damage] in error
    assert (path.read_bytes() if path.exists() else None) == before  # nothing overwritten
    assert load_run(tmp_path / "run.json").steps[-1].step == 3


def test_a_state_of_other_models_is_refused(tmp_path):
    config = _tiny(steps=2)
    data = load_data(config.data, image_size=config.image_size)
    run = Training(config, data)
    list(run.steps())
    save_state(tmp_path, run, new_record("x", config, "cpu", layer_names(config)))
    other = Training(replace(config, models=("resnet20",)), data)
    from explorer.store.state import restore

    with pytest.raises(StateError, match="does not fit"):
        restore(load_state(tmp_path), other)


def test_repeat_trains_every_seed_in_lock_step_and_the_figure_draws_bands(tmp_path):
    assert main(["train", *TINY, "--steps", "6", "--seed", "3", "--repeat", "3", "--out", str(tmp_path / "run.json")]) == 0
    record = load_run(tmp_path / "run.json")
    assert record.seeds == [3, 4, 5]
    assert [(m.name, m.seed) for m in record.steps[-1].models] == [
        (name, seed) for seed in (3, 4, 5) for name in ("plain20", "resnet20")]
    xs, mean, low, high = record.seed_band("resnet20", "train_error")
    assert xs == list(range(1, 7))
    per_seed = [record.series("resnet20", "train_error", seed=s)[1] for s in (3, 4, 5)]
    assert mean == pytest.approx([sum(v) / 3 for v in zip(*per_seed)])
    assert low == [min(v) for v in zip(*per_seed)] and high == [max(v) for v in zip(*per_seed)]
    figure = training_curves_figure([record])
    bands = [trace for trace in figure.data if trace.fill == "tonexty"]
    assert len(bands) == 4  # train and validation band per model
    assert any("mean of 3 seeds" in (trace.name or "") for trace in figure.data)
    csv = record.to_csv().splitlines()
    assert csv[0].endswith(",seed") and len(csv) == 1 + 6 * 6
    # Each seed of the lock-step run is the run of that seed alone.
    alone = load_data("synthetic:256", image_size=8)
    single = list(train(_tiny(steps=6, seed=4), alone))
    assert [m.loss for m in single[-1].models] == pytest.approx(
        [m.loss for m in record.steps[-1].models if m.seed == 4], abs=1e-6)


def test_channels_last_and_contiguous_give_equal_losses():
    config = _tiny(steps=5, lr=0.01, width=4)
    data = load_data(config.data, image_size=config.image_size)
    nhwc = [m.loss for r in train(config, data) for m in r.models]
    nchw = [m.loss for r in train(config.with_engine(channels_last=False), data) for m in r.models]
    assert len(nhwc) == 10 and nhwc == pytest.approx(nchw, abs=1e-4)
    assert not math.isclose(nhwc[0], nhwc[-2])  # it trained


def test_bf16_autocast_on_cpu_follows_the_fp32_losses_and_keeps_fp32_weights():
    """amp=bf16 (about 1.6x at paper width on a CPU with bf16 instructions,
    benchmarks/engine_speed.py) runs convolutions in bfloat16 (8 significant bits) and keeps
    the weights and batch norm's statistics in fp32."""
    config = _tiny(steps=5, lr=0.01, width=4)
    data = load_data(config.data, image_size=config.image_size)
    run = Training(config.with_engine(amp="bf16"), data)
    bf16 = [m.loss for r in run.steps() for m in r.models]
    fp32 = [m.loss for r in train(config.with_engine(amp="off"), data) for m in r.models]
    assert len(bf16) == 10 and bf16 != fp32  # it did compute in another precision
    assert bf16 == pytest.approx(fp32, rel=0.05)  # the tiny nets differ by up to 2.4% after 4 steps
    assert {p.dtype for model in run.models.values() for p in model.state_dict().values()
            if p.is_floating_point()} == {torch.float32}


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_computes_in_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    """The demo preset's amp="auto": bf16 on a CPU with AMX or AVX-512 BF16, fp32 elsewhere
    (emulated bf16 ran at 0.1x on a CPU without them); the record says which it was."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    config = _tiny(steps=2)
    assert preset("demo").engine.amp == "auto" and preset("paper").engine.amp == "off"
    run = Training(config.with_engine(amp="auto"), load_data(config.data, image_size=config.image_size))
    assert run.amp == ("bf16" if native else "off")
    assert {t.autocast_dtype for t in run.trainees} == {torch.bfloat16 if native else None}
    assert new_record("r", config.with_engine(amp="auto"), "cpu", {}).environment["amp"] == run.amp
    assert Training(config.with_engine(amp="off"), run.data).amp == "off"  # an explicit mode stays


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_torch_compile_follows_the_eager_losses():
    """--compile (1.4x at paper width once it has paid back its ~30 s, engine_speed.py) trains
    the same nets: the same losses to float rounding, for a plain and a residual net."""
    config = _tiny(steps=4, width=2, amp="off", val_every=64_000)  # validates at the end only
    data = load_data(config.data, image_size=config.image_size)
    eager = [m.loss for r in train(config, data) for m in r.models]
    compiled = [m.loss for r in train(config.with_engine(compile=True), data) for m in r.models]
    assert len(eager) == 8 and compiled == pytest.approx(eager, abs=1e-4)
    assert not math.isclose(eager[0], eager[-2])  # it trained


def test_one_sync_and_one_sync_per_model_give_the_same_run():
    config = _tiny(steps=6)
    data = load_data(config.data, image_size=config.image_size)
    a = [m for r in train(config, data) for m in r.models]
    b = [m for r in train(config.with_engine(one_sync=False), data) for m in r.models]
    assert [m.loss for m in a] == pytest.approx([m.loss for m in b], abs=1e-6)
    assert [m.val_error for m in a] == [m.val_error for m in b] and a[-1].val_error is not None
    grads_a = [g for m in a if m.grad_norms for g in m.grad_norms]
    assert len(grads_a) == 2 * 20 * 2 and grads_a == pytest.approx([g for m in b if m.grad_norms for g in m.grad_norms])


@pytest.mark.parametrize("schedule", ["steps", "cosine", "onecycle"])
def test_schedules_are_pytorchs_own(schedule):
    config = _tiny(steps=8, schedule=schedule, milestones=(4,), label_smoothing=0.1, nesterov=True, models=("resnet20",))
    data = load_data(config.data, image_size=config.image_size)
    lrs = [r.models[0].lr for r in train(config, data)]
    reference_model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(reference_model.parameters(), lr=0.1, momentum=0.9)
    scheduler = {"steps": lambda: torch.optim.lr_scheduler.MultiStepLR(optimizer, [4], 0.1),
                 "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 8),
                 "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=8)}[schedule]()
    expected = []
    for _ in range(8):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx(expected)


def test_bad_engine_settings_are_refused_with_a_message():
    data = load_data("synthetic:256", image_size=8)
    for change, message in (({"schedule": "linear"}, "Unknown schedule"), ({"repeat": 0}, "from 1 to 10"),
                            ({"label_smoothing": 1.5}, "label smoothing must be"), ({"amp": "fp16"}, "needs a CUDA device")):
        with pytest.raises(ValueError, match=message):
            Training(_tiny(**change), data)


def test_config_round_trips_through_its_dict():
    from dataclasses import asdict

    config = _tiny(schedule="cosine", repeat=2)
    assert config_from_dict(json.loads(json.dumps(asdict(config)))) == config


def test_a_config_saved_with_the_engine_switches_among_the_recipe_still_reads():
    """Records, states and manifests written before issue 39 hold the speed switches beside the
    recipe's fields (the shipped run records do): read back, they land in ``engine``."""
    from dataclasses import asdict

    config = _tiny(schedule="cosine").with_engine(one_sync=False, compile=True, model_threads=3)
    saved = asdict(config)
    flat = {**{k: v for k, v in saved.items() if k != "engine"}, **saved["engine"]}
    assert config_from_dict(json.loads(json.dumps(flat))) == config
    shipped = json.loads((ROOT / "pretrained" / "runs" / "fig6-width4-cifar10-2000-steps.json").read_text())
    assert shipped["format"] == 2 and "engine" in shipped["config"]  # migrated (store.runs.migrate_run_file)
    engine = shipped["config"]["engine"]
    as_written_before = {**{k: v for k, v in shipped["config"].items() if k != "engine"}, **engine}
    assert config_from_dict(as_written_before).engine == config_from_dict(shipped["config"]).engine
    assert config_from_dict(as_written_before).engine == preset("fig6").engine
    with pytest.raises(ValueError, match="unknown fields: amp"):  # both shapes at once: refused
        config_from_dict({**saved, "amp": "off"})


def test_models_trained_in_threads_give_the_same_run():
    # The threads take the deepest net first and validate their own models; the record keeps
    # the config's order and the same numbers.
    config = _tiny(steps=5, models=("plain20", "resnet20", "plain32"), val_every=2)
    data = load_data(config.data, image_size=config.image_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what the CLI sets for model threads on 2 cores: each op on one thread
    try:
        alone = [(m.name, m.loss, m.val_error) for r in train(config.with_engine(model_threads=1), data)
                 for m in r.models]
        threaded = Training(config.with_engine(model_threads=2), data)
        threaded.threads = 2  # two lanes of one thread each
        together = [(m.name, m.loss, m.val_error) for r in threaded.steps() for m in r.models]
        assert [name for name, _, _ in together] == [name for name, _, _ in alone] == list(config.models) * 5
        assert [loss for _, loss, _ in together] == pytest.approx([loss for _, loss, _ in alone], abs=1e-6)
        assert [error for _, _, error in together] == [error for _, _, error in alone]
        assert sum(error is not None for _, _, error in alone) == 3 * 3  # steps 2, 4 and the last
    finally:
        torch.set_num_threads(threads)
    assert threaded._pool is None  # the worker threads ended with the run


def test_model_threads_split_the_run_threads(monkeypatch):
    config = _tiny(steps=2, models=("plain20", "resnet20", "plain32"), model_threads=2)
    training = Training(config, load_data(config.data, image_size=config.image_size))
    training.threads = 5  # a lab job's share from the server's scheduler
    sized: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (sized.append(n), real(n))[1])
    before = torch.get_num_threads()
    try:
        list(training.steps())
    finally:
        real(before)
    assert sized == [2] * 4  # two lanes (plain32 | plain20, resnet20) of 5 // 2 threads, each step
    assert [[t.name for t in lane] for lane in training._lanes(training.trainees)] == [["plain32"], ["plain20", "resnet20"]]
    training.threads = 1  # a share of one core: one lane, in the stepping thread
    assert len(training._lanes(training.trainees)) == 1
