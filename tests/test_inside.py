"""The "Why shortcuts work" core: layer responses, branch ratios, lesions, loss surfaces."""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from explorer.cli.inside import add_commands
from explorer.data import CIFAR10_MEAN, CIFAR10_STD
from explorer.models import blocks, build_model, get_model_spec
from explorer.paper.inside import (
    InsideError,
    Probe,
    Subject,
    branch_ratios,
    filter_normalized_direction,
    layer_responses,
    lesion_study,
    lesioned,
    load_probe,
    load_subject,
    loss_line,
    loss_surface,
    path_length_counts,
    probe_evaluation,
    removable_blocks,
)
from explorer.paper.inside import probes as inside_data
from explorer.paper.inside.landscape import Surface, random_directions
from explorer.present import inside_figures
from explorer.store.checkpoints import read_manifest

SHIPPED = Path(__file__).resolve().parent.parent / "pretrained"

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _randomise_batch_norm(model: torch.nn.Module, seed: int = 0) -> None:
    """Trained-looking BN (eval mode): non-trivial running statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.2)


def _tiny(name: str = "resnet20") -> Subject:
    model = build_model(name, width=2)
    _randomise_batch_norm(model)
    return Subject(name=f"tiny-{name}", spec=get_model_spec(name), model=model, classes=CIFAR_CLASSES,
                   image_size=8, mean=CIFAR10_MEAN, std=CIFAR10_STD)


def _probe(count: int = 12, seed: int = 1) -> Probe:
    generator = torch.Generator().manual_seed(seed)
    return Probe(source="random", images=torch.randn(count, 3, 8, 8, generator=generator),
                 labels=torch.randint(0, 10, (count,), generator=generator), classes=CIFAR_CLASSES)


def _bn(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def test_response_std_equals_a_hand_computation(monkeypatch):
    subject, probe = _tiny(), _probe()
    monkeypatch.setattr(inside_data, "BATCH_SIZE", 5)  # sums must add up across batches
    result = layer_responses(subject, probe)
    assert len(result.layers) == 19  # the stem and 2 × 9 block convs, all 3×3
    model, x = subject.model, probe.images
    stem = _bn(F.conv2d(x, model.conv1.weight, padding=1), model.bn1)
    block = model.layer1[0]
    first = _bn(F.conv2d(F.relu(stem), block.conv1.weight, padding=1), block.bn1)
    stds = {layer.layer: layer.std for layer in result.layers}
    assert stds["conv1"] == pytest.approx(stem.std(correction=0).item(), abs=1e-4)
    assert stds["layer1.0.conv1"] == pytest.approx(first.std(correction=0).item(), abs=1e-4)
    assert [r.std for r in result.by_magnitude()] == sorted(stds.values(), reverse=True)
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


def test_branch_ratio_equals_a_hand_computation():
    subject, probe = _tiny(), _probe()
    model, x = subject.model, probe.images
    with torch.no_grad():
        block_input = F.relu(model.bn1(model.conv1(x)))
        block = model.layer1[0]
        branch = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(block_input)))))
    expected = (branch.flatten(1).norm(dim=1) / block_input.flatten(1).norm(dim=1)).mean().item()
    result = branch_ratios(subject, probe)
    assert len(result.blocks) == 9
    assert result.blocks[0].block == "layer1.0"
    assert result.blocks[0].ratio == pytest.approx(expected, abs=1e-4)
    assert [b.downsampling for b in result.blocks].count(True) == 2


@pytest.mark.parametrize("block_name", ["layer1.1", "layer2.0"])
def test_a_zeroed_branch_leaves_the_shortcut_path(block_name):
    subject = _tiny()
    found = {block.name: block for block in blocks(subject.model, subject.spec)}
    module = subject.model.get_submodule(block_name)
    channels = module.conv1.in_channels
    x = torch.rand(4, channels, 8, 8)  # a block's input comes out of a ReLU: non-negative
    with torch.no_grad():
        intact = module(x.clone())
        with lesioned(subject.model, [found[block_name]]):
            removed = module(x.clone())
        shortcut = module.shortcut(x)
        again = module(x.clone())
    assert torch.equal(removed, F.relu(shortcut))
    assert not torch.allclose(intact, removed)
    assert torch.equal(again, intact)  # the hook is gone


def test_a_removed_plain_block_passes_its_input_and_downsampling_ones_cannot_be_removed():
    subject = _tiny("plain20")
    candidates = removable_blocks(subject.model, subject.spec)
    assert [block.name for block in candidates] == ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2",
                                                    "layer3.1", "layer3.2"]
    x = torch.rand(4, 4, 4, 4)
    module = subject.model.layer2[1]
    with torch.no_grad(), lesioned(subject.model, [candidates[3]]):
        assert torch.equal(module(x), x)
    downsampling = next(b for b in blocks(subject.model, subject.spec) if b.downsampling)
    with pytest.raises(InsideError, match="changes the shape"), lesioned(subject.model, [downsampling]):
        pass


def test_lesion_study_counts_and_baseline():
    subject, probe = _tiny(), _probe()
    study = lesion_study(subject, probe, draws=2, seed=3)
    assert study.baseline_error == pytest.approx(probe_evaluation(subject.model, probe.images, probe.labels).error, abs=1e-4)
    assert len(study.blocks) == 9 and [b.downsampling for b in study.blocks].count(True) == 2
    assert [r.removed for r in study.random] == [1, 2, 3, 4]
    assert all(r.error_min <= r.error_mean <= r.error_max for r in study.random)
    assert study.to_json()["blocks"][3] == {"block": "layer2.0", "error": study.blocks[3].error, "downsampling": True}


@pytest.mark.parametrize("n", [0, 1, 9, 27, 54])
def test_path_counts_sum_to_two_to_the_n(n):
    counts = path_length_counts(n)
    assert sum(counts) == 2 ** n
    assert counts[n // 2] == math.comb(n, n // 2) and len(counts) == n + 1


def test_each_normalised_filter_has_the_weights_norm_and_bn_is_left_out():
    model = _tiny().model
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    weights = dict(model.named_parameters())
    assert set(direction) == {name for name, p in weights.items() if p.dim() > 1}
    assert "bn1.weight" not in direction and "fc.bias" not in direction
    for name, tensor in direction.items():
        expected = weights[name].detach().flatten(1).norm(dim=1)
        assert torch.allclose(tensor.flatten(1).norm(dim=1), expected, rtol=1e-5, atol=1e-7), name


def test_a_probe_evaluation_is_the_mean_loss_and_the_error_of_one_pass():
    subject, probe = _tiny(), _probe(count=300)  # more than one batch of 250
    evaluation = probe_evaluation(subject.model, probe.images, probe.labels)
    with torch.no_grad():
        logits = subject.model(probe.images)
    assert evaluation.images == 300 and not subject.model.training
    assert evaluation.wrong == int((logits.argmax(1) != probe.labels).sum())
    assert evaluation.error == evaluation.wrong / 300
    assert evaluation.loss == pytest.approx(float(F.cross_entropy(logits, probe.labels)), rel=1e-5)


def test_landscape_centre_is_the_plain_loss_and_weights_are_restored():
    subject, probe = _tiny(), _probe()
    before = {name: tensor.clone() for name, tensor in subject.model.state_dict().items()}
    surface = loss_surface(subject, probe, grid=3, span=0.5, seed=4)
    plain_loss = probe_evaluation(subject.model, probe.images, probe.labels).loss
    assert surface.alphas == (-0.5, 0.0, 0.5) and len(surface.loss) == 3
    assert surface.loss[1][1] == pytest.approx(plain_loss, abs=1e-4)
    assert surface.loss[0][0] != pytest.approx(plain_loss, abs=1e-3)  # the weights did move
    line = loss_line(subject, probe, points=3, span=0.5, seed=4)
    assert line.line() == surface.line()  # the same first direction
    after = subject.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_a_corner_of_the_surface_is_the_loss_of_the_moved_weights():
    subject, probe = _tiny(), _probe()
    surface = loss_surface(subject, probe, grid=3, span=0.5, seed=4)
    first, second = random_directions(subject.model, 4, 2)
    moved = copy.deepcopy(subject.model)  # the test's own reference; the core never copies
    with torch.no_grad():
        for name, parameter in moved.named_parameters():
            if name in first:
                parameter += -0.5 * first[name] + 0.5 * second[name]
    assert surface.loss[0][2] == pytest.approx(probe_evaluation(moved, probe.images, probe.labels).loss, abs=1e-4)


def test_an_interrupted_surface_leaves_the_model_as_it_was():
    subject, probe = _tiny(), _probe()
    subject.model.train()
    before = {name: tensor.clone() for name, tensor in subject.model.state_dict().items()}

    def stop(fraction):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loss_surface(subject, probe, grid=3, span=0.5, progress=stop)
    assert subject.model.training
    assert all(torch.equal(before[name], tensor) for name, tensor in subject.model.state_dict().items())


@pytest.mark.parametrize("grid, span, message", [(1, 1.0, "grid"), (5, 0.0, "span"), (5, -1.0, "span")])
def test_bad_grid_or_span_is_refused(grid, span, message):
    with pytest.raises(InsideError, match=message):
        loss_surface(_tiny(), _probe(), grid=grid, span=span)


def test_imagenet_model_without_weights_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(InsideError, match="needs its ImageNet weights"):
        load_subject("resnet18")


def test_a_data_folder_with_other_classes_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("apple", "pear"):
        (tmp_path / "fruit" / name).mkdir(parents=True)
        for index in range(6):
            Image.new("RGB", (8, 8), (40 * index, 90, 10)).save(tmp_path / "fruit" / name / f"{index}.png")
    subject = _tiny()
    probe = load_probe(subject, f"folder:{tmp_path / 'fruit'}", 4)
    assert probe.labels is None and probe.classes == ("apple", "pear")
    with pytest.raises(InsideError, match="apple, pear"):
        lesion_study(subject, probe)
    assert layer_responses(subject, probe).images == probe.count  # labels are not needed here
    with pytest.raises(InsideError, match="images"):
        load_probe(subject, "samples", 0)


def _run(argv: list[str], capsys) -> str:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    args.run(args)
    return capsys.readouterr().out


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))  # the checkpoints a fresh clone has


def test_cli_json_follows_the_issue_schema(shipped, capsys):
    common = ["--data", "samples", "--images", "6", "--json"]
    responses = json.loads(_run(["responses", "plain20-cifar10,resnet20-cifar10", *common], capsys))
    assert set(responses["models"]) == {"plain20-cifar10", "resnet20-cifar10"}
    assert len(responses["models"]["resnet20-cifar10"]) == 19
    assert set(responses["models"]["plain20-cifar10"][0]) == {"layer", "std"}
    branches = json.loads(_run(["branches", "resnet20-cifar10", *common], capsys))
    assert branches["model"] == "resnet20-cifar10" and len(branches["blocks"]) == 9
    lesion = json.loads(_run(["lesion", "resnet20-cifar10", *common, "--draws", "1"], capsys))
    assert set(lesion) == {"model", "baseline_error", "blocks", "random"}
    assert set(lesion["random"][0]) == {"removed", "error_mean", "error_min", "error_max"}
    surface = json.loads(_run(["landscape", "resnet20-cifar10", *common, "--grid", "3", "--span", "0.5"], capsys))
    assert surface["alphas"] == surface["betas"] == [-0.5, 0.0, 0.5] and len(surface["loss"][2]) == 3


def test_cli_text_output_and_bad_grid(shipped, capsys):
    text = _run(["branches", "plain20-cifar10", "--data", "samples", "--images", "3", "--quiet"], capsys)
    assert "layer2.0" in text and "downsampling" in text
    with pytest.raises(InsideError, match="grid"):
        _run(["landscape", "resnet20-cifar10", "--grid", "1"], capsys)


def test_figures_share_axes_and_colour_scale():
    subject, probe = _tiny(), _probe()
    surfaces = [loss_surface(subject, probe, grid=3, span=0.5, seed=seed) for seed in (0, 1)]
    figure = inside_figures.landscape_surfaces_figure(surfaces)
    ranges = {(trace.cmin, trace.cmax) for trace in figure.data if trace.type == "surface"}
    assert len(ranges) == 1 and len(figure.data) == 2
    # heights on log10 (no cap: nothing is flattened into walls), hover and ticks in real losses
    drawn = figure.data[1]
    assert drawn.z[2][0] == pytest.approx(math.log10(surfaces[1].loss[0][2]))  # z[β][α], loss[α][β]
    assert drawn.customdata[2][0] == surfaces[1].loss[0][2]
    values = [value for surface in surfaces for row in surface.loss for value in row]
    assert list(ranges)[0] == pytest.approx((math.log10(min(values)), math.log10(max(values))))
    ticks = figure.layout.scene.zaxis
    assert [10 ** tick for tick in ticks.tickvals] == pytest.approx(
        [float(label.replace(",", "")) for label in ticks.ticktext], rel=0.02)
    three = inside_figures.landscape_surfaces_figure(surfaces + surfaces[:1])  # 2×2 cells, the fourth left out
    assert len(three.data) == 3 and "scene4" not in three.layout
    contours = inside_figures.landscape_contours_figure(surfaces)
    assert [trace.type for trace in contours.data] == ["contour", "contour"]
    assert {(trace.zmin, trace.zmax) for trace in contours.data} == {(figure.data[0].cmin, figure.data[0].cmax)}
    lines = inside_figures.landscape_lines_figure(surfaces, ["resnet20", "resnet20"])
    assert len(lines.data) == 2 and lines.layout.yaxis.type == "log"
    ticks = lines.layout.yaxis.tickvals  # labelled in full, inside the drawn range
    assert [float(label.replace(",", "")) for label in lines.layout.yaxis.ticktext] == pytest.approx(ticks, rel=0.02)
    line_values = [value for surface in surfaces for value in surface.line()]
    assert len(ticks) >= 2 and min(line_values) <= ticks[0] and ticks[-1] <= max(line_values)
    responses = layer_responses(subject, probe)
    drawn = inside_figures.responses_figure([responses], ["resnet20"])
    assert len(drawn.data) == 2 and drawn.layout.yaxis.type == drawn.layout.yaxis2.type == "log"
    study = lesion_study(subject, probe, draws=1)
    assert len(inside_figures.lesion_blocks_figure([study]).data) == 2  # the removals, and the dashed baseline
    assert list(inside_figures.lesion_random_figure([study]).data[0].x) == [0, 1, 2, 3, 4]
    assert list(inside_figures.path_length_figure(4).data[0].y) == [1, 4, 6, 4, 1]
    assert len(inside_figures.branches_figure([branch_ratios(subject, probe)]).data) == 1
    assert isinstance(surfaces[0], Surface)


@pytest.mark.parametrize("low, high, labels", [
    (0.38, 16_000, ["1", "10", "100", "1,000", "10,000"]),  # the shipped surfaces: decades only
    (0.4, 30, ["0.5", "1", "2", "5", "10", "20"]),  # the shipped 1-D slices: 1-2-5
    (0.38, 0.48, ["0.38", "0.43", "0.48"]),  # a small span near a minimum: still labelled
    (6.09, 18.47, ["7", "11", "18"]),  # rounded inwards: each label is its tick's exact value
])
def test_loss_ticks_label_any_log_range(low, high, labels):
    from explorer.present.axes import log_ticks as loss_ticks
    from explorer.present.axes import tick_label as _tick_label

    ticks = loss_ticks(low, high)
    assert [_tick_label(tick) for tick in ticks] == labels
    assert [float(label.replace(",", "")) for label in labels] == pytest.approx(ticks)
    assert all(low <= tick <= high for tick in ticks)


def test_saved_surfaces_round_trip(tmp_path):
    from explorer.paper.inside import save_surface, shipped_surfaces

    surface = loss_surface(_tiny(), _probe(), grid=3, span=0.5)
    path = save_surface(surface, "python -m explorer landscape tiny --grid 3", tmp_path)
    assert json.loads(path.read_text()) == surface.to_json()
    loaded = shipped_surfaces(tmp_path)["tiny-resnet20"]
    assert loaded.loss == surface.loss and loaded.images == surface.images and loaded.seed == 0


def test_shipped_surfaces_say_how_they_were_made():
    from explorer.paper.inside import shipped_surfaces
    from explorer.paper.inside.surfaces import read_landscape_manifest

    folder = SHIPPED / "landscapes"
    surfaces = shipped_surfaces(folder)
    assert {"plain20-cifar10", "resnet20-cifar10", "plain56-cifar10", "resnet56-cifar10"} <= set(surfaces)
    for name, entry in read_landscape_manifest(folder).items():
        surface, grid = surfaces[name], entry["grid"]
        assert len(surface.alphas) == len(surface.loss) == len(surface.loss[0]) == grid == 21
        assert surface.images == entry["images"] == 64
        assert entry["command"].startswith(f"python -m explorer landscape {name} ")
        assert f"--grid {grid} " in entry["command"] and f"--images {entry['images']} " in entry["command"]
        assert {"seed", "span", "images", "data", "torch", "wall_time_s"} <= set(entry)
        corners = (surface.loss[0][0], surface.loss[0][-1], surface.loss[-1][0], surface.loss[-1][-1])
        centre = surface.loss[grid // 2][grid // 2]
        assert centre < min(corners)  # the trained weights sit low in their neighbourhood
        if get_model_spec(read_manifest(SHIPPED)[name].model).residual:  # 10-11% validation error
            assert centre < 1.0  # a trained net's loss, not a noisy handful of images (12 gave ResNet-56 1.5)


def test_block_charts_keep_network_order_across_depths():
    """ResNet-20's and ResNet-56's blocks on one axis: in network order, so each net's line
    runs left to right (plotly alone orders categories as it meets them: 56's layer1.3 came
    after 20's layer3.2)."""
    probe = _probe()
    shallow, deep = _tiny("resnet20"), _tiny("resnet56")
    expected = [f"layer{stage}.{block}" for stage in (1, 2, 3) for block in range(9)]
    branches = [branch_ratios(shallow, probe), branch_ratios(deep, probe)]
    assert list(inside_figures.branches_figure(branches).layout.xaxis.categoryarray) == expected
    studies = [lesion_study(shallow, probe, draws=1), lesion_study(deep, probe, draws=1)]
    figure = inside_figures.lesion_blocks_figure(studies)
    # Every stage has the same width whatever the depth (issue 38: the 20-layer line zig-zagged
    # across slots only the 56-layer net has): block i of n in stage s sits at s + i/n.
    shallow_x, deep_x = list(figure.data[0].x), list(figure.data[2].x)
    assert shallow_x == pytest.approx([s + i / 3 for s in (1, 2, 3) for i in range(3)])
    assert deep_x == pytest.approx([s + i / 9 for s in (1, 2, 3) for i in range(9)])
    assert shallow_x == sorted(shallow_x) and deep_x == sorted(deep_x)
    assert list(figure.layout.xaxis.ticktext) == ["layer1", "layer2", "layer3"]
    assert list(figure.data[0].text) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    # "nothing removed" is named in the legend with its error, never as labels that overlap
    assert not figure.layout.annotations
    baselines = [trace.name for trace in figure.data if trace.line.dash == "dash"]
    assert [name.split(":")[0] for name in baselines] == ["tiny-resnet20, nothing removed",
                                                          "tiny-resnet56, nothing removed"]
