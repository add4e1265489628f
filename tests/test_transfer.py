"""Transfer learning: fine-tuning, saving and reloading, zip uploads, random erasing, CLI, page."""

import io
import json
import shutil
import stat
import time
import zipfile
from pathlib import Path

import pytest
import torch
from apptest_helpers import best_shipped_checkpoint, open_page
from PIL import Image

from explorer.cli import main
from explorer.data import CIFAR10_MEAN, Augmentation, load_data, normalize, upsample
from explorer.data.archives import ArchiveError, unpack_class_zip
from explorer.data.images import sample_images
from explorer.store.checkpoints import CheckpointError, finetuned_dir, load_checkpoint, read_manifest
from explorer.store.classifiers import classifier_names, load_classifier
from explorer.transfer.finetune import (
    FinetuneConfig,
    backbone_names,
    default_backbone_name,
    erasing_preview,
    finetune,
    save_finetuned,
)

SHIPPED = Path(__file__).resolve().parent.parent / "pretrained"
PAGE = "../pages/transfer.py"


@pytest.fixture
def pretrained(tmp_path, monkeypatch):
    """A copy of the shipped checkpoints, so fine-tuned models are saved under tmp_path."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    for path in [SHIPPED / "manifest.json", *SHIPPED.glob("*.safetensors")]:
        shutil.copy(path, folder / path.name)
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def synthetic():
    return load_data("synthetic:2000", image_size=32)


def _config(**overrides) -> FinetuneConfig:
    return FinetuneConfig(**{"backbone": "resnet20-cifar10", "data": "synthetic:2000", "epochs": 8, **overrides})


# --- fine-tuning ------------------------------------------------------------------------------

def test_offline_the_default_backbone_is_the_best_shipped_model(pretrained):
    # Best validation error first, as the shipped manifest measured them.
    shipped = read_manifest()
    by_error = sorted(shipped, key=lambda key: shipped[key].val_error)
    assert set(by_error) == {"resnet20-cifar10", "plain20-cifar10", "resnet56-cifar10", "plain56-cifar10"}
    assert backbone_names() == by_error
    assert default_backbone_name() == by_error[0]
    assert by_error[-1] == "plain56-cifar10"  # the degradation problem, in the shipped numbers


def test_head_only_on_cached_features_beats_chance_in_seconds_and_reloads_identically(pretrained, synthetic):
    started = time.perf_counter()
    result = finetune(_config(), synthetic)
    print(f"head-only fine-tuning: {time.perf_counter() - started:.1f} s, {100 * result.val_accuracy:.1f}%")
    assert result.val_accuracy > 0.3  # ten classes: chance is 0.1
    assert [row["epoch"] for row in result.history] == list(range(1, 9))

    entry = save_finetuned(result, _config(), "my-model")
    assert (finetuned_dir() / "my-model.safetensors").is_file()
    assert entry.kind == "finetuned" and entry.model == "resnet20" and entry.classes == list(synthetic.classes)
    assert entry.build == {"backbone_build": {"width": 16, "shortcut": "A", "num_classes": 10}, "head": "linear",
                           "num_classes": 10}
    assert entry.val_error == pytest.approx(1 - result.val_accuracy)
    assert entry.config["preprocessing"] == {"data_size": 32, "input_size": 32, "mean": list(CIFAR10_MEAN),
                                             "std": pytest.approx([0.2470, 0.2435, 0.2616])}
    assert "my-model" in classifier_names()

    reloaded = load_classifier("my-model")
    batch = normalize(synthetic.val_images[:64])
    with torch.no_grad():
        assert torch.equal(reloaded.model(batch), result.model(batch))
    # A photo goes through exactly the training preprocessing: a 32×32 image is fed unchanged.
    image = Image.fromarray(synthetic.val_images[0].permute(1, 2, 0).numpy())
    assert torch.equal(reloaded.model_input(image), synthetic.val_images[0])
    assert reloaded.predict([image], topk=1)[0][0].label == synthetic.classes[result.model(batch[:1]).argmax().item()]


def test_cached_features_train_exactly_like_running_the_backbone(pretrained, synthetic):
    cached = finetune(_config(epochs=2), synthetic)
    uncached = finetune(_config(epochs=2, cache_features=False), synthetic)
    for a, b in zip(cached.history, uncached.history, strict=True):
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=0.006)
        assert a["train_accuracy"] == pytest.approx(b["train_accuracy"], abs=0.006)


def test_last_stage_training_changes_only_the_last_stage_and_the_head(pretrained, synthetic):
    backbone, _ = load_checkpoint("resnet20-cifar10")
    before = backbone.state_dict()
    after = finetune(_config(epochs=1, train="last stage", head="seed", train_limit=256), synthetic).model.state_dict()
    for name, value in before.items():
        if name.startswith("fc."):
            continue
        changed = not torch.equal(value, after[name])
        assert changed == name.startswith("layer3."), name  # weights and BN statistics of the last stage only
    assert after["fc.1.weight"].shape == (256, 64)  # BN(64) -> Linear(64, 256) -> … (the seed head)


def test_a_last_batch_of_one_image_does_not_break_the_batchnorm_head(pretrained, synthetic):
    result = finetune(_config(epochs=1, head="seed", train_limit=129, batch_size=128), synthetic)
    assert result.epochs_done == 1 and result.steps == 1


def test_upsampled_preprocessing_is_the_same_for_training_and_a_photo(pretrained, synthetic):
    result = finetune(_config(epochs=1, upsample=2, train_limit=256), synthetic)
    save_finetuned(result, _config(upsample=2), "big")
    classifier = load_classifier("big")
    assert classifier.input_size == 64
    image = Image.fromarray(synthetic.val_images[3].permute(1, 2, 0).numpy())
    assert torch.equal(classifier.model_input(image), upsample(synthetic.val_images[3:4], 64)[0])


def test_altered_or_mismatching_finetuned_files_are_refused(pretrained, synthetic):
    result = finetune(_config(epochs=1, train_limit=256), synthetic)
    save_finetuned(result, _config(), "victim")
    manifest_path = finetuned_dir() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["checkpoints"]["victim"]["build"]["head"] = "seed"  # weights of a linear head
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not fit the resnet20 architecture"):
        load_classifier("victim")
    manifest["checkpoints"]["victim"]["build"]["head"] = "linear"
    manifest_path.write_text(json.dumps(manifest))
    weights = finetuned_dir() / "victim.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        load_classifier("victim")


def test_bad_settings_and_saves_are_refused_with_a_reason(pretrained, synthetic):
    from explorer.transfer.finetune import Finetuning

    for overrides, message in [({"epochs": 0}, "epochs"), ({"upsample": 9}, "upsample"),
                               ({"train": "some"}, "train must be"), ({"head": "mlp"}, "head must be"),
                               ({"lr": -1.0}, "learning rate")]:
        with pytest.raises(ValueError, match=message):
            Finetuning(_config(**overrides), synthetic)
    result = finetune(_config(epochs=1, train_limit=128), synthetic)
    with pytest.raises(ValueError, match="shipped checkpoint"):
        save_finetuned(result, _config(), "resnet20-cifar10")
    with pytest.raises(ValueError, match="Give the model a name"):
        save_finetuned(result, _config(), "../..")
    result.epochs_done = 0
    with pytest.raises(ValueError, match="before its first epoch"):
        save_finetuned(result, _config(), "early")


def test_caching_is_explained_and_off_when_it_cannot_apply():
    from explorer.transfer.finetune import cache_explanation

    assert _config().uses_cached_features and "computed once" in cache_explanation(_config())
    assert not _config(train="all").uses_cached_features
    assert "cannot be cached" in cache_explanation(_config(train="all"))
    erasing = _config(augmentation=Augmentation(pad=0, flip=False, erasing_p=0.5))
    assert not erasing.uses_cached_features and "Augmentation" in cache_explanation(erasing)


def test_what_learns_is_a_train_part_read_from_its_saved_spelling(pretrained, synthetic):
    from explorer.cli import build_parser
    from explorer.transfer.finetune import TRAIN_CHOICES, TrainPart
    from explorer.ui.transfer import TRAIN_LABELS

    assert TRAIN_CHOICES == ("head", "last stage", "all") == tuple(TrainPart)
    for spelling in TRAIN_CHOICES:  # a config saved in a checkpoint holds the plain string
        assert _config(train=spelling).train is TrainPart(spelling)
    assert _config().train is TrainPart.HEAD and _config(train="some").train == "some"  # refused by the check
    [finetune_parser] = [parser for name, parser in _subcommands(build_parser()) if name == "finetune"]
    [train_flag] = [action for action in finetune_parser._actions if "--train" in action.option_strings]
    assert tuple(train_flag.choices) == TRAIN_CHOICES and train_flag.default == TrainPart.HEAD
    assert set(TRAIN_LABELS) == set(TrainPart) and all(isinstance(label, str) for label in TRAIN_LABELS.values())
    result = finetune(_config(epochs=1, train="last stage", train_limit=128), synthetic)
    entry = save_finetuned(result, _config(train=TrainPart.LAST_STAGE), "last-stage")
    saved = json.loads((finetuned_dir() / "manifest.json").read_text())["checkpoints"]["last-stage"]["config"]
    assert saved["train"] == "last stage" and entry.config["train"] == "last stage"
    assert FinetuneConfig(**{k: v for k, v in saved.items() if k in ("backbone", "data", "train")}).train \
        is TrainPart.LAST_STAGE


def _subcommands(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


# --- random erasing -----------------------------------------------------------------------------

def test_erasing_preview_draws_one_box_per_image_of_the_requested_size():
    images = torch.full((20, 3, 32, 32), 200, dtype=torch.uint8)
    assert torch.equal(erasing_preview(images, Augmentation(erasing_p=0.0)), images)
    erased = erasing_preview(images, Augmentation(erasing_p=1.0, erasing_scale=(0.1, 0.2), erasing_value=0.0))
    mean_colour = torch.tensor([round(255 * m) for m in CIFAR10_MEAN], dtype=torch.uint8).view(3, 1)
    for original, after in zip(images, erased):
        changed = (after != original).any(0)
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert changed.sum() == height * width  # one filled rectangle
        assert 0.1 * 1024 - 40 <= changed.sum() <= 0.2 * 1024 + 40  # area within the scale range
        assert torch.all((after[:, changed] - mean_colour.to(torch.int16)).abs() <= 1)  # 0 = the mean colour
    noisy = erasing_preview(images, Augmentation(erasing_p=1.0, erasing_value="random"))
    assert len(noisy[:, :, :, :].unique()) > 50  # random pixels, not one colour


# --- zip uploads --------------------------------------------------------------------------------

def _jpeg(colour=(200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def _zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_zip_of_class_folders_is_unpacked_with_non_images_listed(tmp_path):
    data = _zip({"flowers/rose/1.jpg": _jpeg(), "flowers/rose/2.jpg": _jpeg(), "flowers/tulip/1.jpg": _jpeg(),
                 "flowers/notes.txt": b"hello", "__MACOSX/flowers/._1.jpg": b"junk", "flowers/.DS_Store": b""})
    unpacked = unpack_class_zip(data, tmp_path / "uploads")
    assert unpacked.classes == ("rose", "tulip") and unpacked.images == 3
    assert unpacked.ignored == ("flowers/notes.txt",)
    assert _files(unpacked.root) == ["rose/1.jpg", "rose/2.jpg", "tulip/1.jpg"]
    assert unpacked.root.parent == (tmp_path / "uploads").resolve()
    loaded = load_data(f"folder:{unpacked.root}", val_size=1)
    assert loaded.classes == ("rose", "tulip")


@pytest.mark.parametrize("entries, links, message", [
    ({"cats/1.jpg": _jpeg(), "../x.jpg": _jpeg()}, (), "points outside the archive"),
    ({"cats/1.jpg": _jpeg(), "/tmp/x.jpg": _jpeg()}, (), "points outside the archive"),
    ({"cats/1.jpg": _jpeg(), "dogs\\..\\..\\x.jpg": _jpeg()}, (), "points outside the archive"),
    ({"cats/1.jpg": _jpeg(), "dogs/2.jpg": _jpeg()}, ("dogs/3.jpg",), "is a link"),
    ({"a/b/cats/1.jpg": _jpeg(), "a/b/dogs/1.jpg": _jpeg()}, (), "nested 3 folders deep"),
    ({"cats/1.jpg": _jpeg(), "dog.jpg": _jpeg()}, (), "not inside a class folder"),
    ({"cats/1.jpg": _jpeg(), "cats/2.jpg": _jpeg()}, (), "single class"),
    ({"readme.txt": b"no images"}, (), "holds no images"),
])
def test_unusable_zips_are_refused_and_nothing_is_written(tmp_path, entries, links, message):
    uploads = tmp_path / "app" / "uploads"
    with pytest.raises(ArchiveError, match=message):
        unpack_class_zip(_zip(entries, links), uploads)
    assert not uploads.exists() or _files(uploads) == []
    assert _files(tmp_path) == []  # in particular no x.jpg next to the app's folder


def test_not_a_zip_and_a_zip_bomb_are_refused(tmp_path):
    with pytest.raises(ArchiveError, match="not a zip file"):
        unpack_class_zip(b"PK but not really", tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cats/1.jpg", _jpeg())
        archive.writestr("dogs/big.jpg", b"\0" * (20 * 1024 * 1024))  # 20 MB of zeros: ~20 kB compressed
    with pytest.raises(ArchiveError, match="zip bomb"):
        unpack_class_zip(buffer.getvalue(), tmp_path / "uploads")
    assert _files(tmp_path) == []


# --- CLI ----------------------------------------------------------------------------------------

def test_finetune_cli_trains_saves_and_the_model_classifies(pretrained, tmp_path, capsys):
    assert main(["finetune", "--data", "synthetic:600", "--epochs", "3", "--name", "cli-model"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cli-model: validation accuracy") and "pretrained/finetuned" not in out.split("saved")[0]
    assert (finetuned_dir() / "cli-model.safetensors").is_file()
    assert read_manifest(finetuned_dir())["cli-model"].config["epochs"] == 3
    assert main(["classify", str(sample_images()["cat"]), "--model", "cli-model", "--json"]) == 0
    labels = {p["label"] for p in json.loads(capsys.readouterr().out)["results"][0]["predictions"]}
    assert labels <= {f"pattern{i}" for i in range(10)}


@pytest.mark.parametrize("arguments, message", [
    (["--backbone", "resnet50"], "No ImageNet weights for resnet50"),
    (["--backbone", "nope"], "Unknown model 'nope'"),
    (["--upsample", "0"], "upsample must be"),
    (["--data", "folder:/no/such/folder"], "does not exist"),
])
def test_finetune_cli_explains_what_cannot_run(pretrained, capsys, arguments, message):
    assert main(["finetune", *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not finetuned_dir().exists()


# --- the page -----------------------------------------------------------------------------------

def _button(at, label):
    return next(button for button in at.button if button.label == label)


def test_page_fine_tunes_saves_reloads_and_classifies(pretrained):
    at = open_page(PAGE)
    assert at.selectbox[0].value == best_shipped_checkpoint(SHIPPED)  # no ImageNet weights here
    at.selectbox[0].set_value("resnet20-cifar10").run()  # the smallest backbone: a quick test
    assert any("computed once" in caption.value for caption in at.caption)
    # Not the default (CIFAR-10 where a folder is, else the shipped demo pack): 2,000 generated images, instant.
    next(radio for radio in at.radio if radio.label == "Data set").set_value("Synthetic (generated, instant)").run()
    _button(at, "Start fine-tuning").click().run()
    deadline = time.monotonic() + 120
    while not any(button.label == "Save" for button in at.button) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    curves = spec["data"]
    assert [trace["name"] for trace in curves] == ["train", "validation"] and len(curves[1]["y"]) == 5
    chance = spec["layout"]["shapes"][0]  # the synthetic set's 10 patterns: guessing scores 10%
    assert chance["y0"] == chance["y1"] == pytest.approx(10.0)
    assert "chance with 10 classes: 10%" in next(m.value for m in at.markdown if "Validation accuracy" in m.value)
    _button(at, "Save").click().run()
    saved = read_manifest(finetuned_dir())
    assert list(saved) == ["resnet20-cifar10-linear-synthetic"]
    assert "Saved as **resnet20-cifar10-linear-synthetic**" in at.success[0].value
    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), (0, 90, 200)).save(buffer, "PNG")
    at.file_uploader(key="finetune_photo").upload("blue.png", buffer.getvalue(), "image/png").run()
    assert not at.exception and not at.error
    top5 = json.loads(at.get("plotly_chart")[-1].proto.spec)["data"][0]
    assert len(top5["y"]) == 5 and set(top5["y"]) <= {f"pattern{i}" for i in range(10)}


def test_page_refuses_a_path_traversal_zip(pretrained, tmp_path):
    at = open_page(PAGE)
    next(radio for radio in at.radio if radio.label == "Data set").set_value("Zip of class folders").run()
    at.file_uploader(key="finetune_zip").upload(
        "evil.zip", _zip({"cats/1.jpg": _jpeg(), "../../x.jpg": _jpeg()}), "application/zip").run()
    assert not at.exception
    assert "points outside the archive" in at.error[0].value
    assert _button(at, "Start fine-tuning").disabled


def test_page_random_erasing_preview_shows_before_and_after():
    at = open_page(PAGE)
    images = at.get("image")
    assert len(images) == 2 and all(len(group.proto.imgs) == len(sample_images()) for group in images)


def test_an_imagenet_backbone_is_preferred_and_keeps_its_own_normalisation(pretrained, tmp_path, monkeypatch,
                                                                           synthetic):
    from explorer.models import build_model

    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(build_model("resnet18").state_dict(), hub / "resnet18-f37072fd.pth")  # random weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert default_backbone_name() == "resnet18"
    config = FinetuneConfig(backbone="resnet18", epochs=1, upsample=2, train_limit=64, batch_size=32)
    result = finetune(config, synthetic)
    assert result.preprocessing == {"data_size": 32, "input_size": 64, "mean": [0.485, 0.456, 0.406],
                                    "std": [0.229, 0.224, 0.225]}
    save_finetuned(result, config, "imagenet-head")
    reloaded = load_classifier("imagenet-head")
    assert reloaded.model_name == "resnet18" and reloaded.input_size == 64
    assert reloaded.model.fc.in_features == 512  # ResNet-18's pooled features (Table 1)
