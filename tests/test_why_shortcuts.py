"""The "Why shortcuts work" page: each view computes on the shipped checkpoints, with a verdict."""

import json
import time
from pathlib import Path

import pytest
from apptest_helpers import open_page

from explorer.paper.inside.responses import LayerResponse, Responses
from explorer.paper.inside.verdicts import responses_verdict

PAGE = "../pages/why_shortcuts.py"
SHIPPED = Path(__file__).resolve().parents[1] / "pretrained"


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))


def _on_samples(at, nets):
    at.multiselect(key="inside.nets").set_value(nets)
    at.selectbox(key="inside.data").set_value("samples")
    at.number_input(key="inside.images").set_value(10)
    return at.run()


def computed(at, view: str, until, timeout_s: float = 120):
    """Press the view's button, then rerun the page until ``until(at)``: the view computes as a
    background job (explorer.ui.inside), and a fragment's run_every never fires in AppTest."""
    at.button(key=f"inside.go_{view}").click().run()
    deadline = time.monotonic() + timeout_s
    while not until(at):
        assert not at.exception, [e.message for e in at.exception]
        assert time.monotonic() < deadline, "the view never finished"
        time.sleep(0.2)
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def charts(at) -> list[str]:
    return [chart.proto.spec for chart in at.get("plotly_chart")]


def test_page_opens_with_the_shipped_nets_and_the_path_counts(shipped):
    at = open_page(PAGE)
    assert not at.exception
    assert set(at.multiselect(key="inside.nets").value) == {
        "plain20-cifar10", "plain56-cifar10", "resnet20-cifar10", "resnet56-cifar10"}
    assert "2ⁿ paths (134,217,728 for n = 27)" in " ".join(c.value for c in at.caption)


def test_responses_view_draws_fig7_and_states_a_verdict(shipped):
    at = _on_samples(open_page(PAGE), ["plain20-cifar10", "resnet20-cifar10"])
    computed(at, "responses", lambda at: at.markdown)
    assert not at.error
    assert "ResNet-20's responses" in " ".join(m.value for m in at.markdown)
    figure = at.get("plotly_chart")[0].proto.spec
    assert "plain20-cifar10" in figure and "resnet20-cifar10" in figure


def computed_here(at) -> int:
    """Captions of results computed on this machine (the precomputed ones say "Precomputed on")."""
    return sum(caption.value.startswith("Computed here on the 10 sample photos") for caption in at.caption)


def test_branches_and_lesion_views_compute_on_samples(shipped):
    at = _on_samples(open_page(PAGE), ["plain20-cifar10", "resnet20-cifar10"])
    assert computed_here(at) == 0  # the precomputed results, shown at once
    computed(at, "branches", lambda at: computed_here(at) == 1)
    computed(at, "lesion", lambda at: computed_here(at) == 2, timeout_s=300)
    assert not at.error
    specs = " ".join(charts(at))
    assert "layer1.0" in specs  # a block of resnet20 on the branch and lesion charts


def test_an_impossible_net_gets_a_message_not_a_traceback(shipped, monkeypatch):
    from explorer.ui import inside

    monkeypatch.setattr(inside, "shipped_nets", lambda: {"resnet50": "resnet50"})  # no ImageNet weights here
    at = computed(open_page(PAGE), "responses", lambda at: at.error)
    assert "resnet50" in at.error[0].value


def _responses(model, stds):
    return Responses(model, tuple(LayerResponse(f"l{i}", s) for i, s in enumerate(stds)), 10, "test")


def test_verdict_reads_the_paper_claims_from_the_numbers():
    results = [_responses("p20", [1.0, 1.0]), _responses("r20", [0.5, 0.7]), _responses("r56", [0.4, 0.4])]
    verdict = responses_verdict(results, ["plain20", "resnet20", "resnet56"])
    assert "ResNet-20's responses (mean std 0.600) are smaller than plain-20's (1.000): as the paper" in verdict
    assert "ResNet-56 (0.400) is below ResNet-20 (0.600)" in verdict
    flipped = responses_verdict([_responses("p20", [0.1]), _responses("r20", [0.5])], ["plain20", "resnet20"])
    assert "not smaller" in flipped and "unlike the paper" in flipped


def test_the_surface_view_shows_the_shipped_surfaces_and_computes_ones_own(shipped):
    at = _on_samples(open_page(PAGE), ["resnet20-cifar10"])
    specs = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any('"type":"surface"' in spec.replace(" ", "") for spec in specs)  # precomputed, shown at once
    at.slider(key="inside.grid").set_value(3)
    computed(at, "landscape", lambda at: len(charts(at)) > len(specs))
    assert not at.error
    own = [json.loads(chart.proto.spec)["data"][0]["type"] for chart in at.get("plotly_chart")[len(specs):]]
    assert own == ["surface", "contour"]  # one's own surface, in 3-D and from above


def test_progress_line_says_how_long_the_current_net_has_left():
    from explorer.paper.inside import progress_line

    assert progress_line("lesion", "resnet56", 2, 4, 0.25, 10.0) == \
        "lesion: resnet56 (2 of 4), 25% · about 30 s left for it"
    assert progress_line("lesion", "resnet56", 2, 4, 0.5, 300.0).endswith("about 5 min left for it")
    # no guess from a first batch or a first instant
    assert progress_line("responses", "plain20", 1, 1, 0.01, 5.0) == "responses: plain20 (1 of 1), 1%"
    assert progress_line("responses", "plain20", 1, 1, 0.5, 0.2) == "responses: plain20 (1 of 1), 50%"
    assert progress_line("lesion", "resnet56", 4, 4, 1.0, 90.0) == "lesion: resnet56 (4 of 4), 100%"  # done
    # paced from the first report, so the seconds spent loading the net and its images before
    # it do not count: 10 s for 25% → 50% leaves 20 s for the last 50%, not 10 / 0.5 × 0.5
    assert progress_line("lesion", "resnet56", 2, 4, 0.5, 10.0, started_at=0.25).endswith("about 20 s left for it")
    assert progress_line("lesion", "resnet56", 2, 4, 0.26, 10.0, started_at=0.25) == "lesion: resnet56 (2 of 4), 26%"
