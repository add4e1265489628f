"""The degradation lab end to end: the page (AppTest), the CLI, and bad settings."""

import json
import os
import time
from pathlib import Path

import pytest
from apptest_helpers import open_page
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import settings
from explorer.cli import main as cli_main

LAB = "../pages/degradation.py"


def open_lab() -> AppTest:
    return open_page(LAB)


# Records are built as the engine's runs build them (new_record on a real config, then append
# of the engine's own StepRecord and ModelMetrics), so a test cannot drift from the format.
def new_run(name: str, models, *, layer_names=None, preset_name: str = "paper", **config):
    """An empty record of ``models`` on the preset ``preset_name`` (every step kept)."""
    from explorer.store.runs import new_record
    from explorer.training.recipe import preset

    config = preset(preset_name, models=tuple(models), **{"data": "synthetic", "record_every": 1, **config})
    return new_record(name, config, "cpu", layer_names or {})


def metrics(name: str, train_error: float, val_error: float | None = None, grad_norms=None, seed: int = 0):
    from explorer.training.lockstep import ModelMetrics

    return ModelMetrics(name=name, loss=1.0, train_error=train_error, val_error=val_error, lr=0.1,
                        grad_norms=None if grad_norms is None else tuple(grad_norms), seed=seed)


def step_of(number: int, entries, *, epoch: float = 0.0, elapsed_s: float = 1.0):
    from explorer.training.lockstep import StepRecord

    return StepRecord(step=number, epoch=epoch, elapsed_s=elapsed_s, images_per_s=1.0, models=tuple(entries))


def configure(at: AppTest, *, data: str, models: list[str], steps: int) -> None:
    """Fill in "Your own run": ``data`` is "synthetic" or "folder:PATH"."""
    picker = at.selectbox(key="lab.dataset")
    if data.startswith("folder:"):
        picker.set_value("A folder on this machine").run()
        at.text_input(key="lab.folder").set_value(data.removeprefix("folder:")).run()  # enables Start
    else:
        picker.set_value("Synthetic (generated, instant)")
    at.multiselect(key="lab.models").set_value(models)
    at.number_input(key="lab.steps").set_value(steps)


def _button(at: AppTest, label: str):
    return next(button for button in at.button if button.label == label)


def curve_lengths(at: AppTest) -> dict[str, int]:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {trace["name"]: len(trace["x"]) for trace in spec["data"] if (trace.get("name") or "").endswith("train")}


def poll(at: AppTest, until, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        if until(at):
            return
        time.sleep(0.3)
    raise AssertionError("the page never reached the expected state")


def progress_text(at: AppTest) -> str:
    return " ".join(p.proto.text for p in at.get("progress"))


def test_demo_run_on_synthetic_data_grows_curves_and_stops():
    at = open_lab()
    configure(at, data="synthetic", models=["plain20", "resnet20"], steps=5000)
    _button(at, "Start your run").click().run()
    poll(at, lambda at: at.get("plotly_chart") and min(curve_lengths(at).values(), default=0) >= 3)
    first = curve_lengths(at)
    assert set(first) == {"plain20 train", "resnet20 train"}
    poll(at, lambda at: min(curve_lengths(at).values()) > max(first.values()))
    _button(at, "Stop").click().run()
    poll(at, lambda at: "stopped" in progress_text(at))
    stopped_at = curve_lengths(at)
    time.sleep(1.0)
    at.run()
    assert curve_lengths(at) == stopped_at  # nothing trains after Stop
    assert max(stopped_at.values()) < 5000
    assert len(at.get("plotly_chart")) == 3  # the curves and a plain/residual gradient heatmap pair
    poll(at, lambda at: any("Saved to" in c.value for c in at.caption))
    [saved] = Path(os.environ["EXPLORER_RUNS_DIR"]).glob("*.json")
    # The finished run replayed beside its live view: the same heatmaps twice, apart by key.
    at.multiselect(key="lab.replay").set_value([saved.stem]).run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.get("plotly_chart")) == 6


def test_a_stopped_run_resumes_where_it_stopped():
    at = open_lab()
    configure(at, data="synthetic", models=["plain20", "resnet20"], steps=5000)
    assert "Resume" not in [b.label for b in at.button]  # nothing to resume yet
    _button(at, "Start your run").click().run()
    poll(at, lambda at: at.get("plotly_chart") and min(curve_lengths(at).values(), default=0) >= 3)
    _button(at, "Stop").click().run()
    poll(at, lambda at: "stopped" in progress_text(at) and "Resume" in [b.label for b in at.button])
    stopped_at = curve_lengths(at)["resnet20 train"]
    _button(at, "Resume").click().run()
    poll(at, lambda at: curve_lengths(at)["resnet20 train"] > stopped_at + 2)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    steps = next(trace["x"] for trace in spec["data"] if trace["name"] == "resnet20 train")
    assert steps == list(range(1, len(steps) + 1))  # one run, continued: no step lost or repeated
    _button(at, "Stop").click().run()
    poll(at, lambda at: "stopped" in progress_text(at))


