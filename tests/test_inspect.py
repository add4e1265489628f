"""Inspect an image: Grad-CAM, feature maps, gradient norms, the cam CLI and the page."""

import io
import json
import random
import struct
import threading
import zlib
from pathlib import Path

import pytest
import torch
from apptest_helpers import best_shipped_checkpoint, open_page
from captum.attr import LayerGradCam
from PIL import Image
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from explorer.cli import main
from explorer.data.images import sample_images
from explorer.models import build_model, get_model_spec, stage_ends
from explorer.models.hooks import captured_outputs, hooked
from explorer.paper.features import (
    feature_maps,
    feature_points,
    image_feature_map,
    most_active_channels,
)
from explorer.paper.gradcam import (
    class_gradient_norms,
    explain,
    grad_cams,
    gradient_norms,
    layer_grad_cam,
    upsample,
)
from explorer.paper.table1 import analyze
from explorer.present.overlays import overlay
from explorer.store.classifiers import RecentResults, load_classifier, residual_twin

SHIPPED = Path(__file__).resolve().parent.parent / "pretrained"
PAGE = "../pages/inspect_image.py"


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))


def _png(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# --- Grad-CAM ---------------------------------------------------------------------------------

def _tiny_model() -> nn.Module:
    """conv 1×1 (channel 0 = x, channel 1 = 5 - x), global average pool, linear."""
    conv = nn.Conv2d(1, 2, 1)
    linear = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 5.0]))
        linear.weight.copy_(torch.tensor([[2.0, -1.0], [0.0, 1.0]]))
        linear.bias.zero_()
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval().requires_grad_(False)


def test_grad_cam_of_a_tiny_model_equals_the_hand_computation():
    # A0 = [[1, 2], [3, 4]], A1 = 5 - A0. The score of class c is Σ_k w_ck · mean(A_k), so its
    # gradient at every pixel of A_k is w_ck / 4 and Grad-CAM's weight α_k = w_ck / 4:
    #   class 0: relu(0.5·A0 − 0.25·A1) = relu([[-0.5, 0.25], [1.0, 1.75]])
    #   class 1: relu(0.25·A1)          = [[1.0, 0.75], [0.5, 0.25]]
    model, x = _tiny_model(), torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = {0: torch.tensor([[0.0, 0.25], [1.0, 1.75]]), 1: torch.tensor([[1.0, 0.75], [0.5, 0.25]])}
    for target, cam in expected.items():
        index = torch.tensor([target])
        assert torch.allclose(grad_cams(model, x, ["0"], index)["0"][0, 0], cam)
        assert torch.allclose(layer_grad_cam(model, x, "0", index)[0, 0], cam)


def test_one_pass_grad_cams_equal_captum_layer_grad_cam_per_stage():
    model = build_model("resnet20").eval().requires_grad_(False)
    batch, target = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 7])
    layers = [layer for _, layer in stage_ends(model, get_model_spec("resnet20"))]
    assert layers == ["layer1", "layer2", "layer3"]
    together = grad_cams(model, batch, layers, target)
    for layer in layers:
        alone = LayerGradCam(model, model.get_submodule(layer)).attribute(batch, target=target, relu_attributions=True)
        assert torch.allclose(together[layer], alone, atol=1e-6)


def test_shipped_resnet_cams_are_non_negative_at_each_stages_resolution(shipped):
    classifier = load_classifier("resnet20-cifar10")
    explanation = explain(classifier, Image.open(sample_images()["cat"]))
    assert [(c.stage, tuple(c.cam.shape)) for c in explanation.cams] == [
        ("stage1", (32, 32)), ("stage2", (16, 16)), ("stage3", (8, 8))]  # Table 6: 32, 16, 8 (§4.2)
    for stage in explanation.cams:
        assert stage.cam.min() >= 0 and stage.cam.max() > 0
        assert stage.upsampled.shape == (32, 32) and stage.upsampled.max() == pytest.approx(1.0)
    assert explanation.target == explanation.predictions[0].label
    assert [c.title for c in explanation.cams] == ["stage1 (layer1)", "stage2 (layer2)", "stage3 (layer3)"]


