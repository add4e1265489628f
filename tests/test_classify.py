"""Classifiers from the manifest and from ImageNet weights; the classify CLI; the shipped models."""

import io
import json
import os
import time
from pathlib import Path

import pytest
import torch
from apptest_helpers import best_shipped_checkpoint
from PIL import Image

from explorer.cli import main as cli_main
from explorer.data import CIFAR10_MEAN, normalize
from explorer.models import build_model
from explorer.models.heads import replace_head
from explorer.store import checkpoints
from explorer.store.checkpoints import (
    CheckpointError,
    finetuned_dir,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
)
from explorer.store.classifiers import (
    ClassifierError,
    checkpoint_model_input,
    classifier_choices,
    classifier_names,
    default_classifier_name,
    load_classifier,
    resolve_classifier,
)

SHIPPED = Path(__file__).resolve().parent.parent / "pretrained"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
REAL_CIFAR10 = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10" / "train"


def _save(name: str, val_error: float, width: int = 4, tag: str = "toy") -> None:
    torch.manual_seed(0)
    model = build_model(name, width=width, num_classes=10)
    config = {"data": f"folder:/data/{tag}/train", "image_size": 16, "width": width}
    save_checkpoint(model, key=f"{name}-{tag}", model_name=name,
                    build={"width": width, "shortcut": "A", "num_classes": 10}, classes=CIFAR10_CLASSES,
                    val_error=val_error, config=config, steps=100, wall_time_s=60.0, device="cpu")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_checkpoints_are_listed_best_first_and_the_best_is_the_default():
    assert default_classifier_name() is None and classifier_names() == []
    _save("plain20", 0.30)
    _save("resnet20", 0.20)
    assert classifier_names() == ["resnet20-toy", "plain20-toy"]
    assert default_classifier_name() == "resnet20-toy"


def test_a_checkpoint_classifier_is_frozen_and_predicts_its_softmax():
    _save("resnet20", 0.2)
    classifier = load_classifier("resnet20")  # one checkpoint of that architecture: found by name
    assert classifier.name == "resnet20-toy" and classifier.input_size == 16
    assert not classifier.model.training
    assert not any(p.requires_grad for p in classifier.model.parameters())
    assert "resnet20 trained by this project on toy (10 classes, 100 steps, 1 min on cpu): 20.00%" \
        in classifier.about
    image = Image.new("RGB", (40, 30), (200, 30, 60))
    predictions = classifier.predict([image, image.transpose(Image.Transpose.ROTATE_90)], topk=3)
    assert [len(p) for p in predictions] == [3, 3]
    pixels = torch.full((1, 3, 16, 16), 0, dtype=torch.uint8)
    pixels[:, 0], pixels[:, 1], pixels[:, 2] = 200, 30, 60
    expected = torch.softmax(classifier.model(normalize(pixels)), 1)[0]
    top = expected.topk(3)
    assert [p.label for p in predictions[0]] == [CIFAR10_CLASSES[i] for i in top.indices.tolist()]
    assert [p.probability for p in predictions[0]] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_cifar_input_is_the_centred_square_shrunk():
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (32, 0, 64, 32))  # right half blue; the centre square is half and half
    pixels = checkpoint_model_input(16)(image)
    assert pixels.shape == (3, 16, 16) and pixels.dtype == torch.uint8
    assert pixels[:, :, :7].float().mean((1, 2)).tolist() == [255, 0, 0]
    assert pixels[:, :, 9:].float().mean((1, 2)).tolist() == [0, 0, 255]


