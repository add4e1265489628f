"""Issue 37, "The queue is not fair" and "Finished jobs keep their data": one job per browser
session, a queue of bounded length served round-robin over clients, a time limit per job,
the "Why shortcuts work" computations scheduled and bounded, and a finished job's data set let go."""

import gc
import time
import weakref
from pathlib import Path

import pytest
import torch
from apptest_helpers import open_page

from explorer.data import load_data
from explorer.server.compute_jobs import ComputeJob
from explorer.server.estimates import estimate_run
from explorer.server.jobs import TrainingJob
from explorer.server.scheduler import ClientBusy, QueueFull, Scheduler, SessionBusy
from explorer.server.sessions import SessionResources
from explorer.settings import JOB_SECONDS, MAX_JOBS_ENV, PROBE_IMAGES, QUEUE_LENGTH
from explorer.training.engine import preset
from explorer.ui.job_panel import class_server

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained"
WHY = "../pages/why_shortcuts.py"
LAB = "../pages/degradation.py"


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _busy(progress):
    """A computation that runs until it is stopped (Stop or the time limit raise from progress)."""
    while True:
        progress(0.5)
        time.sleep(0.01)


def _tiny_run(steps: int):
    return preset("demo", models=("resnet20",), data="synthetic:40", steps=steps, width=2, image_size=8,
                  batch_size=8, val_every=steps, val_limit=10, model_threads=1)


def _poll(at, until, timeout_s=60.0):
    """Rerun the page until ``until(at)``: run_every fragments never fire in AppTest."""
    deadline = time.monotonic() + timeout_s
    while True:
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        if until(at):
            return at
        assert time.monotonic() < deadline, "the page never reached the expected state"
        time.sleep(0.2)


def _texts(at, kind: str) -> str:
    return " ".join(element.value for element in getattr(at, kind))


# --- one job per session, a bounded queue -------------------------------------------------


def test_a_session_gets_one_job_and_a_second_start_is_refused_with_nothing_queued():
    queue = Scheduler(max_jobs=1, cores=2, nice=0, per_session=1, measure_load=False)
    lab = queue.enqueue("train-demo", session="tab-1")
    with pytest.raises(SessionBusy, match=r"already has 1 job running or waiting \(train-demo\).*"
                                          "EXPLORER_JOBS_PER_SESSION"):
        queue.enqueue("finetune-resnet20", session="tab-1")  # a fine-tune counts with the lab run
    assert queue.waiting_jobs() == [] and queue.running_jobs() == ["train-demo"]
    other = queue.enqueue("their run", session="tab-2")  # another session is not affected
    lab.done()
    assert other.state == "running"
    queue.enqueue("next", session="tab-1")  # its job has ended: the session may start again


def test_a_second_start_in_the_session_names_the_job_and_replaces_it_only_when_asked():
    from explorer.ui.job_panel import JobSlot

    resources = SessionResources()
    inside, lab = JobSlot(resources, "inside"), JobSlot(resources, "lab")
    first = ComputeJob("lesion", [("resnet56", _busy)], kind="the lesion study computation (Why shortcuts work)")
    inside.start(first)
    _until(lambda: first.snapshot().line is not None)
    second = ComputeJob("responses", [("resnet20", lambda progress: "done")])
    with pytest.raises(SessionBusy, match=r"the lesion study computation \(Why shortcuts work\) going: "
                                          r"lesion: resnet56 \(1 of 1\), 50%.*stop it to start this one"):
        lab.start(second)
    assert first.running and resources.job("lab") is None  # nothing replaced, nothing started
    lab.start(second, replace=True)  # "Stop it and start the new one"
    second.join(timeout=30)
    assert not first.running and first.snapshot().state == "stopped"
    assert second.snapshot().results == {"resnet20": "done"}
    resources.release(background=False)


def test_a_full_queue_refuses_a_start_and_says_when_to_try_again():
    queue = Scheduler(max_jobs=1, cores=2, nice=0, queue_length=2, time_limit_s=1800, measure_load=False)
    running = queue.enqueue("running", session="a")
    running.report(eta_s=125.0)
    queue.enqueue("waiting 1", session="b")
    queue.enqueue("waiting 2", session="c")
    with pytest.raises(QueueFull, match=r"The queue is full \(2 waiting, at most 2: EXPLORER_QUEUE_LENGTH\); "
                                        r"try again in about 2 min\. Nothing was started\."):
        queue.enqueue("one too many", session="d")
    assert queue.waiting_jobs() == ["waiting 1", "waiting 2"]
    running.report(eta_s=None)  # no estimate of its own: the time limit still bounds the wait
    with pytest.raises(QueueFull, match="try again in about 30 min"):
        queue.enqueue("one too many", session="d")


