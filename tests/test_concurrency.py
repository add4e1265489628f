"""No page may break another's computation.

The app is one process serving many sessions. Here a training job runs in its thread (as
the degradation lab's does) while other threads make, many times and interleaved, every
heavy core call the pages make: block diagrams and Table 1 of several models (through the
isolation worker, as the architecture page does), classification, Grad-CAM, feature maps and
gradient norms on shared cached models (the inspect page), fine-tuning steps (the transfer
page) and the speed check. It passes only with no exception in any thread, the training
job finished, every number equal to the one computed alone, and every page's calls really
overlapping the training: each caller made a call during which the job took a training step
(its step count read before and after each call). No timing is asserted.

On the code before this test existed it failed within a second: ``torch.fx`` tracing in one
thread killed the training thread ("module is not installed as a submodule").
"""

import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from explorer.data import load_data
from explorer.data.images import sample_images
from explorer.models import build_model
from explorer.paper import diagrams, table1
from explorer.paper.features import feature_maps, image_feature_map
from explorer.paper.gradcam import compare_gradient_norms, explain
from explorer.paper.speed import measure_speed
from explorer.server.isolation import IsolationWorker
from explorer.server.jobs import TrainingJob
from explorer.server.snapshots import JobState
from explorer.store.classifiers import RecentResults, load_classifier
from explorer.training.engine import preset
from explorer.transfer.finetune import FinetuneConfig, Finetuning

SHIPPED = Path(__file__).resolve().parent.parent / "pretrained"
# Each caller makes at least 2 rounds, and goes on while training runs, up to 6 (more while
# none of its calls has yet seen the job take a step).
ROUNDS = (2, 6)


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))


@pytest.fixture(scope="module")
def worker():
    """This module's own isolation worker (the app holds one per server: explorer.ui.common)."""
    worker = IsolationWorker()
    yield worker
    worker.close()


def _repeat(calls, failures, training, rounds, overlapped):
    """Run ``calls`` round after round; record any exception instead of dying silently, and
    how many training steps the job took while each call ran (``overlapped``)."""
    done = 0
    try:
        while done < ROUNDS[0] or (training.running and (done < ROUNDS[1] or not any(overlapped))):
            for call in calls:
                before = training.snapshot().done_steps
                call()
                overlapped.append(training.snapshot().done_steps - before)
            done += 1
    except Exception as error:  # noqa: BLE001 - every failure in any thread fails the test
        failures.append(error)
    rounds.append(done)


def test_every_heavy_page_call_beside_a_training_job(shipped, worker):
    resnet20 = load_classifier("resnet20-cifar10")  # shared, as ui's st.cache_resource shares it
    plain20 = load_classifier("plain20-cifar10")
    # Remember nothing, so that every call runs the model and the forward passes really overlap.
    resnet20.probabilities_of = resnet20.explanations = RecentResults(0)
    image = Image.open(sample_images()["horse"]).convert("RGB")
    alone = {"predict": resnet20.predict([image])[0][0].label,
             "macs": table1.analyze("resnet50").macs,
             "features": feature_maps(resnet20.model, resnet20.prepare([image]), ["layer2.1"])["layer2.1"]}

    finetune_data = load_data("synthetic:300", image_size=32)
    results: dict[str, list] = {"macs": [], "predict": [], "features": [], "diagrams": []}

    def architecture_page():
        for name in ("resnet18", "resnet50", "plain34", "resnet20"):
            results["diagrams"].append((name, worker.run(diagrams.block_diagrams, name)))
        worker.run(table1.paper_table, ["resnet18", "resnet34"])
        results["macs"].append(worker.run(table1.analyze, "resnet50").macs)

    def inspect_page():
        results["predict"].append(resnet20.predict([image])[0][0].label)
        explain(resnet20, image)
        results["features"].append(image_feature_map(resnet20, image, "layer2.1"))
        compare_gradient_norms([resnet20, plain20], image, "horse")

    def transfer_page():
        config = FinetuneConfig(backbone="resnet20-cifar10", data="synthetic:300", epochs=1, batch_size=64,
                                cache_features=False)
        for _ in Finetuning(config, finetune_data).steps():
            pass

    def speed_check():
        measure_speed(["resnet18"], torch.device("cpu"), batch_size=2, image_size=64, rounds=1)
        build_model("resnet20", device="meta")

    training = TrainingJob(preset("demo", models=("plain20", "resnet20"), data="synthetic:512", steps=120,
                                  width=4, image_size=16, val_every=40, val_limit=128),
                           device="cpu", name="stress")
    failures: list[Exception] = []
    rounds: list[int] = []
    callers = [[architecture_page], [inspect_page], [inspect_page], [transfer_page, speed_check]]
    overlapped: list[list[int]] = [[] for _ in callers]  # per caller: the steps taken during each call
    threads = [threading.Thread(target=_repeat, args=(calls, failures, training, rounds, steps))
               for calls, steps in zip(callers, overlapped)]
    training.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    training.join(timeout=600)

    snapshot = training.snapshot()
    assert not failures, [f"{type(e).__name__}: {e}" for e in failures]
    assert snapshot.error is None and snapshot.state == JobState.FINISHED, snapshot.error
    assert snapshot.done_steps == 120
    assert len(rounds) == len(callers) and min(rounds) >= ROUNDS[0]
    # Every page's calls really ran beside the training: the job stepped while one was running.
    assert all(max(steps, default=0) > 0 for steps in overlapped), overlapped
    # Numbers made beside the others equal the ones made alone.
    assert set(results["predict"]) == {alone["predict"]}
    assert set(results["macs"]) == {alone["macs"]}
    assert all(torch.equal(features, alone["features"][0]) for features in results["features"])
    drawn_alone = {name: diagrams.block_diagrams(name) for name, _ in results["diagrams"]}
    assert all(drawn == drawn_alone[name] for name, drawn in results["diagrams"])
    assert [len(drawn_alone[n]) for n in ("resnet18", "resnet50", "plain34")] == [2, 2, 1]
    # Nothing is left hooked onto the shared models.
    for classifier in (resnet20, plain20):
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in classifier.model.modules())


def test_the_isolation_worker_reports_errors_and_survives_them(worker):
    with pytest.raises(ValueError, match="Unknown model"):
        worker.run(table1.analyze, "resnet5O")
    assert worker.run(table1.analyze, "resnet18").params == 11_689_512
    # The results equal the in-process ones, spec included (it travels by name).
    assert worker.run(table1.analyze, "resnet20") == table1.analyze("resnet20")


def test_an_idle_isolation_worker_can_be_stopped_and_restarts(worker):
    worker.run(table1.analyze, "resnet18")
    assert worker.running
    assert worker.shutdown_if_idle()
    assert not worker.running
    assert len(worker.run(diagrams.block_diagrams, "resnet18")) == 2  # a new worker answers
    assert worker.running