def test_imagenet_classifier_uses_torchvision_preprocessing_and_labels():
    folder = Path(os.environ["EXPLORER_PRETRAINED_DIR"])
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(build_model("resnet18").state_dict(), folder / "resnet18-f37072fd.pth")
    assert classifier_names() == ["resnet18"] and default_classifier_name() == "resnet18"
    classifier = load_classifier("resnet18")
    assert classifier.input_size == 224 and len(classifier.classes) == 1000
    assert classifier.classes[0] == "tench" and "ImageNet weights" in classifier.about
    assert classifier.model_input(Image.new("RGB", (500, 300))).shape == (3, 224, 224)
    assert classifier.model_input(Image.new("RGB", (1, 1))).shape == (3, 224, 224)
    assert len(classifier.predict([Image.new("RGB", (300, 300), "white")], topk=5)[0]) == 5


def _aged(path: Path) -> None:
    """A minute-old mtime: old enough for the manifest cache to trust it."""
    stamp = time.time_ns() - 60 * 10**9
    os.utime(path, ns=(stamp, stamp))


def test_a_name_resolves_in_one_pass_over_a_manifest_read_once(monkeypatch):
    _save("plain20", 0.30)
    _save("resnet20", 0.20)
    _aged(Path(os.environ["EXPLORER_PRETRAINED_DIR"]) / "manifest.json")
    reads = []
    parse = checkpoints._read_manifest_file
    monkeypatch.setattr(checkpoints, "_read_manifest_file", lambda path: reads.append(path) or parse(path))
    source = resolve_classifier("resnet20")  # the one resnet20 checkpoint, by its architecture's name
    assert (source.name, source.kind, source.model_name, source.input_size) == ("resnet20-toy", "checkpoint", "resnet20", 16)
    assert source.mean == CIFAR10_MEAN and source.classes == tuple(CIFAR10_CLASSES) and source.trained
    assert source.fingerprint == read_manifest()["resnet20-toy"].sha256 == source.entry.sha256
    assert classifier_names() == ["resnet20-toy", "plain20-toy"]
    choices = classifier_choices()
    assert list(choices.items())[:2] == [("resnet20-toy", "resnet20-toy (trained here on toy, 20.0% validation error)"),
                                         ("plain20-toy", "plain20-toy (trained here on toy, 30.0% validation error)")]
    assert choices["resnet50"] == "resnet50 (untrained: no ImageNet weights here)"
    classifier = source.load()
    assert classifier.source is source and classifier.about == source.about
    assert not classifier.model.training and not any(p.requires_grad for p in classifier.model.parameters())
    assert load_classifier("plain20-toy").name == "plain20-toy"
    assert len(reads) == 1  # the finetuned folder has no manifest: nothing to read there