def test_one_client_cannot_fill_the_queue_with_its_tabs():
    queue = Scheduler(max_jobs=1, cores=2, nice=0, per_client=3, measure_load=False)
    for tab in range(3):
        queue.enqueue(f"x{tab}", session=f"x-tab-{tab}", client="address:10.0.0.7")
    with pytest.raises(ClientBusy, match="EXPLORER_JOBS_PER_CLIENT"):
        queue.enqueue("x3", session="x-tab-3", client="address:10.0.0.7")
    queue.enqueue("y", session="y-tab", client="address:10.0.0.8")  # another computer still gets in


def test_the_lab_page_says_the_queue_is_full_and_starts_nothing(monkeypatch):
    monkeypatch.setenv(MAX_JOBS_ENV, "1")
    monkeypatch.setenv(QUEUE_LENGTH.env, "1")
    queue = class_server().scheduler  # the app's, made on first use under these settings
    assert (queue.max_jobs, queue.rules.queue_length) == (1, 1)
    queue.enqueue("another tab's run", session="another tab")
    queue.enqueue("a third tab's run", session="a third tab")
    at = open_page(LAB)
    next(b for b in at.button if b.label.startswith("▶ Start the class demo")).click().run()
    assert "The queue is full (1 waiting" in _texts(at, "warning")
    assert queue.waiting_jobs() == ["a third tab's run"]
    assert all(not b.disabled for b in at.button if b.label.startswith("▶ Start"))  # nothing started


# --- round-robin over clients --------------------------------------------------------------


def test_a_client_with_twenty_waiting_jobs_lets_another_clients_one_job_in_after_at_most_one():
    queue = Scheduler(max_jobs=1, cores=2, nice=0, per_client=100, measure_load=False)
    x = [queue.enqueue(f"x{i}", session=f"x-tab-{i}", client="X") for i in range(21)]  # 1 running, 20 waiting
    y = queue.enqueue("y", session="y-tab", client="Y")
    assert y.position == 1  # X already holds the slot: Y's first job is ahead of X's second
    granted = []
    while y.state != "running":
        running = [t for t in x if t.state == "running"]
        running[0].done()
        granted += [t.job_id for t in x if t.state == "running"]
    assert len(granted) <= 1
    # A latecomer joins the round being served: X has had its turn in it, so Z goes next.
    z = queue.enqueue("z", session="z-tab", client="Z")
    order = queue.waiting_jobs()
    assert order[0] == "z" and len(order) == 21
    y.done()
    assert queue.running_jobs() == ["z"]
    z.done()
    assert queue.running_jobs() == ["x1"]  # then X's next round


def test_sessions_without_an_address_are_their_own_clients_first_come_first_served():
    queue = Scheduler(max_jobs=1, cores=2, nice=0, measure_load=False)
    tickets = [queue.enqueue(name, session=name) for name in ("a", "b", "c")]
    assert [t.position for t in tickets] == [0, 1, 2]


# --- a time limit per job ------------------------------------------------------------------


def test_the_time_limit_stops_a_lab_run_at_a_step_boundary_and_keeps_its_steps(monkeypatch, tmp_path):
    monkeypatch.setenv(JOB_SECONDS.env, "1")
    queue = Scheduler(max_jobs=1, cores=2, nice=0, measure_load=False)  # the app's scheduler: from the env
    assert queue.time_limit_s == 1.0
    job = TrainingJob(_tiny_run(64_000), device="cpu", name="long", save_dir=tmp_path).start(queue, session="tab")
    job.join(timeout=60)
    snapshot = job.snapshot()
    assert snapshot.state == "stopped" and snapshot.stopped_by_limit
    steps = [entry.step for entry in snapshot.record.steps]
    assert steps and steps == list(range(1, len(steps) + 1)) and steps[-1] < 64_000  # whole steps, in order
    assert job.can_resume and job._training.step == steps[-1]  # stopped between two steps
    notice = snapshot.limit_notice()
    assert "Stopped by the server's time limit (1 s, EXPLORER_JOB_TIME_LIMIT_S = 1 s)" in notice
    assert f"Its {steps[-1]:,} steps are kept" in notice and "Resume" in notice
    assert snapshot.saved_to is not None and snapshot.saved_to.exists()  # the record is saved as on Stop
    assert queue.running_jobs() == []  # the slot went to the next in line


