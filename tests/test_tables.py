"""Display tables: no literal None, one metric per column, thousands separators."""

from explorer.paper.speed import SpeedRow
from explorer.paper.table1 import analyze, zoo_row
from explorer.present import tables


def _cells(records):
    return [value for record in records for value in record.values()]


def test_zoo_table_prints_error_not_accuracy_and_no_none():
    records = tables.zoo_table([zoo_row("resnet50"), zoo_row("resnet50_v1")])
    torchvision, paper_variant = records
    # torchvision's ResNet-50 weights: 76.13% top-1 accuracy, printed as 23.87% error beside the paper's 22.85
    assert torchvision["top-1 err % (torchvision, 1 crop)"] == "23.87"
    assert torchvision["top-1 err % (paper, 10 crops)"] == "22.85"
    assert paper_variant["top-1 err % (torchvision, 1 crop)"] == tables.MISSING  # no published weights
    assert not any("accuracy" in column or "top-1 %" in column for column in torchvision)
    assert None not in _cells(records) and "None" not in map(str, _cells(records))


def test_counts_carry_thousands_separators():
    detail = analyze("resnet18")
    stages = tables.stage_table(detail)
    assert stages[-1]["params"] == "513,000"  # fc: 512·1000 weights + 1000 biases
    assert tables.layer_table(detail)[0]["params"] == "9,408"  # conv1: 64·3·7·7
    row = SpeedRow("resnet18", "cpu", False, 1.5, 44.6, None, 1234.5, 1520.25, 8, denormals_flushed=True)
    speed = tables.speed_table([row])[0]
    assert speed["batch-1 latency (ms)"] == 1234.5 and speed["peak GPU memory (MB)"] == tables.MISSING
    assert "denormals flushed" in speed["weights"]


def test_row_height_grows_with_the_rows():
    assert tables.row_height(11) - tables.row_height(10) == 35
    assert tables.row_height(11) >= 12 * 35


def test_model_option_reads_cleanly():
    option = tables.model_option("resnet50_v1")
    assert option == "resnet50_v1 · untrained: none published"
    assert option.count("(") == 0


def test_an_untrained_models_bars_each_say_random_weights():
    from explorer.present.figures import topk_figure

    untrained = topk_figure(["cat", "dog"], [0.6, 0.4], trained=False).data[0]
    assert list(untrained.text) == ["40.0% · random weights", "60.0% · random weights"]
    trained = topk_figure(["cat", "dog"], [0.6, 0.4]).data[0]
    assert not any("random" in text for text in trained.text)