def test_a_finetuned_entry_resolves_to_its_own_preprocessing():
    torch.manual_seed(0)
    model = replace_head(build_model("resnet20", width=4, num_classes=10), "linear", 3)
    preprocessing = {"data_size": 8, "input_size": 24, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    save_checkpoint(model, key="flowers", model_name="resnet20", kind="finetuned", folder=finetuned_dir(),
                    build={"backbone_build": {"width": 4, "num_classes": 10}, "head": "linear", "num_classes": 3},
                    classes=["daisy", "rose", "tulip"], val_error=0.25, steps=30, wall_time_s=12.0, device="cpu",
                    config={"backbone": "resnet20-toy", "data": "folder:/photos/flowers", "train": "head",
                            "epochs": 2, "preprocessing": preprocessing})
    source = resolve_classifier("flowers")
    assert (source.kind, source.input_size, source.mean, source.std) == ("finetuned", 24, (0.5,) * 3, (0.25,) * 3)
    assert source.about == ("resnet20 backbone (resnet20-toy) with a linear head, fine-tuned (head) on flowers "
                            "(3 classes, 2 epochs, 12 s on cpu): 75.0% validation accuracy")
    assert classifier_choices()["flowers"] == "flowers (fine-tuned here on flowers, 75.0% validation accuracy)"
    classifier = source.load()
    image = Image.new("RGB", (40, 20), (250, 128, 0))
    assert classifier.model_input(image).shape == (3, 24, 24)
    batch = classifier.prepare([image])
    assert batch[0, :, 0, 0].tolist() == pytest.approx([(250 / 255 - 0.5) / 0.25, (128 / 255 - 0.5) / 0.25, -2.0], abs=1e-6)
    assert [p.label for p in classifier.predict([image], topk=3)[0]] == \
        [classifier.classes[i] for i in model.eval()(batch).argsort(descending=True)[0].tolist()]


def test_imagenet_names_resolve_to_weights_or_to_random_weights():
    folder = Path(os.environ["EXPLORER_PRETRAINED_DIR"])
    folder.mkdir(parents=True)
    torch.save(build_model("resnet18").state_dict(), folder / "resnet18-f37072fd.pth")
    present = resolve_classifier("resnet18")
    assert (present.kind, present.weights, present.fingerprint) == (
        "imagenet", folder / "resnet18-f37072fd.pth", str(folder / "resnet18-f37072fd.pth"))
    assert present.input_size == 224 and present.mean == (0.485, 0.456, 0.406)
    with pytest.raises(ClassifierError, match="python -m explorer weights download resnet34"):
        resolve_classifier("resnet34")
    missing = resolve_classifier("resnet34", allow_untrained=True)
    assert (missing.kind, missing.trained, missing.weights) == ("untrained", False, None)
    assert missing.about.startswith("resnet34 UNTRAINED: random weights")
    assert missing.fingerprint != present.fingerprint
    assert classifier_choices()["resnet18"] == "resnet18 (ImageNet weights)"


def test_a_broken_manifest_leaves_the_imagenet_choices():
    folder = Path(os.environ["EXPLORER_PRETRAINED_DIR"])
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not a valid checkpoint manifest"):
        classifier_choices()
    assert classifier_choices(checkpoints=False)["resnet50"] == "resnet50 (untrained: no ImageNet weights here)"


@pytest.mark.parametrize("name, message", [
    ("resnet200", "Unknown model"),
    ("plain56", "python -m explorer train --models plain56"),
    ("resnet50", "python -m explorer weights download resnet50"),
    ("plain18", "no published ImageNet weights"),
])
def test_unusable_classifiers_say_what_to_do(name, message):
    with pytest.raises(ClassifierError, match=message):
        load_classifier(name)


def test_classify_cli_reports_each_file_and_keeps_going(tmp_path, capsys):
    _save("resnet20", 0.2)
    good = tmp_path / "red.png"
    good.write_bytes(_png(Image.new("RGB", (32, 32), "red")))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    code = cli_main(["classify", str(good), str(broken), str(tmp_path / "missing.jpg"), "--json", "--topk", "3"])
    captured = capsys.readouterr()
    assert code == 2 and "2 of 3 images could not be read" in captured.err
    report = json.loads(captured.out)
    assert report["model"] == "resnet20-toy"
    first, second, third = report["results"]
    assert [p["label"] for p in first["predictions"]] and len(first["predictions"]) == 3
    probabilities = [p["probability"] for p in first["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    assert "broken.png" in second["error"] and "missing.jpg" in third["error"]
    assert "Traceback" not in captured.err


def test_classify_cli_without_any_trained_model_says_how_to_get_one(capsys, tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(_png(Image.new("RGB", (8, 8))))
    assert cli_main(["classify", str(image)]) == 2
    assert "python -m explorer train --models resnet20" in capsys.readouterr().err


# The shipped checkpoints: a fresh clone classifies offline with them.

def test_shipped_checkpoints_verify_and_match_their_manifest(monkeypatch):
    entries = read_manifest(SHIPPED)
    assert {"resnet20-cifar10", "plain20-cifar10"} <= set(entries)
    for key, entry in entries.items():
        model, _ = load_checkpoint(key, folder=SHIPPED)  # sha256 and strict architecture
        assert sum(p.numel() for p in model.parameters()) == entry.params
        assert entry.classes == CIFAR10_CLASSES and entry.config["image_size"] == 32
        assert 0 < entry.val_error < 0.9 and entry.steps == entry.config["steps"]
    # The paper's Table 6 count for ResNet-20: 0.27M parameters.
    assert round(entries["resnet20-cifar10"].params / 1e6, 2) == 0.27


def test_classify_cli_works_offline_with_the_shipped_default(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    image = tmp_path / "photo.png"
    image.write_bytes(_png(Image.new("RGB", (64, 48), (90, 120, 200))))
    assert cli_main(["classify", str(image)]) == 0
    out = capsys.readouterr().out
    best = best_shipped_checkpoint(SHIPPED)
    assert out.startswith(f"{best}: {read_manifest(SHIPPED)[best].model} trained by this project on cifar10")
    assert sum(label in out for label in CIFAR10_CLASSES) == 5


@pytest.mark.skipif(not REAL_CIFAR10.is_dir(), reason="real CIFAR-10 is not beside the repo (../shared/data)")
def test_shipped_validation_errors_are_reproduced_on_the_held_out_split(monkeypatch):
    from explorer.data import load_data
    from explorer.training.engine import evaluate

    entries = read_manifest(SHIPPED)
    data = load_data(f"folder:{REAL_CIFAR10}", image_size=32, seed=0)
    assert len(data.val_labels) == 5000  # §4.2's 45k/5k split
    for key, entry in entries.items():
        model, _ = load_checkpoint(key, folder=SHIPPED)
        assert evaluate(model, data.val_images, data.val_labels).error == pytest.approx(entry.val_error, abs=0.002)


def test_models_cli_shows_each_architectures_best_checkpoint(capsys):
    _save("resnet20", 0.25, tag="first")
    _save("resnet20", 0.125, tag="second")
    assert cli_main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["resnet20"]["checkpoint"] == "resnet20-second"
    assert rows["resnet20"]["checkpoint_val_error"] == 0.125
    assert rows["resnet20"]["trained_here"] == "12.5% (second, 100 steps)"
    assert rows["plain20"]["checkpoint"] is None and rows["resnet50"]["trained_here"] is None


def test_samples_are_held_out_images_the_best_model_gets_right(monkeypatch):
    """How the ten samples were chosen (README, issue 38): for each class, the first image of
    the shipped evaluation pack (held out from every shipped model's training) that ResNet-56
    classifies correctly. So the default view shows a working model on a typical picture:
    9 of the 10 are their class's very first image in the pack; deer needed its second."""
    import hashlib

    from safetensors import safe_open

    from explorer.data.images import read_image_file, sample_images

    pack = Path(__file__).resolve().parents[1] / "pretrained" / "data" / "cifar10-eval.safetensors"
    with safe_open(str(pack), "pt") as handle:
        digests = {bytes(row.tolist()) for row in handle.get_tensor("sha256")}
    samples = sample_images()
    assert sorted(samples) == CIFAR10_CLASSES
    for path in samples.values():
        assert hashlib.sha256(path.read_bytes()).digest() in digests
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(Path(__file__).resolve().parents[1] / "pretrained"))
    model = load_classifier("resnet56-cifar10")
    predictions = model.predict([read_image_file(samples[name]) for name in CIFAR10_CLASSES], topk=1)
    assert [p[0].label for p in predictions] == CIFAR10_CLASSES


def test_a_cifar_model_warns_about_photos_of_other_things(monkeypatch):
    """Issue 38: a CIFAR net names one of its 10 classes for any photo; the page says so, with
    the one command that fetches a 1,000-class model."""
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    caveat = resolve_classifier("resnet56-cifar10").photo_caveat()
    assert "knows only 10 classes" in caveat and "32×32" in caveat
    assert "`python -m explorer weights download resnet50`" in caveat
    assert resolve_classifier("resnet50", allow_untrained=True).photo_caveat() is None  # 1,000 classes, 224 px
