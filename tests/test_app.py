"""Every page opens in AppTest without an exception, and shows what it promises."""

import os
import time
from pathlib import Path

import pytest
from apptest_helpers import open_page

from explorer import navigation
from explorer.devices import available_devices
from explorer.models import list_models
from explorer.store.weights import weights_filename

PAGES = [page.path for page in navigation.PAGES]  # every page the app navigates, none typed by hand


def test_page_table_names_every_page_file():
    on_disk = {f"../pages/{path.name}" for path in (Path(__file__).parent.parent / "pages").glob("*.py")}
    assert set(PAGES) == on_disk


@pytest.mark.parametrize("page", PAGES)
def test_page_opens_without_exception(page):
    at = open_page(page)
    assert at.title and at.sidebar.selectbox[0].label == "Device"
    assert at.sidebar.selectbox[0].value == available_devices()[0]  # the best device by default


def test_architecture_page_without_weights_labels_models_untrained():
    at = open_page("../pages/architecture.py")
    banner = at.warning[0].body
    assert "these models are untrained" in banner
    assert "python -m explorer weights download resnet18 resnet34 resnet50 resnet101 resnet152 vgg19" in banner
    assert os.environ["EXPLORER_PRETRAINED_DIR"] in banner
    zoo = at.dataframe[0].value
    assert set(zoo["weights here"]) == {"not downloaded", "none published"}
    assert len(zoo) == 11  # all rows, shown without an inner scrollbar (height from tables.row_height)
    assert zoo.set_index("model").loc["resnet152", "params (M)"] == pytest.approx(60.19)
    cifar = at.dataframe[1].value.set_index("model")
    assert cifar.loc["resnet56", "params (M)"] == pytest.approx(0.853) and cifar.loc["resnet56", "params (M, Table 6)"] == "0.85"
    table_1 = at.table[0].value  # a static, wrapping table: five depths fit the page (Table 1's layout)
    assert list(table_1.index[:2]) == ["conv1", "conv2_x"]
    assert list(table_1["output size"][:5]) == ["112×112", "56×56", "28×28", "14×14", "7×7"]
    assert table_1.loc["conv2_x", "resnet18"] == ("3×3 max pool, stride 2  \n"
                                      r"$\begin{bmatrix}\text{3×3, 64} \\ \text{3×3, 64}\end{bmatrix} \times 2$")
    assert len(at.get("graphviz_chart")) == 2  # identity and projection blocks of resnet50


def test_architecture_page_with_weights_present_drops_the_banner():
    folder = Path(os.environ["EXPLORER_PRETRAINED_DIR"])
    folder.mkdir(parents=True)
    for spec in list_models("imagenet"):
        if spec.weights is not None:
            (folder / weights_filename(spec.weights)).write_bytes(b"")
    at = open_page("../pages/architecture.py")
    assert not at.warning
    assert at.dataframe[0].value.set_index("model").loc["resnet50", "weights here"] == "ImageNet ✓"


def test_choosing_a_cifar_net_draws_its_zero_padding_and_identity_blocks():
    at = open_page("../pages/architecture.py")
    at.selectbox[0].set_value("resnet20").run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Zero-padding shortcut (option A)" in captions and "Identity shortcut" in captions
    assert len(at.get("graphviz_chart")) == 2


def test_choosing_a_plain_net_draws_a_block_without_shortcut():
    at = open_page("../pages/architecture.py")
    at.selectbox[0].set_value("plain34").run()
    assert not at.exception
    assert "Plain block" in " ".join(c.value for c in at.caption)
    assert "F(x) + shortcut" not in at.get("graphviz_chart")[0].proto.spec


def test_speed_button_loads_every_depth_and_labels_them_untrained(monkeypatch):
    import functools

    from explorer.paper import speed

    # 64×64 inputs: the page's flow and table at a fifth of the time (timings are tested in test_core)
    monkeypatch.setattr(speed, "measure_speed", functools.partial(speed.measure_speed, image_size=64))
    at = open_page("../pages/architecture.py")
    at.select_slider[0].set_value(1).run()
    assert any(c.value.startswith("Takes about ") for c in at.caption)  # announced before the button
    at.button[0].click().run(timeout=300)
    assert not at.exception
    # It runs as the session's background job, through the server's queue (issue 37): poll it
    # (run_every fragments never fire in AppTest).
    deadline = time.monotonic() + 240
    while not at.dataframe[-1:] or "batch-1 latency (ms)" not in at.dataframe[-1].value:
        assert time.monotonic() < deadline, "the speed check did not finish"
        time.sleep(0.5)
        at.run(timeout=60)
        assert not at.exception
    assert any("Medians of 3 rounds" in c.value and "1 torch thread," in c.value for c in at.caption)
    speed = at.dataframe[-1].value
    assert list(speed["model"]) == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert set(speed["weights"]) == {"untrained (random init, denormals flushed)"}
    assert (speed["batch-1 latency (ms)"] > 0).all()


@pytest.mark.parametrize("page", ["../pages/inspect_image.py", "../pages/transfer.py", "../pages/architecture.py"])
def test_a_broken_manifest_is_reported_not_raised(page, no_imagenet_weights):
    folder = no_imagenet_weights / "pretrained"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text("{not json")
    at = open_page(page)
    assert not at.exception
    if page != "../pages/architecture.py":
        assert any("manifest.json" in error.value for error in at.error)


def test_an_unexpected_error_shows_a_short_message_and_a_report_not_a_traceback(monkeypatch):
    from explorer.present import figures

    def broken(*_args, **_kwargs):
        raise RuntimeError("the cost figure broke\nsecond line of detail")

    monkeypatch.setattr(figures, "zoo_cost_figure", broken)
    monkeypatch.delenv("EXPLORER_RAISE_ERRORS")  # as on a real server
    at = open_page("../pages/architecture.py")
    assert not at.exception
    message = at.error[0].value
    assert "RuntimeError" in message and "the cost figure broke" in message and "second line" not in message
    report = next(e for e in at.expander if e.label == "Report this problem")
    assert "Traceback" in report.code[0].value and "zoo_cost_figure" in report.code[0].value
    assert at.dataframe  # what the page drew before the error is still there