def test_the_lab_trains_several_seeds_and_draws_their_band():
    at = open_lab()
    configure(at, data="synthetic", models=["resnet20"], steps=4)
    at.number_input(key="lab.repeat").set_value(2).run()
    _button(at, "Start your run").click().run()
    poll(at, lambda at: "finished" in progress_text(at))
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert any(trace.get("fill") == "tonexty" for trace in spec["data"])
    assert "resnet20 (mean of 2 seeds) train" in {trace.get("name") for trace in spec["data"]}


def test_recorded_runs_replay_instantly(tmp_path):
    from explorer.store.runs import save_run

    record = new_run("recorded", ("plain20", "resnet20"), preset_name="demo", data="cifar10")
    for s in range(1, 11):
        record.append(step_of(s, [metrics("plain20", 0.8), metrics("resnet20", 0.5)], elapsed_s=float(s)))
    save_run(record, Path(os.environ["EXPLORER_PRETRAINED_DIR"]) / "runs" / "recorded.json")
    at = open_lab()
    assert "recorded" in at.multiselect(key="lab.replay").options
    at.multiselect(key="lab.replay").set_value(["recorded"]).run()
    assert not at.exception
    names = {trace.get("name") for chart in at.get("plotly_chart")
             for trace in json.loads(chart.proto.spec)["data"]}
    assert names >= {"plain20 train", "plain20 validation", "resnet20 train"}
    assert [b.label for b in at.get("download_button")] == ["Metrics as CSV", "Chart as HTML"]


def _folder(tmp_path: Path, classes: dict[str, int], corrupt: bool = False) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for name, count in classes.items():
        (root / name).mkdir()
        for index in range(count):
            Image.new("RGB", (32, 32), (index * 20 % 255, 40, 90)).save(root / name / f"{index}.png")
    if corrupt:
        (root / next(iter(classes)) / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("empty", "No images found"),
    ("one class", "at least two classes"),
    ("corrupt", "broken.jpg"),
    ("batch too large", "larger than the"),
])
def test_bad_data_settings_show_a_clear_message_in_the_page(tmp_path, case, message):
    builders = {
        "missing": lambda: f"folder:{tmp_path / 'nowhere'}",
        "empty": lambda: f"folder:{_empty(tmp_path)}",
        "one class": lambda: f"folder:{_folder(tmp_path, {'cats': 3})}",
        "corrupt": lambda: f"folder:{_folder(tmp_path, {'cats': 3, 'dogs': 3}, corrupt=True)}",
        "batch too large": lambda: f"folder:{_folder(tmp_path, {'cats': 3, 'dogs': 3})}",
    }
    data = builders[case]()
    at = open_lab()
    configure(at, data=data, models=["plain20"], steps=10)
    start = _button(at, "Start your run")
    if case == "missing":  # refused by the data-roots check before anything starts (issue 16)
        assert start.disabled
    else:
        start.click().run()
    poll(at, lambda at: bool(at.error), timeout_s=60)
    assert message in at.error[0].value, at.error[0].value
    assert "Traceback" not in at.error[0].value


