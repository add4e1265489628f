"""Crafted resume states: every field is checked (keys, types, ranges) before any data loads
or any step trains, and the output path never comes from the state (issue 37).

One tiny state (ResNet-20 two filters wide, 8×8 synthetic images, one step) is made once;
each test writes a copy with one field changed and resumes it through the CLI in-process.
"""

import json

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import explorer.training.engine
from explorer.cli import main
from explorer.data import load_data
from explorer.store.runs import load_run, new_record
from explorer.store.state import StateError, load_state, save_state, state_path
from explorer.training.engine import Training, layer_names, preset


@pytest.fixture(scope="module")
def base_state(tmp_path_factory):
    """(tensors, metadata) of a 2-step run stopped after its first step."""
    config = preset("demo", models=("resnet20",), data="synthetic:100", width=2, image_size=8, batch_size=8,
                    steps=2, val_every=1, warmup_steps=0, model_threads=1, amp="off")
    training = Training(config, load_data(config.data, image_size=config.image_size))
    record = new_record("crafted", config, "cpu", layer_names(config))
    for step in training.steps():
        record.append(step)
        break
    folder = tmp_path_factory.mktemp("base")
    save_state(folder, training, record, "run.json")
    with safe_open(str(state_path(folder)), framework="pt") as handle:
        metadata = handle.metadata()
    return load_file(str(state_path(folder))), metadata


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a resumed run gets as far as loading its data."""
    def refuse(config, *args, **kwargs):
        raise AssertionError("the data was loaded: the state was not refused up front")
    monkeypatch.setattr(explorer.training.engine, "load_training_data", refuse)


def _write(folder, base_state, change) -> None:
    """The base state with ``change(parsed)`` applied to its parsed metadata (a dict of the
    JSON values, keys as in the file), written to ``folder``."""
    tensors, metadata = base_state
    parsed = {key: json.loads(value) if key != "format" else value for key, value in metadata.items()}
    change(parsed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {key: value if key == "format" else json.dumps(value) for key, value in parsed.items()}
    save_file(tensors, str(state_path(folder)), metadata=written)


def _set(path: str, value):
    """A change that sets the field at the dotted ``path`` ("config.val_every", "state.trainees.0.recent")."""
    def change(parsed):
        *parents, last = path.split(".")
        target = parsed
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is _DELETE:
            del target[int(last) if isinstance(target, list) else last]
        else:
            target[int(last) if isinstance(target, list) else last] = value
    return change


_DELETE = object()

CRAFTED = [  # (the change, what the one-line error must say)
    ("state", _DELETE, "the state has no 'state'"),
    ("config.val_every", _DELETE, "missing fields: val_every"),
    ("config.val_every", 0, "config field 'val_every': The steps between validation passes must be a whole number "
                            "from 1 to 64,000, got 0"),
    ("config.val_every", -1, "config field 'val_every'"),
    ("config.val_every", "5", "config field 'val_every' must be a whole number, got '5'"),
    ("config.lr", float("inf"), "config field 'lr' must be a finite number"),
    ("config.steps", True, "config field 'steps' must be a whole number, got True"),
    ("config.width", 1_000_000, "config field 'width'"),
    ("config.image_size", 100_000, "config field 'image_size'"),
    ("config.engine.model_threads", 100_000, "config field 'engine.model_threads'"),
    ("config.engine.amp", "fp8", "config field 'engine.amp': Unknown AMP mode 'fp8'"),
    ("config.engine.compile", "yes", "config field 'engine.compile' must be true or false, got 'yes'"),
    ("config.engine", {"amp": "off"}, "config field 'engine' must have the keys"),
    ("config.milestones", ["a"], "config field 'milestones' must be a whole number"),
    ("config.augmentation.pad", 10**9, "config field 'augmentation'"),
    ("config.augmentation", "none", "config field 'augmentation' must be an object"),
    ("config.models", ["resnet20", "resnet20"], "Each model can be picked only once"),
    ("config.data", "synthetic:1000000000000", "must be a whole number from 10 to 60,000"),
    ("state.step", "x", "state.step must be a whole number, got 'x'"),
    ("state.step", 99, "state.step must be from 0 to 2, got 99"),
    ("state.trainees.0.recent", _DELETE, "state.trainees[0] has no 'recent'"),
    ("state.trainees.0.name", "plain20", "state.trainees holds the models [('plain20', 0)]"),
    ("state.streams", {}, "state.streams must be a list"),
    ("record.steps", "x", "record.steps must be a list, got 'x'"),
    ("record.steps.0.models", _DELETE, "record.steps[0] has no 'models'"),
    ("record.environment.machines", "abc", "record.environment.machines must be a list"),
    ("record.surprise", 1, "record has unknown keys: surprise"),
    ("out", 7, "out must be text or null"),
]


@pytest.mark.parametrize("field, value, message", CRAFTED, ids=[f"{c[0]}={c[1]!r}"[:40] for c in CRAFTED])
def test_a_crafted_state_is_refused_up_front_naming_its_field(tmp_path, capsys, base_state, no_training,
                                                              field, value, message):
    folder = tmp_path / "state"
    _write(folder, base_state, _set(field, value))
    before = state_path(folder).read_bytes()
    assert main(["train", "--resume", str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot be resumed" in lines[0], lines
    assert message in lines[0]
    assert state_path(folder).read_bytes() == before  # left as it was
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["state", "state.safetensors"]  # nothing written


def test_load_state_raises_a_state_error_not_a_key_or_type_error(tmp_path, base_state):
    for field, value, _ in CRAFTED:
        folder = tmp_path / field.replace(".", "_")
        _write(folder, base_state, _set(field, value))
        with pytest.raises(StateError):
            load_state(folder)


def test_the_output_path_never_comes_from_the_state(tmp_path, capsys, base_state, monkeypatch):
    victim = tmp_path / "passwd"  # a file the user can write, named by a crafted state
    victim.write_text("root:x:0:0\n")
    folder = tmp_path / "state"
    _write(folder, base_state, _set("out", str(victim)))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", str(folder)]) == 0
    assert victim.read_text() == "root:x:0:0\n"
    assert "began with --out" in capsys.readouterr().err  # shown as a hint only
    record = load_run(folder / "run.json")  # the documented place: beside the state
    assert record.finished and record.steps[-1].step == 2
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_state_from_a_real_run_still_resumes(tmp_path, base_state):
    folder = tmp_path / "state"
    _write(folder, base_state, lambda parsed: None)
    saved = load_state(folder)
    assert saved.step == 1 and saved.config.val_every == 1 and saved.out == "run.json"


def test_a_state_written_before_the_engine_switches_had_their_own_dataclass_still_resumes(tmp_path, capsys,
                                                                                           base_state):
    """States from before issue 39 hold the speed switches among the recipe's fields."""
    def flatten(parsed):
        config = parsed["config"]
        config.update(config.pop("engine"))
    folder = tmp_path / "state"
    _write(folder, base_state, flatten)
    saved = load_state(folder)
    assert saved.config.engine.model_threads == 1 and saved.config.engine.amp == "off"
    assert main(["train", "--resume", str(folder)]) == 0
    assert load_run(folder / "run.json").finished