def test_without_a_scheduler_there_is_no_time_limit():
    job = TrainingJob(_tiny_run(3), device="cpu", name="cli").start()
    job.join(timeout=60)
    assert job.snapshot().state == "finished" and job.snapshot().limit is None


def test_the_paper_preset_is_said_to_exceed_the_limit_before_start():
    from explorer.server.estimates import StepTimes

    fitted = StepTimes()  # the laptop's fit alone: the server-wide one learns from earlier tests' runs
    paper = estimate_run(preset("paper"), 1800, fitted)
    assert paper.over_limit and paper.seconds > 10 * 3600  # 64,000 steps of four nets at the paper's width
    assert "EXPLORER_JOB_TIME_LIMIT_S = 1,800 s" in paper.text() and "stop at about step" in paper.text()
    demo = estimate_run(preset("demo"), 1800, fitted)
    assert not demo.over_limit and 20 < demo.seconds < 300  # "about a minute" on the class laptop
    assert not estimate_run(preset("paper"), None).over_limit  # the CLI: no limit


def test_the_lab_form_warns_before_start_that_the_paper_preset_meets_the_limit():
    at = open_page(LAB)
    at.selectbox(key="lab.dataset").set_value("Synthetic (generated, instant)")
    at.radio(key="lab.preset").set_value("Paper recipe §4.2 (64k steps: hours)").run()
    assert not at.exception
    warning = _texts(at, "warning")
    assert "The server stops a job after 30 min (EXPLORER_JOB_TIME_LIMIT_S" in warning
    assert "so it would stop at about step" in warning


# --- "Why shortcuts work": scheduled, bounded, stoppable -------------------------------------


def test_a_computation_keeps_what_it_finished_when_stopped_or_out_of_time():
    queue = Scheduler(max_jobs=1, cores=2, nice=0, time_limit_s=0.3, measure_load=False)
    job = ComputeJob("lesion", [("plain20", lambda progress: "plain20 done"), ("resnet56", _busy)])
    job.start(queue, session="tab")
    job.join(timeout=30)
    snapshot = job.snapshot()
    assert snapshot.state == "stopped" and snapshot.stopped_by_limit
    assert snapshot.results == {"plain20": "plain20 done"}
    assert "The 1 of 2 computed before it are shown" in snapshot.limit_notice()
    stopped = ComputeJob("lesion", [("resnet56", _busy)]).start(Scheduler(max_jobs=1, cores=2, measure_load=False))
    _until(lambda: stopped.snapshot().line is not None)
    stopped.stop()
    stopped.join(timeout=10)
    assert stopped.snapshot().state == "stopped" and not stopped.snapshot().stopped_by_limit


def test_a_net_that_cannot_be_used_is_a_message_and_the_others_go_on():
    def broken(progress):
        raise ValueError("resnet50 needs its ImageNet weights")

    job = ComputeJob("responses", [("resnet50", broken), ("resnet20", lambda progress: "ok")]).start()
    job.join(timeout=10)
    snapshot = job.snapshot()
    assert snapshot.state == "finished" and snapshot.results == {"resnet20": "ok"}
    assert snapshot.errors == {"resnet50": "resnet50 needs its ImageNet weights"}


def test_the_images_a_view_runs_on_are_bounded(monkeypatch):
    from explorer.paper.inside.probes import InsideError, load_probe, load_subject

    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    with pytest.raises(InsideError, match="from 1 to 5,000, got 5,001"):
        load_probe(load_subject("resnet20-cifar10"), "samples", 5001)
    at = open_page(WHY)
    own_split = at.selectbox(key="inside.data").value == "default"  # CIFAR-10's folder on this machine: 5,000
    assert at.number_input(key="inside.images").proto.max == (PROBE_IMAGES.high if own_split else 2000)


