"""Table 1 as text, per-layer accounting, and block diagrams from real modules."""

import pytest
import torch
from torch import nn

from explorer.models import build_model, get_model_spec
from explorer.paper.diagrams import block_dot, block_examples
from explorer.paper.speed import denormals_are_flushed, measure_speed
from explorer.paper.table1 import analyze, describe_modules, paper_table


def test_block_specs_are_written_like_the_paper():
    resnet18 = {row.stage: row.blocks for row in analyze("resnet18").stages}
    assert resnet18["conv1"] == "7×7, 64, stride 2"
    assert resnet18["conv2_x"] == "3×3 max pool, stride 2 → [3×3, 64; 3×3, 64] × 2"
    assert resnet18["conv5_x"] == "[3×3, 512; 3×3, 512] × 2"
    resnet152 = {row.stage: row.blocks for row in analyze("resnet152").stages}
    assert resnet152["conv4_x"] == "[1×1, 256; 3×3, 256; 1×1, 1024] × 36"
    assert resnet152["pool, fc"] == "average pool → 1000-d fc"


@pytest.mark.parametrize("name", ["resnet34", "resnet50", "vgg19"])
def test_layers_and_stages_account_for_every_parameter_and_mac(name):
    result = analyze(name)
    assert sum(row.params for row in result.stages) == result.params
    assert sum(row.macs for row in result.stages) == result.macs
    assert sum(row.params for row in result.layers) == result.params
    assert sum(row.macs for row in result.layers) == result.macs


def test_first_conv_costs_what_the_formula_says():
    # 7×7×3 weights per output value, 64 channels, 112×112 positions.
    conv1 = next(row for row in analyze("resnet18").layers if row.name == "conv1")
    assert conv1.output_shape == (64, 112, 112)
    assert conv1.macs == 7 * 7 * 3 * 64 * 112 * 112
    assert conv1.params == 7 * 7 * 3 * 64


def test_paper_table_has_one_column_per_depth():
    table = paper_table(["resnet18", "resnet50"])
    assert table["layer name"] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "pool, fc", "GMACs"]
    assert table["resnet50"][2] == "[1×1, 128; 3×3, 128; 1×1, 512] × 4"
    assert table["resnet18"][-1] == "1.81"


def test_paper_table_refuses_models_with_other_stages():
    with pytest.raises(ValueError, match="other stages"):
        paper_table(["resnet18", "vgg19"])


def test_vgg_rows_fold_repeated_convs():
    vgg = {row.stage: row.blocks for row in analyze("vgg19").stages}
    assert vgg["conv3"] == "[3×3, 256] × 4 → 2×2 max pool, stride 2"
    assert vgg["pool, fc"] == "average pool → [4096-d fc] × 2 → 1000-d fc"


def test_describe_modules_skips_layers_the_paper_leaves_implicit():
    layers = [nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Linear(8, 10)]
    assert describe_modules(layers) == "[3×3, 8] × 2 → 10-d fc"


def test_diagram_of_a_projection_block_shows_both_paths():
    model = build_model("resnet50", device="meta")
    examples = dict(block_examples(model, get_model_spec("resnet50")))
    assert list(examples) == ["layer1.0", "layer1.1"]  # layer1.0 already projects 64 → 256
    dot = block_dot(model.get_submodule("layer1.0"), "layer1.0")
    assert "downsample_0" in dot and 'label=" projection"' in dot
    assert 'xlabel="F(x) + shortcut"' in dot and "conv3" in dot
    identity = block_dot(model.get_submodule("layer1.1"), "layer1.1")
    assert 'label=" identity x"' in identity and "downsample" not in identity


def test_diagram_of_a_plain_block_has_no_addition():
    model = build_model("plain34", device="meta")
    assert [caption for _, caption in block_examples(model, get_model_spec("plain34"))][0].startswith("Plain block")
    assert "shortcut" not in block_dot(model.layer2[0], "plain")


