"""Issue 38, "Why shortcuts work" on a fresh laptop: real images without a CIFAR-10 folder, the
results shipped precomputed, the lesion study sharing its prefixes, every wait announced."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
from apptest_helpers import open_page
from test_inside import CIFAR_CLASSES, _randomise_batch_norm, _tiny

from explorer.models import build_model
from explorer.paper.inside import InsideError, Probe, lesion_study, load_probe, load_subject, prefix
from explorer.paper.inside.lesion import lesion_passes, lesions_of, removable_blocks
from explorer.paper.inside.precomputed import VIEWS, read_results_manifest, shipped_results
from explorer.paper.inside.probes import balanced, probe_data
from explorer.server import inside_estimates as estimates
from explorer.store.checkpoints import read_manifest

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained"
PAGE = "../pages/why_shortcuts.py"
NETS = ("plain20-cifar10", "plain56-cifar10", "resnet20-cifar10", "resnet56-cifar10")
EVAL_ABOUT = "CIFAR-10 validation images shipped with the app ({} a class), never trained on by the shipped models"


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))


def _fresh_laptop(subject):
    """The subject as on a laptop without CIFAR-10: its training folder is not there."""
    return dataclasses.replace(subject, training_data="folder:/nowhere/cifar10/train")


# --- the probe's images ----------------------------------------------------------------------


def test_without_a_cifar_folder_the_default_is_a_balanced_part_of_the_eval_pack(shipped):
    subject = _fresh_laptop(load_subject("resnet20-cifar10"))
    chosen = probe_data(None, subject.training_data)
    assert (chosen.data, chosen.available) == ("pack:cifar10-eval", 2000)
    probe = load_probe(subject, None, 100)
    assert probe.count == 100 and probe.source == "100 of the 2,000 " + EVAL_ABOUT.format(10)
    assert torch.bincount(probe.labels, minlength=10).tolist() == [10] * 10  # the pack is ordered by class
    whole = load_probe(subject, "pack:cifar10-eval", 5000)  # asks for more than there are: all, and says so
    assert whole.count == 2000 and whole.source == "the 2,000 " + EVAL_ABOUT.format(200)


def test_no_shipped_images_is_a_message_never_the_sample_photos():
    subject = dataclasses.replace(_tiny(), training_data=None)  # EXPLORER_PRETRAINED_DIR is empty here
    with pytest.raises(InsideError, match="pack:cifar10-eval are not here"):
        load_probe(subject, None, 10)
    assert load_probe(subject, "samples", 10).source.startswith("the 10 sample photos")  # only when asked


def test_a_balanced_subset_takes_each_class_first_ones_in_order():
    labels = torch.tensor([0] * 5 + [1] * 5 + [2] * 5)
    assert balanced(labels, 7).tolist() == [0, 1, 2, 5, 6, 10, 11]
    assert torch.bincount(labels[balanced(labels, 14)]).tolist() == [5, 5, 4]


# --- the lesion study reuses its prefixes -------------------------------------------------------


def _labelled_by_the_model(subject, count: int = 24) -> Probe:
    """Random images labelled with the intact model's answers: 0% error, so every lesion's
    error says how many answers it changed (on random labels all errors sit near 90%)."""
    images = torch.randn(count, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        labels = subject.model(images).argmax(dim=1)
    return Probe(source="random", images=images, labels=labels, classes=CIFAR_CLASSES)


@pytest.mark.parametrize("name", ["resnet20", "plain20"])
def test_prefix_reuse_gives_exactly_the_naive_sweep(name):
    torch.manual_seed(1)  # the tiny net's weights: not whatever earlier tests left in the RNG
    subject = _tiny(name)
    subject.model.eval()  # trained-looking: BN from its running statistics
    probe = _labelled_by_the_model(subject)
    reused = lesion_study(subject, probe, draws=2, seed=4)
    assert reused == lesion_study(subject, probe, draws=2, seed=4, reuse=False)
    changed = [b.error for b in reused.blocks] + [r.error_max for r in reused.random]
    assert reused.baseline_error == 0.0 and max(changed) > 0.1  # the lesions do change answers


def test_prefix_reuse_equals_the_naive_sweep_on_a_shipped_checkpoint(shipped):
    subject = load_subject("resnet20-cifar10")
    probe = load_probe(subject, "pack:cifar10-eval", 20)
    assert lesion_study(subject, probe, draws=1) == lesion_study(subject, probe, draws=1, reuse=False)


def test_the_estimated_passes_are_the_passes_run():
    """lesion_passes (the page's estimate) counts the blocks the study actually runs: the
    model's own check pass, then one run of each trie node's block (removed ones cost 0.1)."""
    subject = _tiny("resnet20")
    subject.model.eval()
    probe = _labelled_by_the_model(subject)
    links = prefix.chain(subject.model, subject.spec)
    calls = []
    handles = [module.register_forward_hook(lambda *args: calls.append(1)) for module in links.modules]
    try:
        lesion_study(subject, probe, draws=2, seed=4)
    finally:
        for handle in handles:
            handle.remove()
    candidates = removable_blocks(subject.model, subject.spec)
    lesions, _ = lesions_of(candidates, 2, 4)
    trie = prefix.plan(lesions, 9, links.removed_cost())  # resnet20: candidate i is block i
    kept = _kept_runs(trie.root)
    assert len(calls) == 9 + 2 + kept  # the check pass and its 2 kinds of shortcut, then each kept node once
    removed = trie.cost() - 1 - kept - prefix.HEAD_COST * _leaves(trie.root)
    assert removed == pytest.approx(prefix.REMOVED_COST * _removed_runs(trie.root))
    assert lesion_passes(subject, 2, 4, batches=1) == pytest.approx(1 + trie.cost() / (10 + prefix.HEAD_COST))
    assert trie.fraction() < 0.6  # the naive sweep runs all 9 blocks for every one of the 1 + 9 + 8 lesions
    assert trie.naive_cost() == len(lesions) * (10 + prefix.HEAD_COST)


def _kept_runs(node) -> int:
    return (node.kept is not None) + sum(_kept_runs(c) for c in (node.removed, node.kept) if c is not None)


def _removed_runs(node) -> int:
    return (node.removed is not None) + sum(_removed_runs(c) for c in (node.removed, node.kept) if c is not None)


def _leaves(node) -> int:
    children = [c for c in (node.removed, node.kept) if c is not None]
    return sum(_leaves(c) for c in children) if children else 1


def test_a_model_that_is_not_a_chain_of_blocks_runs_the_naive_sweep(caplog):
    model = build_model("resnet20", width=2)
    _randomise_batch_norm(model)
    model.forward = lambda x: model.fc(model.avgpool(model.layer3(model.layer2(model.layer1(
        model.relu(model.bn1(model.conv1(x))))))).flatten(1)) * 2.0  # not the chain's head any more
    subject = dataclasses.replace(_tiny(), model=model.eval())
    probe = _labelled_by_the_model(subject)
    assert lesion_study(subject, probe, draws=1) == lesion_study(subject, probe, draws=1, reuse=False)
    assert "runs the naive sweep" in caplog.text


# --- estimates before the button ------------------------------------------------------------------


def test_calibration_is_kept_until_it_is_old(shipped, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(estimates, "_PACES", {})
    first = estimates.seconds_per_image("resnet20-cifar10", clock=lambda: now[0])
    monkeypatch.setitem(estimates._PACES, "resnet20-cifar10", (0.5, now[0]))
    now[0] += estimates.RECALIBRATE_S - 1
    assert estimates.seconds_per_image("resnet20-cifar10", clock=lambda: now[0]) == 0.5  # not measured again
    now[0] += 2
    assert estimates.seconds_per_image("resnet20-cifar10", clock=lambda: now[0]) != 0.5
    assert first > 0


def test_an_estimate_is_the_pace_times_the_views_passes(shipped, monkeypatch):
    monkeypatch.setattr(estimates, "seconds_per_image", lambda name, clock=None: 0.01)
    assert estimates.estimate_s("landscape", ["resnet20-cifar10"], 32, (7, 1.0), "samples") == \
        pytest.approx(0.01 * 49 * 32 * estimates.VIEW_FACTOR["landscape"])
    two = estimates.estimate_s("responses", ["plain20-cifar10", "resnet20-cifar10"], 100, (), "pack:cifar10-eval")
    assert two == pytest.approx(2 * (0.01 * 100 * estimates.VIEW_FACTOR["responses"] + 2000 * estimates.DECODE_S))
    lesion = estimates.estimate_s("lesion", ["resnet56-cifar10"], 200, (), "samples")
    passes = lesion_passes(load_subject("resnet56-cifar10"), 3, 0, batches=1)
    assert lesion == pytest.approx(0.01 * 200 * passes) and 25 < passes < 40  # the naive sweep: 68 passes


# --- the precomputed results -------------------------------------------------------------------


def test_precomputed_results_load_and_match_their_checkpoints(shipped):
    folder, checkpoints = SHIPPED / "inside", read_manifest(SHIPPED)
    entries = read_results_manifest(folder)
    for view in VIEWS:
        results = shipped_results(view, folder)
        assert set(results) == set(NETS)
        for name, result in results.items():
            entry = entries[f"{view}/{name}"]
            digest = hashlib.sha256((SHIPPED / checkpoints[name].file).read_bytes()).hexdigest()
            assert entry["checkpoint_sha256"] == checkpoints[name].sha256 == digest
            assert result.images == entry["images"] == 2000 and result.source == "the 2,000 " + EVAL_ABOUT.format(200)
            assert entry["command"].startswith(f"python -m explorer {view} {name} --data pack:cifar10-eval ")
            assert {"machine", "wall_time_s", "seed", "draws", "precision", "torch"} <= set(entry)
            assert "/work/" not in entry["data"]  # nothing of the machine that computed it
    lesions = shipped_results("lesion", folder)
    resnet56 = lesions["resnet56-cifar10"]
    assert abs(resnet56.baseline_error - checkpoints["resnet56-cifar10"].val_error) <= 0.02  # 10.70% on the 5k
    assert len(resnet56.blocks) == 27 and [r.removed for r in resnet56.random] == list(range(1, 14))
    assert resnet56.random[-1].error_mean > resnet56.random[0].error_mean  # more removed, more wrong


def test_a_result_of_other_weights_is_not_shown(shipped, tmp_path):
    import json
    import shutil

    shutil.copytree(SHIPPED / "inside", tmp_path / "inside")
    manifest = json.loads((tmp_path / "inside" / "manifest.json").read_text())
    manifest["results"]["lesion/resnet56-cifar10"]["checkpoint_sha256"] = "0" * 64
    (tmp_path / "inside" / "manifest.json").write_text(json.dumps(manifest))
    assert set(shipped_results("lesion", tmp_path / "inside")) == set(NETS) - {"resnet56-cifar10"}


# --- the page ------------------------------------------------------------------------------------


def _texts(at, kind: str) -> str:
    return " ".join(element.value for element in at.get(kind))


def test_the_page_shows_precomputed_results_at_once_then_recomputes_on_request(shipped, monkeypatch):
    from explorer.ui import inside_choices
    from explorer.ui.job_panel import class_server

    monkeypatch.setattr(inside_choices, "_own", lambda names: None)  # a laptop without CIFAR-10
    queue = class_server().scheduler
    other_tab = queue.enqueue("another tab's run", session="another tab")  # holds the one slot
    try:
        at = open_page(PAGE)
        captions = _texts(at, "caption")
        assert "Precomputed on the 2,000 " + EVAL_ABOUT.format(200) in captions
        assert captions.count("takes about") == 4  # responses, branches, lesion, surface: before any press
        specs = " ".join(chart.proto.spec for chart in at.get("plotly_chart"))
        assert "nothing removed" in specs and "resnet56-cifar10" in specs  # the lesion study, at once
        assert "ResNet-56" in _texts(at, "markdown")  # Fig. 7's verdict, at once
        assert queue.waiting_jobs() == [] and queue.running_jobs() == ["another tab's run"]
        assert at.selectbox(key="inside.data").value == "pack:cifar10-eval"
        assert at.number_input(key="inside.lesion_images").value == 200
        at.button(key="inside.go_lesion").click().run()
        assert queue.waiting_jobs() == ["compute-lesion"]  # queued behind the other tab's run
        assert "nothing removed" not in " ".join(chart.proto.spec for chart in at.get("plotly_chart"))
    finally:
        class_server().sessions.release_all()  # the queued study leaves with its session, then the slot frees
        other_tab.done()


def test_how_many_never_claims_more_images_than_the_source_has(shipped, monkeypatch):
    from explorer.ui import inside_choices

    monkeypatch.setattr(inside_choices, "_own", lambda names: None)
    at = open_page(PAGE)
    assert at.number_input(key="inside.images").proto.max == 2000
    at.selectbox(key="inside.data").set_value("samples").run()
    assert at.number_input(key="inside.images").proto.max == 10
    assert at.number_input(key="inside.images").value == 10  # 1,000 asked: the 10 there are
    assert at.number_input(key="inside.lesion_images").proto.max == 10
    assert not at.exception


def test_saved_results_round_trip_and_a_file_outside_the_folder_is_skipped(shipped, tmp_path):
    import json

    from explorer.paper.inside import branch_ratios
    from explorer.paper.inside.precomputed import save_result

    subject = load_subject("resnet20-cifar10")
    probe = load_probe(subject, "pack:cifar10-eval", 10)
    study, branches = lesion_study(subject, probe, draws=1), branch_ratios(subject, probe)
    path = save_result("lesion", study, command="python -m explorer lesion resnet20-cifar10", seconds=1.0,
                       machine="a laptop", draws=1, folder=tmp_path)
    save_result("branches", branches, command="python -m explorer branches resnet20-cifar10", seconds=0.5,
                machine="a laptop", folder=tmp_path)
    assert path.stat().st_mode & 0o777 == 0o644
    assert shipped_results("lesion", tmp_path) == {"resnet20-cifar10": study}
    assert shipped_results("branches", tmp_path) == {"resnet20-cifar10": branches}
    raw = json.loads((tmp_path / "manifest.json").read_text())
    raw["results"]["lesion/resnet20-cifar10"]["file"] = "../../etc/passwd"
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    assert shipped_results("lesion", tmp_path) == {} and len(shipped_results("branches", tmp_path)) == 1