def test_a_view_waits_its_turn_shows_progress_then_its_result(monkeypatch):
    """The computation goes through the server's queue: behind another tab's run it waits and
    says so, the page stays answering, and once the slot frees the result is drawn."""
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    queue = class_server().scheduler
    other_tab = queue.enqueue("another tab's run", session="another tab")
    at = open_page(WHY)
    at.multiselect(key="inside.nets").set_value(["plain20-cifar10", "resnet20-cifar10"])
    at.selectbox(key="inside.data").set_value("samples")
    at.number_input(key="inside.images").set_value(10)
    at.run()
    at.button(key="inside.go_responses").click().run()
    _poll(at, lambda at: "waiting for a free training slot" in " ".join(p.proto.text for p in at.get("progress")))
    assert queue.waiting_jobs() == ["compute-responses"]
    assert not at.markdown  # no result yet: the page drew, and did not wait
    other_tab.done()
    _poll(at, lambda at: "ResNet-20's responses" in _texts(at, "markdown"))
    assert not at.get("progress") and queue.running_jobs() == []


def test_a_view_started_while_a_lab_run_goes_offers_to_stop_the_run(monkeypatch):
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    at = open_page(WHY)
    (resources,) = class_server().sessions.active()  # this AppTest's session
    lab_run = ComputeJob("lab stand-in", [("a run", _busy)], kind="a lab run (Degradation lab)")
    resources.replace_job("lab", lab_run.start(class_server().scheduler, session=resources.id))
    at.multiselect(key="inside.nets").set_value(["resnet20-cifar10"])
    at.selectbox(key="inside.data").set_value("samples")
    at.number_input(key="inside.images").set_value(10)
    at.run()
    at.button(key="inside.go_branches").click().run()
    assert "This session already has a lab run (Degradation lab) going" in _texts(at, "warning")
    assert lab_run.running and resources.job("inside") is None
    at.button(key="jobs.replace.inside").click().run()
    _poll(at, lambda at: any("layer1.0" in chart.proto.spec for chart in at.get("plotly_chart")))
    assert not lab_run.running and lab_run.snapshot().state == "stopped"
    assert "already has" not in _texts(at, "warning")


# --- a finished job lets go of its data ----------------------------------------------------


def _watched_loader(seen: list):
    def loader(*args, **kwargs):
        data = load_data(*args, **kwargs)
        seen.append((weakref.ref(data), weakref.ref(data.train_images)))
        return data
    return loader


def test_a_finished_lab_job_releases_its_data_set_and_keeps_its_record():
    seen = []
    job = TrainingJob(_tiny_run(3), device="cpu", name="done", loader=_watched_loader(seen))
    job.start(Scheduler(max_jobs=1, cores=2, nice=0, measure_load=False), session="tab")
    job.join(timeout=60)
    gc.collect()
    assert job.snapshot().state == "finished" and job.snapshot().done_steps == 3  # what the page shows
    (data, images), = seen  # the loaded set, and its images (Training keeps them, on the same device)
    assert data() is None and images() is None


def test_a_stopped_run_that_can_resume_keeps_its_data():
    seen = []
    job = TrainingJob(_tiny_run(64_000), device="cpu", name="stopped", loader=_watched_loader(seen)).start()
    _until(lambda: job.snapshot().done_steps >= 1)
    job.stop()
    job.join(timeout=30)
    gc.collect()
    assert job.can_resume and seen[0][1]() is not None  # Resume needs its data order and models


def test_a_finished_computation_drops_its_tasks():
    held = torch.zeros(1000)
    probe = weakref.ref(held)

    def compute(progress, held=held):
        return float(held.sum())

    job = ComputeJob("responses", [("net", compute)]).start()
    del compute, held
    job.join(timeout=10)
    gc.collect()
    assert job.snapshot().results == {"net": 0.0} and probe() is None



def test_a_finished_fine_tune_keeps_its_model_to_save_but_not_its_data(monkeypatch):
    from explorer.server.jobs import FinetuneJob
    from explorer.transfer.recipe import FinetuneConfig

    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(SHIPPED))
    seen = []
    config = FinetuneConfig(backbone="resnet20-cifar10", data="synthetic:100", epochs=1, batch_size=32)
    job = FinetuneJob(config, device="cpu", loader=_watched_loader(seen)).start()
    job.join(timeout=60)
    gc.collect()
    assert job.snapshot().state == "finished" and job.snapshot().result.model is not None  # for Save
    assert all(ref() is None for ref in seen[0])