def test_a_stage_with_no_positive_evidence_is_called_empty_on_the_page(shipped):
    # ResNet-56 on the bird sample (one of the four the page opens with): stage1's weighted
    # feature maps are negative everywhere, so the ReLU leaves an all-zero map (drawn flat: the
    # page must say why).
    explanation = explain(load_classifier("resnet56-cifar10"), Image.open(sample_images()["bird"]),
                          target="bird")
    stage1 = explanation.cams[0]
    assert stage1.empty and stage1.cam.max() == 0 and stage1.title == "stage1 (layer1): empty"
    assert not explanation.cams[-1].empty
    at = open_page(PAGE)
    at.selectbox(key="inspect.focus").set_value("sample: bird").run()
    caption = next(c.value for c in at.caption if c.value.startswith("Grad-CAM for"))
    assert "**stage1: empty.**" in caption and "keeps only what raises it" in caption


@pytest.mark.parametrize("corner", [(0, 0), (48, 48), (0, 48), (48, 0)])
def test_grad_cam_highlights_a_pasted_object_more_than_the_background(shipped, corner):
    classifier = load_classifier("resnet20-cifar10")
    canvas = Image.new("RGB", (96, 96))  # black, with a car photo in one quarter
    canvas.paste(Image.open(sample_images()["automobile"]).convert("RGB").resize((48, 48)), corner)
    cam = explain(classifier, canvas, target="automobile").cams[-1].upsampled  # the last stage, 32×32
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[corner[1] // 3:corner[1] // 3 + 16, corner[0] // 3:corner[0] // 3 + 16] = True
    assert cam[inside].mean() > 3 * cam[~inside].mean()
    assert inside.flatten()[cam.flatten().argmax()]


def test_upsampling_stretches_and_scales_each_map_to_one():
    cam = torch.tensor([[[[0.0, 2.0], [4.0, 8.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    stretched = upsample(cam, (4, 4))
    assert stretched.shape == (2, 4, 4)
    assert stretched[0].max() == 1.0 and stretched[0, 0, 0] == 0.0 and torch.all(stretched[1] == 1.0)


def test_overlay_blends_the_palette_over_the_image():
    image = torch.zeros(3, 2, 2, dtype=torch.uint8)
    cam = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    blended = overlay(image, cam, opacity=1.0)
    assert blended.dtype == torch.uint8
    assert blended[:, 0, 1].tolist() == [128, 0, 0]  # Jet's last colour: dark red
    assert blended[:, 0, 0].tolist() == [0, 0, 131]  # Jet's first: dark blue
    assert torch.equal(overlay(image, cam, opacity=0.0), image)


def test_the_cam_figure_shows_exactly_the_model_input_and_each_map():
    """The page's Grad-CAM panels: the input the net saw, unchanged and upright (H, W, RGB),
    in every panel, each stage's map over it; sent as arrays (plotly writes them as base64,
    not as a list of numbers per pixel, which took 2.8 s per rerun at 224×224)."""
    import numpy as np
    import plotly.io

    from explorer.present.figures import cam_overlays_figure

    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8, generator=generator)
    cams = [("conv2_x", torch.rand(5, 7, generator=generator)), ("conv3_x: empty", torch.zeros(5, 7))]
    figure = cam_overlays_figure(image, cams)
    pictures = [trace for trace in figure.data if trace.type == "image"]
    maps = [trace for trace in figure.data if trace.type == "heatmap"]
    assert len(pictures) == 3 and len(maps) == 2
    for picture in pictures:
        assert np.array_equal(picture.z, image.permute(1, 2, 0).numpy())
    for heatmap, (_, cam) in zip(maps, cams):
        assert np.allclose(heatmap.z, cam.numpy())
    assert [a.text for a in figure.layout.annotations] == ["what the net sees", "conv2_x", "conv3_x: empty"]
    assert '"bdata"' in plotly.io.to_json(figure)  # arrays, not one JSON number per pixel


# --- feature maps -----------------------------------------------------------------------------

# Table 1 (ImageNet, 224×224 input) and §4.2 (CIFAR, 32×32): channels × size at each stage end.
TABLE_1 = {
    "resnet18": {"layer1": (64, 56), "layer2": (128, 28), "layer3": (256, 14), "layer4": (512, 7)},
    "resnet50": {"layer1": (256, 56), "layer2": (512, 28), "layer3": (1024, 14), "layer4": (2048, 7)},
    "resnet20": {"layer1": (16, 32), "layer2": (32, 16), "layer3": (64, 8)},
}


@pytest.mark.parametrize("name", list(TABLE_1))
def test_feature_maps_have_the_shapes_table_1_predicts(name):
    spec = get_model_spec(name)
    model = build_model(name).eval().requires_grad_(False)
    ends = [point.name for point in feature_points(model, spec) if point.stage_end]
    stage_layers = [layer for _, layer in stage_ends(model, spec)]
    assert [end.rsplit(".", 1)[0] for end in ends] == stage_layers
    batch = torch.randn(1, *spec.input_size)
    maps = feature_maps(model, batch, ends)
    reference = create_feature_extractor(model, return_nodes=ends)(batch)  # torchvision's fx way, single thread
    assert all(torch.equal(maps[end], reference[end]) for end in ends)
    sizes = {row.stage: row.output_size for row in analyze(name).stages}
    for (stage, layer), end in zip(stage_ends(model, spec), ends):
        channels, side = TABLE_1[name][layer]
        assert maps[end].shape == (1, channels, side, side)
        assert sizes[stage] == f"{side}×{side}"  # the architecture page's Table 1 says the same
    assert not any(module._forward_hooks for module in model.modules())  # no hook left behind


def test_feature_hooks_are_removed_when_the_forward_fails():
    model = build_model("resnet20").eval()
    with pytest.raises(RuntimeError):
        feature_maps(model, torch.randn(1, 5, 32, 32), ["layer1", "layer2.1"])  # 5 channels: conv1 refuses
    assert not any(module._forward_hooks for module in model.modules())
    with pytest.raises(AttributeError):
        with captured_outputs(model, ["layer1", "no_such_layer"]):
            pass
    assert not any(module._forward_hooks for module in model.modules())


def test_feature_points_list_the_stem_then_every_block():
    model = build_model("resnet20")
    points = feature_points(model, get_model_spec("resnet20"))
    assert points[0].name == "relu" and len(points) == 1 + 9  # 3 stages × 3 blocks (n = 3)
    assert [p.name for p in points[1:4]] == ["layer1.0", "layer1.1", "layer1.2"]
    assert points[3].label == "stage1 (layer1.2), end of stage"


def test_most_active_channels_are_the_highest_means_in_order():
    activation = torch.zeros(5, 2, 2)
    for channel, value in enumerate([0.1, 3.0, -1.0, 2.0, 0.5]):
        activation[channel] = value
    top = most_active_channels(activation, 3)
    assert top.channels == [1, 3, 4] and top.mean_activation == pytest.approx([3.0, 2.0, 0.5])
    assert torch.equal(top.maps, activation[[1, 3, 4]])
    with pytest.raises(ValueError, match="one image"):
        most_active_channels(torch.zeros(1, 5, 2, 2))


# --- gradient norms ---------------------------------------------------------------------------

def test_gradient_norms_match_autograd_and_leave_the_model_untouched():
    model = build_model("plain20").eval().requires_grad_(False)
    parameters = list(model.parameters())
    batch, target = torch.randn(1, 3, 32, 32), torch.tensor([2])
    norms = gradient_norms(model, batch, target)

    reference = build_model("plain20").eval()
    reference.load_state_dict(model.state_dict())
    reference(batch)[0, 2].backward()
    expected = [(f"{name}", module.weight.grad.norm().item()) for name, module in reference.named_modules()
                if isinstance(module, (nn.Conv2d, nn.Linear))]
    assert [name for name, _ in norms] == [f"{name}.weight" for name, _ in expected]
    assert [norm for _, norm in norms] == pytest.approx([norm for _, norm in expected], rel=1e-5)
    assert len(norms) == 20  # plain-20: 19 conv layers and the fc layer
    assert list(model.parameters()) == parameters and all(p.grad is None and not p.requires_grad for p in parameters)


def test_gradient_norms_of_resnet50_cover_its_50_layers_not_the_projections():
    model = build_model("resnet50").eval().requires_grad_(False)
    norms = gradient_norms(model, torch.randn(1, 3, 64, 64), torch.tensor([3]))
    assert len(norms) == 50  # the paper's 50 layers: the 4 downsample projections are not counted
    assert not any("downsample" in name for name, _ in norms)
    assert norms[0][0] == "conv1.weight" and norms[-1][0] == "fc.weight"
    assert all(norm > 0 for _, norm in norms)


def test_shipped_twins_and_concurrent_sessions(shipped):
    assert residual_twin("resnet20-cifar10") == "plain20-cifar10"
    assert residual_twin("plain20-cifar10") == "resnet20-cifar10"
    classifier = load_classifier("resnet20-cifar10")
    before = {name: p.clone() for name, p in classifier.model.state_dict().items()}
    horse = Image.open(sample_images()["horse"]).convert("RGB")
    failures = []

    def session(turn: int):
        try:  # what two students on the inspect page do at the same time, each with new photos
            for step in range(15):
                image = horse.rotate(2 * step + turn)  # new pixels: not answered from the classifier's memory
                explain(classifier, image)
                class_gradient_norms(classifier, image, "horse")
                image_feature_map(classifier, image, "layer2.1")
                classifier.predict([image])
        except Exception as error:  # noqa: BLE001 - any failure in a thread fails the test
            failures.append(error)

    threads = [threading.Thread(target=session, args=(turn,)) for turn in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert all(torch.equal(before[name], value) for name, value in classifier.model.state_dict().items())
    assert all(isinstance(p, nn.Parameter) and not p.requires_grad for p in classifier.model.parameters())


def test_a_classifier_answers_recent_inputs_from_memory_with_the_same_numbers(shipped):
    classifier, reference = load_classifier("resnet20-cifar10"), load_classifier("resnet20-cifar10")
    batch_sizes = []
    classifier.model.register_forward_pre_hook(lambda module, args: batch_sizes.append(args[0].shape[0]))
    horse, ship, cat = (Image.open(sample_images()[name]).convert("RGB") for name in ("horse", "ship", "cat"))

    first = classifier.probabilities([horse, ship])
    assert batch_sizes == [2]
    assert torch.allclose(first, reference.probabilities([horse, ship]), atol=1e-6)
    assert torch.equal(classifier.probabilities([ship, horse]), first.flip(0))  # no forward pass
    mixed = classifier.probabilities([horse, cat, ship, cat])
    assert batch_sizes == [2, 1]  # only the new photo, once
    assert torch.equal(mixed[[0, 2]], first) and torch.equal(mixed[1], mixed[3])
    assert torch.allclose(mixed[1], reference.probabilities([cat])[0], atol=1e-6)

    explanation = explain(classifier, horse)
    computed = len(batch_sizes)
    assert explain(classifier, horse.copy()) is explanation and len(batch_sizes) == computed  # same pixels
    assert len(explain(classifier, horse, topk=1).predictions) == 1  # topk is part of the key
    other = explain(classifier, horse, target="ship")
    assert other.target == "ship" and len(batch_sizes) > computed
    fresh = explain(reference, horse, target="ship")
    assert all(torch.allclose(a.cam, b.cam, atol=1e-6) for a, b in zip(other.cams, fresh.cams))


def test_recent_results_keep_the_last_ones_used():
    recent = RecentResults(2)
    recent.put("a", 1)
    recent.put("b", 2)
    assert recent.get("a") == 1  # a is now the most recently used
    recent.put("c", 3)
    assert (recent.get("a"), recent.get("b"), recent.get("c"), len(recent)) == (1, None, 3, 2)


def test_recent_results_compute_what_they_lack_once_and_peeking_is_not_a_use():
    recent, calls = RecentResults(2), []
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731 - the count of computations so far
    assert recent.get_or_compute("a", compute) == 1 and recent.get_or_compute("a", compute) == 1 and calls == [1]
    recent.put("b", 2)
    assert recent.peek("a") == 1 and "a" in recent and "z" not in recent
    recent.put("c", 3)  # "a" was only peeked at since "b" came: it is the least recently used
    assert (recent.peek("a"), recent.peek("b"), recent.peek("c")) == (None, 2, 3)


def test_hooks_are_all_removed_whatever_happens():
    model = build_model("resnet20").eval()
    seen = []
    with hooked(model, after=[("layer1", lambda m, i, o: seen.append("after"))],
                before=[(model.layer2, lambda m, i: seen.append("before"))]):
        model(torch.randn(1, 3, 32, 32))
    assert seen == ["after", "before"]  # layer1 runs before layer2
    with pytest.raises(AttributeError):
        with hooked(model, after=[("layer1", print), ("no_such_layer", print)], before=[("layer2", print)]):
            pass
    with pytest.raises(RuntimeError):
        with hooked(model, after=[("layer1", print)], before=[("layer2", print)]):
            model(torch.randn(1, 5, 32, 32))  # 5 channels: conv1 refuses
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())


# --- CLI --------------------------------------------------------------------------------------

def _png_declaring(width: int, height: int) -> bytes:
    data = bytearray(_png(Image.new("L", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _bad_inputs() -> dict[str, tuple[bytes, str | None]]:
    """file name -> (bytes, None if it must be classified, else a phrase of its error)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    palette = Image.new("P", (8, 8))
    palette.putpalette([255, 0, 0, 10, 20, 30])
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    jpeg = _png(Image.new("RGB", (64, 64), (200, 10, 10)), "JPEG")
    return {
        "empty.jpg": (b"", "empty"),
        "random.png": (random.Random(0).randbytes(2000), "not an image"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "damaged"),
        "huge.png": (_png_declaring(30000, 30000), "far too many pixels"),
        "cmyk.jpg": (_png(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG"), None),
        "sixteen.png": (_png(Image.new("I;16", (16, 16), 40000)), None),
        "palette.png": (_png(palette, transparency=0), None),
        "animated.gif": (_png(frames[0], "GIF", save_all=True, append_images=frames[1:]), None),
        "rotated.jpg": (_png(Image.new("RGB", (40, 20)), "JPEG", exif=exif), None),
        "dot.png": (_png(Image.new("RGB", (1, 1), (0, 255, 0))), None),
        "strip.png": (_png(Image.new("RGB", (10000, 1))), "too narrow"),
    }


def test_classify_cli_handles_every_bad_input_per_file(shipped, tmp_path, capsys):
    cases = _bad_inputs()
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    assert main(["classify", *(str(tmp_path / name) for name in cases), "--json"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    results = {Path(r["file"]).name: r for r in json.loads(captured.out)["results"]}
    assert list(results) == list(cases)
    for name, (_, problem) in cases.items():
        if problem is None:
            assert len(results[name]["predictions"]) == 5, name
            assert sum(p["probability"] for p in results[name]["predictions"]) <= 1.0 + 1e-6
        else:
            assert problem in results[name]["error"], (name, results[name]["error"])


def test_cam_cli_writes_one_panel_per_stage(shipped, tmp_path, capsys):
    out = tmp_path / "cam.png"
    assert main(["cam", str(sample_images()["ship"]), "--out", str(out)]) == 0
    strip = Image.open(out)
    # The 32×32 input scaled ×7 (to at least 224 px), four panels (input + 3 stages), 6 px gaps, 18 px titles.
    assert strip.size == (4 * 224 + 3 * 6, 224 + 18)
    assert "stage1 (layer1), stage2 (layer2), stage3 (layer3)" in capsys.readouterr().out
    assert main(["cam", str(sample_images()["ship"]), "--layer", "layer3.1", "--target", "truck",
                 "--out", str(out)]) == 0
    assert Image.open(out).size == (2 * 224 + 6, 224 + 18)
    assert "Grad-CAM for 'truck' at layer3.1" in capsys.readouterr().out


@pytest.mark.parametrize("arguments, message", [
    (["--layer", "layer9"], "has no layer 'layer9'"),
    (["--layer", "fc"], "does not output a feature map"),
    (["--model", "resnet20-cifar10", "--target", "zebra"], "'zebra' is not one of resnet20-cifar10's classes: airplane"),
    (["--model", "resnet50"], "weights"),
])
def test_cam_cli_explains_bad_settings(shipped, tmp_path, capsys, arguments, message):
    out = tmp_path / "cam.png"
    assert main(["cam", str(sample_images()["ship"]), "--out", str(out), *arguments]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_cam_cli_refuses_a_broken_image_and_a_non_png_output(shipped, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert main(["cam", str(broken), "--out", str(tmp_path / "cam.png")]) == 2
    assert "broken.png is not an image" in capsys.readouterr().err
    assert main(["cam", str(sample_images()["ship"]), "--out", str(tmp_path / "cam.jpg")]) == 2
    assert "must name a .png file" in capsys.readouterr().err


# --- the page ---------------------------------------------------------------------------------

def _charts(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _cam_panels(at) -> int:
    cams = next((spec for spec in _charts(at) if any(t.get("type") == "image" for t in spec["data"])), None)
    return 0 if cams is None else sum(trace["type"] == "heatmap" for trace in cams["data"])


def test_page_upload_shows_top5_and_each_look_only_when_its_tab_is_open(shipped):
    at = open_page(PAGE)
    best = best_shipped_checkpoint(SHIPPED)
    assert at.selectbox[0].value == best  # the best shipped checkpoint is the default
    assert "untrained" in at.selectbox[0].format_func("resnet50")  # no ImageNet weights in tests
    image = Image.open(sample_images()["airplane"]).resize((64, 48))
    at.file_uploader(key="uploads").upload("plane.png", _png(image), "image/png").run()
    assert not at.exception and not at.error
    assert at.multiselect[0].value == []  # an upload replaces the default samples
    # A CIFAR model on the user's own photo says what it knows (issue 38), samples alone do not
    assert any("knows only 10 classes" in w.value and "weights download resnet50" in w.value for w in at.warning)
    charts = _charts(at)
    top5 = [spec for spec in charts if spec["data"][0]["type"] == "bar" and len(spec["data"]) == 1]
    assert len(top5) == 1 and len(top5[0]["data"][0]["y"]) == 5
    assert _cam_panels(at) == 3  # stage1..3 of the CIFAR net
    # Only the open look computes and draws: no feature maps or gradients behind the other tabs.
    assert not [spec for spec in charts if _feature_map_panels(spec) or _gradient_bars(spec)]

    at.session_state["inspect.look"] = "Feature maps"
    at.run()
    assert not at.exception and not at.error
    assert [_feature_map_panels(spec) for spec in _charts(at) if _feature_map_panels(spec)] == [16]
    assert _cam_panels(at) == 0
    at.selectbox(key="inspect.stage").set_value("layer2.1").run()

    at.session_state["inspect.look"] = "Gradients per layer"
    at.run()
    gradients = [spec for spec in _charts(at) if _gradient_bars(spec)]
    assert [bar["name"] for bar in gradients[0]["data"]] == [residual_twin(best), best]  # plain twin first
    assert "stage" not in at.query_params  # a link names a stage only while the feature maps are open
    assert at.query_params["look"] in ("gradients", ["gradients"])  # and the open look
    linked = open_page(PAGE, {key: at.query_params[key] for key in at.query_params})
    assert linked.session_state["inspect.look"] == "Gradients per layer"
    assert not linked.warning and [spec for spec in _charts(linked) if _gradient_bars(spec)]

    at.session_state["inspect.look"] = "Feature maps"
    at.run()
    assert at.selectbox(key="inspect.stage").value == "layer2.1"  # kept while another look was open
    assert at.query_params["stage"] in ("layer2.1", ["layer2.1"])


def _feature_map_panels(spec) -> int:
    return sum(trace["type"] == "heatmap" for trace in spec["data"]) if spec["data"][0]["type"] == "heatmap" else 0


def _gradient_bars(spec) -> bool:
    return spec["layout"].get("barmode") == "group"


def test_page_imagenet_resnet_shows_four_stage_cams(monkeypatch, tmp_path):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(build_model("resnet18").state_dict(), hub / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    at = open_page(PAGE)
    assert at.selectbox[0].value == "resnet18"  # no checkpoints here: the ImageNet model with weights
    at.multiselect[0].set_value(["dog"]).run()
    assert not at.exception and not at.error
    assert _cam_panels(at) == 4  # conv2_x … conv5_x


def test_page_broken_upload_shows_an_error_and_the_next_upload_works(shipped):
    at = open_page(PAGE)
    at.file_uploader(key="uploads").upload("broken.png", b"\x89PNG not really", "image/png").run()
    assert not at.exception
    shown = at.error[0].value.replace("\\", "")  # the message is escaped for Markdown (ui.common.escaped)
    assert "broken.png" in shown and "not an image" in shown
    at.file_uploader(key="uploads").upload("cat.jpg", sample_images()["cat"].read_bytes(), "image/jpeg").run()
    assert not at.exception and not at.error
    assert _cam_panels(at) == 3


def test_a_link_opens_the_inspect_view_and_a_hostile_one_falls_back(shipped):
    def opened(params):
        return open_page(PAGE, params)

    at = opened({"model": "resnet20-cifar10", "sample": "ship", "class": "frog", "stage": "layer2.2"})
    assert at.selectbox(key="inspect.model").value == "resnet20-cifar10"
    assert at.selectbox(key="inspect.focus").value == "sample: ship"
    assert at.selectbox(key="inspect.target").value == "frog"
    assert at.session_state["inspect.look"] == "Feature maps"  # a link with a stage opens them
    assert at.selectbox(key="inspect.stage").value == "layer2.2"
    assert opened({"model": "resnet20-cifar10", "sample": "ship"}).session_state["inspect.look"] == "Grad-CAM per stage"
    assert at.query_params["class"] in ("frog", ["frog"]) and at.query_params["sample"] in ("ship", ["ship"])
    hostile = opened({"model": "../../etc/passwd", "sample": "<img src=x>", "stage": "x" * 500})
    assert sum("From the link" in w.value for w in hostile.warning) >= 2
    assert hostile.selectbox(key="inspect.model").value != "../../etc/passwd"


@pytest.mark.parametrize("norms, at_least", [((0.0021, 0.0034), 2), ((1e-6, 3.0), 6)])
def test_the_gradient_chart_labels_at_least_two_ticks(norms, at_least):
    """A log axis with one label cannot be read (issue 38): the ticks follow the norms' span."""
    from types import SimpleNamespace

    from explorer.present.figures import gradient_norms_figure

    series = [SimpleNamespace(label="resnet20", residual=True, norms=[("conv1", norms[0]), ("fc", norms[1])])]
    axis = gradient_norms_figure(series).layout.yaxis
    assert len(axis.tickvals) >= at_least
    assert all(norms[0] <= tick <= norms[1] for tick in axis.tickvals)
    assert "e-0" not in " ".join(axis.ticktext)


def test_power_labels_read_as_powers_of_ten():
    from explorer.present.axes import power_label

    assert [power_label(v) for v in (1e-4, 2e-3, 0.5, 20, 5e4)] == ["10⁻⁴", "2·10⁻³", "0.5", "20", "5·10⁴"]