@pytest.mark.parametrize("argv, message", [
    (["--models", "plain20,resnet21"], "Unknown model 'resnet21'"),
    (["--data", "folder:/no/such/folder"], "does not exist"),
    (["--data", "synthetic:40", "--batch-size", "64"], "larger than the"),
    (["--data", "imagenet"], "synthetic"),
])
def test_cli_train_refuses_bad_settings_with_one_line(capsys, tmp_path, argv, message):
    code = cli_main(["train", *argv, "--steps", "2", "--out", str(tmp_path / "run.json")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "run.json").exists()


def test_cli_train_writes_a_run_record(capsys, tmp_path):
    out = tmp_path / "run.json"
    code = cli_main(["train", "--models", "plain20,resnet20", "--data", "synthetic:400", "--steps", "6",
                     "--batch-size", "16", "--erasing", "0.5", "--save-dir", str(tmp_path / "ckpt"),
                     "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    from explorer.store.runs import load_run

    record = load_run(out)
    assert [s.step for s in record.steps] == [1, 2, 3, 4, 5, 6]
    assert record.config.models == ("plain20", "resnet20") and record.finished
    assert record.config.augmentation.erasing_p == 0.5
    assert len(record.layer_names["resnet20"]) == 20
    assert "plain20: training error" in captured.out and "6/6" in captured.err
    from explorer.store.checkpoints import load_checkpoint

    model, entry = load_checkpoint("resnet20-synthetic", folder=tmp_path / "ckpt")
    assert entry.steps == 6 and entry.build["width"] == 6 and 0 <= entry.val_error <= 1


def test_a_new_run_or_a_closed_tab_stops_the_session_job():
    from explorer.server.jobs import TrainingJob
    from explorer.server.scheduler import SessionBusy
    from explorer.server.sessions import SessionResources
    from explorer.training.engine import preset
    from explorer.ui import JobSlot

    config = preset("demo", models=("plain20",), data="synthetic:400", steps=64_000)
    resources = SessionResources()
    slot = JobSlot(resources, "lab")
    first = TrainingJob(config, device="cpu", name="first")
    slot.start(first)
    second = TrainingJob(config, device="cpu", name="second")
    with pytest.raises(SessionBusy, match="already has a lab run"):
        slot.start(second)  # never a silent replacement (issue 37) ...
    assert first.running
    slot.start(second, replace=True)  # ... only when asked: "Stop it and start the new one"
    first.join(timeout=30)
    assert not first.running and first.snapshot().state == "stopped"
    resources.release().join(timeout=60)  # what st.cache_resource's on_release calls when the session ends
    assert not second.running and second.snapshot().state == "stopped"


def test_checkpoint_keys_name_the_data_set(capsys, tmp_path):
    from explorer.store.checkpoints import dataset_tag, read_manifest

    assert dataset_tag("folder:../shared/data/cifar10/train") == "cifar10"
    assert dataset_tag("folder:/photos/pets/") == "pets" and dataset_tag("synthetic:400") == "synthetic"
    root = _folder(tmp_path, {"cats": 6, "dogs": 6})
    code = cli_main(["train", "--models", "resnet20", "--data", f"folder:{root}", "--steps", "2",
                     "--batch-size", "4", "--save-dir", str(tmp_path / "ckpt"), "--out", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    assert list(read_manifest(tmp_path / "ckpt")) == ["resnet20-photos"]


def test_runs_named_after_a_folder_are_saved_as_one_plain_file(tmp_path):
    from explorer.server.jobs import TrainingJob
    from explorer.training.engine import preset

    config = preset("demo", models=("plain20",), data="synthetic:400", steps=2)
    job = TrainingJob(config, device="cpu", name="demo-folder:/data/cifar10/train", save_dir=tmp_path).start()
    job.join(timeout=60)
    snapshot = job.snapshot()
    assert snapshot.state == "finished" and snapshot.saved_to.parent == tmp_path
    assert snapshot.saved_to.name.endswith("-demo-folder_data_cifar10_train.json")


SHIPPED = Path(__file__).resolve().parent.parent / "pretrained"


def test_shipped_runs_are_listed_and_replayed_with_their_recorded_numbers(monkeypatch):
    """A fresh clone replays the shipped CIFAR-10 runs (pretrained/runs) without training."""
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    shipped = {path.stem: path for path in (SHIPPED / "runs").glob("*.json")}
    assert "class-demo-cifar10-3-classes" in shipped and "plain-cifar10-35000-steps" in shipped
    at = open_lab()
    assert set(shipped) <= set(at.multiselect(key="lab.replay").options)
    at.multiselect(key="lab.replay").set_value(["class-demo-cifar10-3-classes"]).run(timeout=120)
    assert not at.exception
    from explorer.store.runs import load_run

    record = load_run(shipped["class-demo-cifar10-3-classes"])
    assert record.finished and record.model_names == ["plain20", "plain56", "resnet20", "resnet56"]
    traces = {trace["name"]: trace for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    for final in record.steps[-1].models:
        train = traces[f"{final.name} train"]
        assert train["x"][-1] == record.config.steps
        assert train["y"][-1] == pytest.approx(100 * final.train_error)
        assert traces[f"{final.name} validation"]["y"][-1] == pytest.approx(100 * final.val_error)
    # Overlaying every shipped run draws each run's models under the run's name.
    at.multiselect(key="lab.replay").set_value(sorted(shipped)).run(timeout=120)
    names = {trace["name"] for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    for run, path in shipped.items():
        for model in load_run(path).model_names:
            assert f"{run}: {model} train" in names


def test_the_shipped_fig6_run_replays_in_two_panels_with_its_orderings_in_words(monkeypatch):
    """The eight-net record (the fig6 preset) draws as Fig. 6 and says which panel is ordered by depth."""
    from dataclasses import replace

    from explorer.paper.fig6 import depth_orderings
    from explorer.store.runs import load_run
    from explorer.training.recipe import preset

    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    record = load_run(SHIPPED / "runs" / "fig6-width4-cifar10-2000-steps.json")
    assert record.config == replace(preset("fig6"), data=record.config.data)  # a run of the preset itself
    plain, residual = depth_orderings(record)
    assert plain.as_in_the_paper  # deeper plain nets, higher training error: the left panel
    assert residual.as_in_the_paper  # deeper ResNets, lower training error: the right panel
    assert [n for n, _ in residual.errors] == ["resnet20", "resnet32", "resnet44", "resnet56"]
    at = open_lab()
    at.multiselect(key="lab.replay").set_value(["fig6-width4-cifar10-2000-steps"]).run(timeout=120)
    assert not at.exception and at.toggle(key="lab.fig6").value
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {trace.get("xaxis", "x") for trace in spec["data"]} == {"x", "x2"}  # two panels
    words = " ".join(m.value for m in at.markdown)
    assert plain.describe() in words and residual.describe() in words
    assert any("no crop or flip" in c.value for c in at.caption)  # why validation error rises above training


def test_the_shipped_35000_step_runs_replay_together_as_fig6_at_the_papers_width(monkeypatch):
    """Plain-20/56, ResNet-20 and ResNet-56 were trained in three runs of one recipe; one
    button draws them as Fig. 6, whose left panel shows the degradation problem."""
    from explorer.paper.fig6 import PAPER_WIDTH_FIG6_RUNS, depth_orderings, fig6_record
    from explorer.store.runs import load_run

    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    records = [load_run(SHIPPED / "runs" / f"{name}.json") for name in PAPER_WIDTH_FIG6_RUNS]
    combined, why_not = fig6_record(records)
    assert why_not is None and combined.finished and combined.steps[-1].step == 35_000
    plain, _ = depth_orderings(combined)
    assert plain.as_in_the_paper  # plain-56 ends with higher training error than plain-20 (§4.1)
    validation = dict(depth_orderings(combined, "val_error")[1].errors)
    assert validation["resnet56"] < validation["resnet20"]  # Table 6's order, on the same schedule
    at = open_lab()
    next(b for b in at.button if b.label.startswith("Fig. 6 at the paper's width")).click().run(timeout=120)
    assert not at.exception and at.multiselect(key="lab.replay").value == list(PAPER_WIDTH_FIG6_RUNS)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {trace.get("xaxis", "x") for trace in spec["data"]} == {"x", "x2"}
    words = " ".join(m.value for m in at.markdown)
    assert f"{plain.describe()}, by training error" in words
    # ResNet-20 was trained with random erasing, ResNet-56 without: their panel is compared by
    # validation error, and the sentence says why (issue 38)
    assert ("ResNets: ResNet-20 11.0% > ResNet-56 10.7% (as in Fig. 6), by validation error: ResNet-20 trained "
            "with random erasing, which raises its training error") in words


def test_the_dataset_defaults_to_cifar10_when_it_is_here_and_synthetic_otherwise(tmp_path, monkeypatch):

    monkeypatch.setattr(settings, "SHARED_DATA", tmp_path / "no-shared-data")
    at = open_lab()
    assert at.selectbox(key="lab.dataset").value == "Synthetic (generated, instant)"
    assert "on the synthetic set" in _button(at, "▶ Start the class demo: plain-20, plain-56, ResNet-20 and "
                                                 "ResNet-56 on the synthetic set").label
    folder = _folder(tmp_path, {"airplane": 2, "cat": 2})
    monkeypatch.setenv("EXPLORER_CIFAR10_DIR", str(folder))
    at = open_lab()
    assert at.selectbox(key="lab.dataset").value == f"CIFAR-10 ({folder.resolve()})"
    assert any(b.label.endswith("on CIFAR-10") for b in at.button)


def test_start_is_disabled_while_a_run_goes_and_stop_while_none_does():
    at = open_lab()
    assert _button(at, "Stop").disabled and not _button(at, "Start your run").disabled
    configure(at, data="synthetic", models=["plain20"], steps=50_000)
    _button(at, "Start your run").click().run()
    poll(at, lambda at: "training: step" in progress_text(at))
    assert _button(at, "Start your run").disabled and not _button(at, "Stop").disabled
    assert next(b for b in at.button if b.label.startswith("▶ Start the class demo")).disabled
    _button(at, "Stop").click().run()
    poll(at, lambda at: "stopped" in progress_text(at))
    assert not _button(at, "Start your run").disabled and _button(at, "Stop").disabled


def test_the_form_says_where_the_chosen_preset_departs_from_the_paper():
    at = open_lab()
    at.radio(key="lab.preset").set_value("Fig. 6 in full (eight nets, about 12 minutes)").run()
    assert any("departs from the paper" in c.value and "10,000 training images" in c.value for c in at.caption)
    at.radio(key="lab.preset").set_value("Paper recipe §4.2 (64k steps: hours)").run()
    assert any("§4.2's recipe, 64,000 steps" in c.value for c in at.caption)


def test_random_erasing_from_the_form_keeps_the_presets_crop_and_flip():
    """The form's erasing knobs add to the chosen preset's augmentation, never replace it."""
    at = open_lab()
    configure(at, data="synthetic", models=["resnet20"], steps=2)
    at.slider(key="lab.erasing_p").set_value(0.5)
    _button(at, "Start your run").click().run()
    poll(at, lambda at: any("Saved to" in c.value for c in at.caption))
    [saved] = Path(os.environ["EXPLORER_RUNS_DIR"]).glob("*.json")
    augmentation = json.loads(saved.read_text())["config"]["augmentation"]
    assert (augmentation["pad"], augmentation["flip"], augmentation["erasing_p"]) == (4, True, 0.5)


def test_the_lab_form_survives_a_page_switch():
    at = open_lab()
    configure(at, data="synthetic", models=["plain32", "resnet32"], steps=1234)
    at.number_input(key="lab.seed").set_value(7)
    at.run()
    at.switch_page("../pages/architecture.py")
    at.run()
    at.switch_page(LAB)
    at.run()
    assert not at.exception
    assert at.multiselect(key="lab.models").value == ["plain32", "resnet32"]
    assert at.number_input(key="lab.steps").value == 1234 and at.number_input(key="lab.seed").value == 7
    assert at.selectbox(key="lab.dataset").value == "Synthetic (generated, instant)"


def test_the_gap_caption_says_what_the_curves_show():
    from explorer.paper.degradation import gap_caption

    record = new_run("r", ["plain20", "plain56", "resnet56"], window=25)
    assert gap_caption(record) is None
    record.append(step_of(10, [metrics("plain20", 0.9), metrics("plain56", 0.8), metrics("resnet56", 0.9)]))
    assert gap_caption(record) is None  # not before a full window of steps
    record.append(step_of(300, [metrics("plain20", 0.60), metrics("plain56", 0.74), metrics("resnet56", 0.52)],
                          epoch=0.2, elapsed_s=35.4))
    assert gap_caption(record) == ("plain-56 is 14 points worse than plain-20 on training error after 35 s; "
                                   "with shortcuts, ResNet-56 is 22 points better than plain-56.")


def test_depth_orderings_read_both_panels_of_fig6_from_a_run():
    from explorer.paper.fig6 import FIG6_MODELS, depth_orderings

    def step(number, train, val=None):
        return step_of(number, [metrics(n, e, None if val is None else val[n]) for n, e in train.items()])

    record = new_run("fig6", FIG6_MODELS)
    assert depth_orderings(record) == []
    as_paper = dict(zip(FIG6_MODELS, (0.20, 0.25, 0.30, 0.40, 0.19, 0.17, 0.16, 0.15)))
    record.append(step(100, as_paper, val=as_paper))
    swapped = {**as_paper, "resnet44": 0.14}  # ResNet-44 below ResNet-56: the right panel breaks
    record.append(step(200, swapped))
    plain, residual = depth_orderings(record)
    assert (plain.shortcuts, residual.shortcuts) == (False, True)
    assert [n for n, _ in plain.errors] == ["plain20", "plain32", "plain44", "plain56"]
    assert plain.as_in_the_paper and not residual.as_in_the_paper
    assert residual.describe() == ("ResNets: ResNet-20 19.0%, ResNet-32 17.0%, ResNet-44 14.0%, ResNet-56 15.0% "
                                   "(not yet ordered by depth)")
    assert plain.describe().startswith("plain nets: plain-20 20.0% < plain-32 25.0% <")
    assert all(p.as_in_the_paper for p in depth_orderings(record, step=150))  # the earlier step
    assert all(p.as_in_the_paper for p in depth_orderings(record, "val_error"))  # the last validated step
    record.append(step(300, {**swapped, "plain20": float("nan")}))  # a stopped model drops out of its panel
    assert [n for n, _ in depth_orderings(record)[0].errors] == ["plain32", "plain44", "plain56"]


def test_the_fig6_preset_trains_the_eight_nets_of_fig6():
    from explorer.cli.train import PRESET_NAMES
    from explorer.paper.fig6 import FIG6_MODELS
    from explorer.training.recipe import PRESETS, preset

    assert set(PRESET_NAMES) == set(PRESETS)  # the CLI's choices (kept apart so --help skips torch)
    assert preset("fig6").models == FIG6_MODELS


def test_fig6_replay_draws_plain_left_and_resnets_right_with_bold_validation():
    from explorer.paper.fig6 import shows_fig6
    from explorer.present.figures import fig6_figure

    models = ["plain20", "plain56", "resnet20", "resnet56"]
    record = new_run("fig6", models)
    for step in (1, 2):
        record.append(step_of(step, [metrics(n, 0.5, 0.6) for n in models]))
    assert shows_fig6(record)
    assert not shows_fig6(new_run("two", ["plain20", "resnet20"]))
    figure = fig6_figure(record)
    panels = {trace.name: (trace.xaxis, trace.line.width) for trace in figure.data}
    assert panels["plain56 train"] == ("x", 1.5) and panels["plain56 validation"] == ("x", 4)
    assert panels["resnet20 train"] == ("x2", 1.5) and panels["resnet56 validation"] == ("x2", 4)
    # Readable from the back of the room: the axes carry their own font sizes, because
    # Streamlit's plotly theme sets the axes' fonts and would override layout.font.
    from explorer.present.figures import training_curves_figure

    for drawn in (figure, training_curves_figure([record])):
        for axis in (drawn.layout.xaxis, drawn.layout.yaxis, drawn.layout.xaxis2 if drawn is figure else None):
            if axis is not None:
                assert axis.tickfont.size >= 16 and axis.title.font.size >= 18


def _recorded(name, models, errors, steps=range(25, 101, 25), config_steps=100, classes=("a", "b")):
    """A run record of ``models`` whose training error at step s is errors[model] * 100 / s."""
    record = new_run(name, models, layer_names={m: [f"{m}.conv"] for m in models}, steps=config_steps)
    record.classes, record.finished = list(classes), True
    for s in steps:
        record.append(step_of(s, [metrics(m, errors[m] * 100 / s, errors[m] if s == 100 else None, [1.0])
                                  for m in models], epoch=s / 10, elapsed_s=float(s)))
    return record


FIG6_ERRORS = {"plain20": 0.10, "plain56": 0.20, "resnet20": 0.08, "resnet56": 0.06}


def test_separate_runs_on_one_schedule_combine_into_fig6s_two_panels():
    """At the paper's width plain-20/56, ResNet-20 and ResNet-56 are trained in separate runs
    of one schedule: together they are Fig. 6, with each net's own numbers at each step."""
    from explorer.paper.fig6 import depth_orderings, fig6_record
    from explorer.present.figures import fig6_figure

    plain = _recorded("plain", ["plain20", "plain56"], FIG6_ERRORS)
    resnet20 = _recorded("r20", ["resnet20"], FIG6_ERRORS, steps=range(5, 101, 5))  # logged more often
    resnet56 = _recorded("r56", ["resnet56"], FIG6_ERRORS)
    combined, why_not = fig6_record([plain, resnet20, resnet56])
    assert why_not is None and combined.name == "plain + r20 + r56"
    assert combined.model_names == ["plain20", "plain56", "resnet20", "resnet56"]
    assert [s.step for s in combined.steps] == [25, 50, 75, 100]  # the steps every run has
    for model, error in FIG6_ERRORS.items():
        expected = [error * 100 / step for step in (25, 50, 75, 100)]
        assert combined.series(model, "train_error") == ([25, 50, 75, 100], expected)
        assert combined.series(model, "val_error") == ([100], [error])
    assert combined.layer_names["resnet56"] == ["resnet56.conv"] and combined.finished
    plain_panel, residual_panel = depth_orderings(combined)
    assert plain_panel.errors == (("plain20", 0.10), ("plain56", 0.20)) and plain_panel.as_in_the_paper
    assert residual_panel.errors == (("resnet20", 0.08), ("resnet56", 0.06)) and residual_panel.as_in_the_paper
    panels = {trace.name: trace.xaxis for trace in fig6_figure(combined).data}
    assert panels["plain56 train"] == "x" and panels["resnet20 validation"] == "x2"
    # One run of both kinds is drawn as it is; runs of one kind only are not Fig. 6.
    alone = _recorded("four", list(FIG6_ERRORS), FIG6_ERRORS)
    assert fig6_record([alone]) == (alone, None)
    assert fig6_record([plain]) == (None, None)
    assert fig6_record([plain, _recorded("x", ["resnet20"], FIG6_ERRORS)]) == (None, None)


@pytest.mark.parametrize("change, reason", [
    ({"config_steps": 200}, "differ in steps (100 against 200)"),
    ({"classes": ("a", "c")}, "different classes"),
    ({"models": ["plain20", "resnet56"]}, "plain20 is in both plain and r56"),
])
def test_runs_on_different_schedules_are_not_combined_and_the_lab_says_why(change, reason):
    from explorer.paper.fig6 import fig6_record

    models = change.pop("models", ["resnet56"])
    runs = [_recorded("plain", ["plain20", "plain56"], FIG6_ERRORS), _recorded("r20", ["resnet20"], FIG6_ERRORS),
            _recorded("r56", models, FIG6_ERRORS, **change)]
    combined, why_not = fig6_record(runs)
    assert combined is None and reason in why_not


def test_the_lab_draws_separate_runs_as_one_fig6_and_says_why_when_it_cannot():
    from explorer.store.runs import save_run

    runs = Path(os.environ["EXPLORER_PRETRAINED_DIR"]) / "runs"
    save_run(_recorded("plain", ["plain20", "plain56"], FIG6_ERRORS), runs / "plain.json")
    save_run(_recorded("r20", ["resnet20"], FIG6_ERRORS), runs / "r20.json")
    save_run(_recorded("r56", ["resnet56"], FIG6_ERRORS), runs / "r56.json")
    save_run(_recorded("r56-longer", ["resnet56"], FIG6_ERRORS, config_steps=200), runs / "r56-longer.json")
    at = open_lab()
    at.multiselect(key="lab.replay").set_value(["plain", "r20", "r56"]).run()
    assert not at.exception and at.toggle(key="lab.fig6").value
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {trace.get("xaxis", "x") for trace in spec["data"]} == {"x", "x2"}
    words = " ".join(m.value for m in at.markdown)
    assert "plain nets: plain-20 10.0% < plain-56 20.0% (as in Fig. 6)" in words
    assert "ResNets: ResNet-20 8.0% > ResNet-56 6.0% (as in Fig. 6)" in words
    at.multiselect(key="lab.replay").set_value(["plain", "r20", "r56-longer"]).run()
    assert not at.exception and not at.toggle
    assert any("differ in steps (100 against 200)" in c.value for c in at.caption)


def test_the_class_demo_uses_three_classes_of_cifar10_or_five_synthetic_patterns(tmp_path):
    from explorer.paper.degradation import class_demo_config

    demo = class_demo_config("folder:/data/cifar10/train")
    assert demo.classes == ("automobile", "frog", "ship")  # unlike each other: learnt in the minute
    assert demo.models == ("plain20", "plain56", "resnet20", "resnet56") and demo.steps == 300
    synthetic = class_demo_config("synthetic")
    assert synthetic.classes == tuple(f"pattern{i}" for i in range(5))
    from explorer.training.engine import preset

    # The synthetic demo starts gentler (ResNet-56's last ReLU dies at lr 0.2, explorer/degradation.py);
    # the real one keeps the preset's rate and ramp.
    assert (synthetic.lr, synthetic.warmup_steps) == (0.1, 150)
    assert (demo.lr, demo.warmup_steps) == (preset("demo").lr, preset("demo").warmup_steps) == (0.2, 50)
    from explorer.data import load_data

    restricted = load_data("synthetic:200", image_size=8).restricted(synthetic.classes)
    assert restricted.classes == synthetic.classes and set(restricted.train_labels.tolist()) == set(range(5))
    with pytest.raises(ValueError, match="unknown: horse"):
        load_data("synthetic:200", image_size=8).restricted(("pattern0", "horse"))


def test_model_colours_are_fixed_warm_for_plain_and_cool_for_residual():
    from explorer.models import model_names
    from explorer.present.figures import model_colour

    def rgb(colour):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))

    assert all(rgb(model_colour(n))[0] > rgb(model_colour(n))[2] for n in ("plain20", "plain56", "plain110"))
    assert all(rgb(model_colour(n))[2] > rgb(model_colour(n))[0] for n in ("resnet20", "resnet56", "resnet110"))
    for kind in ("plain", "resnet"):  # deeper is darker, depth by depth
        shades = [sum(rgb(model_colour(f"{kind}{depth}"))) for depth in (20, 32, 44, 56, 110)]
        assert shades == sorted(shades, reverse=True) and len(set(shades)) == len(shades)
    cifar = [model_colour(name) for name in model_names("cifar")]
    assert len(set(cifar)) == len(cifar)  # every CIFAR net of the lab's picker has a colour of its own


@pytest.mark.parametrize("folder", ["/etc", "../../etc", "/"])
def test_the_lab_refuses_folders_outside_the_data_roots(folder):
    at = open_lab()
    at.selectbox(key="lab.dataset").set_value("A folder on this machine").run()
    at.text_input(key="lab.folder").set_value(folder).run()
    assert not at.exception
    assert any("allowed data folders" in e.value or "climbs" in e.value for e in at.error)
    assert _button(at, "Start your run").disabled


def _lab_with_link(params: dict) -> AppTest:
    return open_page(LAB, params)


def test_a_link_opens_the_lab_with_its_settings_and_the_settings_go_into_the_link():
    at = _lab_with_link({"preset": "demo", "models": "plain20,resnet56", "data": "synthetic", "seed": "7",
                         "steps": "300"})
    assert at.multiselect(key="lab.models").value == ["plain20", "resnet56"]
    assert at.number_input(key="lab.seed").value == 7 and at.number_input(key="lab.steps").value == 300
    assert at.selectbox(key="lab.dataset").value == "Synthetic (generated, instant)"
    at.number_input(key="lab.seed").set_value(9).run()
    assert at.query_params["seed"] in ("9", ["9"]) and at.query_params["models"] in ("plain20,resnet56", ["plain20,resnet56"])


@pytest.mark.parametrize("params", [{"data": "/etc"}, {"models": "../../x,resnet20"}, {"steps": "9" * 40},
                                    {"preset": "<script>"}, {"seed": "-1"}])
def test_a_hostile_link_falls_back_to_defaults_with_a_notice(params):
    at = _lab_with_link(params)
    assert any("From the link" in w.value for w in at.warning)
    assert at.number_input(key="lab.seed").value in (0,)
    assert "etc" not in " ".join(str(v) for v in at.query_params.values())


def test_a_run_waits_in_the_queue_behind_another_tab_sees_its_place_and_can_leave():
    """Issue 16: one training slot (a 2-core server) held by another tab's run: this tab's run
    waits, says so, and Stop takes it out of the queue. (AppTest's sessions share one session
    id, so the other tab is a ticket in the same server-wide queue; benchmarks/classroom_load.py
    drives real tabs.)"""
    from explorer.ui.job_panel import class_server

    queue = class_server().scheduler
    other_tab = queue.enqueue("another tab's run", session="another tab")
    at = open_lab()
    configure(at, data="synthetic", models=["plain20"], steps=50_000)
    _button(at, "Start your run").click().run()
    poll(at, lambda at: "waiting for a free training slot: next in line" in progress_text(at))
    assert _button(at, "Start your run").disabled and not _button(at, "Stop").disabled
    assert len(queue.waiting_jobs()) == 1
    _button(at, "Stop").click().run()
    poll(at, lambda at: "stopped" in progress_text(at))
    assert queue.waiting_jobs() == [] and queue.running_jobs() == ["another tab's run"]
    _button(at, "Start your run").click().run()  # again, and this time the slot frees
    poll(at, lambda at: "waiting for a free training slot" in progress_text(at))
    other_tab.done()
    poll(at, lambda at: "training: step" in progress_text(at))
    _button(at, "Stop").click().run()
    poll(at, lambda at: "stopped" in progress_text(at))


def test_gradient_caption_and_heatmaps_share_one_scale():
    """The heatmaps' caption reads the latest per-layer gradient norms: output-side over
    input-side; the two heatmaps use one colour range (the same colour, the same norm)."""
    from explorer.paper.degradation import gap_caption, gradient_caption
    from explorer.present import figures

    record = new_run("r", ["plain20", "plain56", "resnet56"], window=1,
                     layer_names={"plain56": ["conv1", "mid", "fc"], "resnet56": ["conv1", "mid", "fc"]})
    assert gradient_caption(record, ["plain56", "resnet56"]) is None
    record.append(step_of(5, [metrics("plain20", 0.60), metrics("plain56", 0.61, grad_norms=[1000.0, 1.0, 0.1]),
                              metrics("resnet56", 0.6, grad_norms=[1.0, 1.0, 1.0])]))
    record.append(step_of(300, [metrics("plain20", 0.60), metrics("plain56", 0.61, grad_norms=[0.001, 0.01, 0.063]),
                                metrics("resnet56", 0.52, grad_norms=[0.2, 0.3, 0.25])], epoch=0.2, elapsed_s=35.4))
    assert gradient_caption(record, ["plain56", "resnet56"]) == (
        "At step 300: plain-56's first layer gets a gradient 63× smaller than its last; "
        "ResNet-56's first layer gets about the same gradient as its last.")
    assert gap_caption(record) == ("plain-56 is 1 point worse than plain-20 on training error after 35 s; "
                                   "with shortcuts, ResNet-56 is 9 points better than plain-56.")
    panels = figures.gradient_heatmap_figures(record, ["plain56", "resnet56"])
    assert {(p.data[0].zmin, p.data[0].zmax) for p in panels} == {(-3.0, 3.0)}


def test_a_long_runs_gradient_heatmap_keeps_at_most_400_steps_and_the_last():
    """A 35,000-step record logs 1,400 steps: its heatmap draws every k-th (at most 400, the
    last one kept), each cell the log10 of the record's norm there, layer 1 at the input; a
    non-finite norm (a skipped mixed-precision step) is drawn but leaves the colour scale alone."""
    from dataclasses import replace

    from explorer.present import figures

    record = new_run("long", ["resnet20"], window=1, layer_names={"resnet20": ["conv1", "layer1.0.conv1", "fc"]})
    for index in range(800):  # 800 = 2 × 400: a stride of 2 would end at step 799 and add the last, 401
        record.append(step_of(25 * index, [metrics("resnet20", 0.5, grad_norms=[10.0 ** -(index % 7), 1.0,
                                                                              10.0 ** (index % 3)])]))
    heatmap = figures.gradient_heatmap_figure(record, "resnet20").data[0]
    steps = list(heatmap.x)
    assert len(steps) <= 400 and steps[0] == 0 and steps[-1] == 25 * 799
    assert heatmap.z.shape == (3, len(steps))
    for column, step in enumerate(steps):
        index = step // 25
        assert heatmap.z[0][column] == pytest.approx(-(index % 7), abs=1e-6)
        assert heatmap.z[1][column] == 0.0 and heatmap.z[2][column] == pytest.approx(index % 3, abs=1e-6)
    assert heatmap.customdata[1][0] == "layer1.0.conv1" and len(heatmap.customdata[0]) == len(steps)
    first = record.steps[0]
    record.steps[0] = replace(first, models=(replace(first.models[0], grad_norms=(float("inf"), float("nan"), 1.0)),))
    assert figures.gradient_heatmap_figures(record, ["resnet20"])[0].data[0].zmax == pytest.approx(
        max(step // 25 % 3 for step in steps))


def test_a_replayed_run_is_parsed_once_per_version_and_each_caller_gets_its_own_copy(tmp_path):
    from explorer.store.runs import RunError, load_run, save_run
    from explorer.ui.lab import loaded_run

    path = tmp_path / "r.json"
    record = load_run(SHIPPED / "runs" / "fig6-width4-cifar10-2000-steps.json")
    save_run(record, path)

    first = loaded_run(path)
    first.steps.clear()  # one session changing its copy
    assert loaded_run(path).steps == record.steps
    record.steps = record.steps[:5]
    save_run(record, path)  # the file changes: its new version is read
    assert len(loaded_run(path).steps) == 5
    path.unlink()  # deleted since the picker listed it
    with pytest.raises(RunError, match="Could not read the run .*r.json: No such file"):
        loaded_run(path)


def test_a_broken_run_file_picked_for_replay_is_named_in_a_message():
    runs = Path(os.environ["EXPLORER_PRETRAINED_DIR"]) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "broken.json").write_text('{"format": ')
    at = open_lab()
    at.multiselect(key="lab.replay").set_value(["broken"]).run()
    assert not at.exception
    assert any("Could not read the run" in error.value and "broken.json" in error.value for error in at.error)
    assert not at.get("plotly_chart")


def test_two_runs_of_one_model_overlaid_are_told_apart_by_line_and_marker():
    """Comparing recipes (the paper's 64k steps against a 35k one) overlays the same model twice,
    in the same colour: the runs differ in the training line's dash and the validation markers."""
    from explorer.present.figures import training_curves_figure

    ours, papers = (_recorded(name, ["resnet20"], {"resnet20": 0.1}) for name in ("ours", "paper"))
    traces = {trace.name: trace for trace in training_curves_figure([ours, papers]).data}
    assert traces["ours: resnet20 train"].line.color == traces["paper: resnet20 train"].line.color
    assert traces["ours: resnet20 train"].line.dash != traces["paper: resnet20 train"].line.dash
    assert traces["ours: resnet20 validation"].marker.symbol != traces["paper: resnet20 validation"].marker.symbol