class _RecordsDenormalMode(nn.Module):
    """A stand-in model that notes, at each forward pass, whether denormals are flushed."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 10)
        self.flushed: list[bool] = []

    def forward(self, x):
        self.flushed.append(denormals_are_flushed())
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("flush", [True, False])
def test_speed_is_timed_with_denormals_flushed_and_the_mode_restored(monkeypatch, flush):
    import explorer.paper.speed

    model = _RecordsDenormalMode()
    monkeypatch.setattr(explorer.paper.speed, "build_model", lambda name: model)
    assert not denormals_are_flushed()
    row = measure_speed(["resnet20"], torch.device("cpu"), batch_size=2, rounds=2, flush_denormals=flush).rows[0]
    assert not denormals_are_flushed()  # the caller's mode is back when the report is handed over
    assert model.flushed == [flush] * 5  # warm-up, two rounds of a batch-1 and a batch-2 pass
    assert row.denormals_flushed is flush


def test_zoo_cost_chart_keys_every_bar_colour_and_keeps_the_model_order():
    from explorer.paper.table1 import zoo_row
    from explorer.present.figures import zoo_cost_figure

    rows = [zoo_row(name) for name in ("resnet18", "plain34", "resnet50", "vgg19")]
    figure = zoo_cost_figure(rows)
    bars = {trace.name: list(trace.x) for trace in figure.data if trace.type == "bar"}
    assert bars == {"basic blocks, measured": ["resnet18"], "plain (no shortcuts), measured": ["plain34"],
                    "bottleneck blocks, measured": ["resnet50"], "VGG, measured": ["vgg19"]}
    assert list(figure.layout.xaxis.categoryarray) == ["resnet18", "plain34", "resnet50", "vgg19"]


def test_paper_table_markdown_stacks_each_block_as_the_paper_typesets_it():
    from explorer.present.tables import paper_table_markdown

    table = paper_table_markdown(paper_table(["resnet18", "resnet50"]))
    assert table["layer name"][:2] == ["conv1", "conv2_x"]  # plain cells pass through
    assert table["resnet50"][2] == (r"$\begin{bmatrix}\text{1×1, 128} \\ \text{3×3, 128} \\ \text{1×1, 512}"
                                    r"\end{bmatrix} \times 4$")
    pool, blocks = table["resnet18"][1].split("  \n")  # one line per step of the stage
    assert pool == "3×3 max pool, stride 2"
    assert blocks == r"$\begin{bmatrix}\text{3×3, 64} \\ \text{3×3, 64}\end{bmatrix} \times 2$"
    assert table["resnet18"][-1] == "1.81"


def test_speed_rounds_interleave_the_models_in_one_thread(monkeypatch):
    """Each round times every model in turn (A, B, A, B), on one torch thread, and the
    caller's thread count comes back afterwards."""
    import explorer.paper.speed

    order: list[tuple[str, int]] = []

    class Named(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name, self.fc = name, nn.Linear(3, 2)

        def forward(self, x):
            order.append((self.name, torch.get_num_threads()))
            return self.fc(x.mean(dim=(2, 3)))

    monkeypatch.setattr(explorer.paper.speed, "build_model", lambda name: Named(name))
    before = torch.get_num_threads()
    report = measure_speed(["resnet20", "resnet56"], torch.device("cpu"), batch_size=2, rounds=2)
    assert torch.get_num_threads() == before
    assert [name for name, _ in order] == ["resnet20", "resnet56"] + ["resnet20"] * 2 + ["resnet56"] * 2 + \
        ["resnet20"] * 2 + ["resnet56"] * 2
    assert {threads for _, threads in order} == {1} and report.threads == 1 and report.rounds == 2
    assert [row.name for row in report.rows] == ["resnet20", "resnet56"]
    assert report.busy_text()


def test_speed_estimate_grows_with_multiply_adds_and_rounds():
    from explorer.paper.speed import estimate_speed_seconds

    small = estimate_speed_seconds(["resnet18"], 0.1, batch_size=4, rounds=3)
    # ResNet-18: 1.8 GMACs × (1 warm-up + 3 rounds × (1 + 4 images)) × 0.1 s, plus its loading
    assert small == pytest.approx(1.8 * 16 * 0.1 + 0.2 * 1.8)
    assert estimate_speed_seconds(["resnet152"], 0.1) > estimate_speed_seconds(["resnet101"], 0.1) > small
    assert estimate_speed_seconds(["resnet18"], 0.1, rounds=6) > small
    with pytest.raises(ValueError, match="no multiply-add count"):
        estimate_speed_seconds(["resnet20"], 0.1)


def test_block_diagrams_are_drawn_at_projector_sizes():
    """Labels at least 18 pt and lines thick: Streamlit shrinks the drawing to half the page."""
    import re

    from explorer.models import build_model
    from explorer.paper.diagrams import block_dot

    dot = block_dot(build_model("resnet18").layer2[0], "first projection block")
    sizes = [float(size) for size in re.findall(r"fontsize=(\d+(?:\.\d+)?)", dot)]
    assert sizes and min(sizes) >= 16 and re.search(r"node \[[^]]*fontsize=18", dot)
    assert float(re.search(r"penwidth=([\d.]+)", dot).group(1)) >= 2


def test_a_progress_callback_cannot_change_the_timing_threads(monkeypatch):
    """A scheduled job's pace may set torch's thread count between passes (explorer.server.scheduler);
    the speed check keeps timing on the thread count it began with."""
    import explorer.paper.speed

    seen: list[int] = []

    class Counts(nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x.mean(dim=(2, 3))

    monkeypatch.setattr(explorer.paper.speed, "build_model", lambda name: Counts())
    before = torch.get_num_threads()
    measure_speed(["resnet20"], torch.device("cpu"), batch_size=2, rounds=3,
                  progress=lambda done, total: torch.set_num_threads(2))
    assert set(seen) == {1} and torch.get_num_threads() == before
