"""The server-wide job scheduler: queue order, cancel, session release, thread split, estimates."""

import math
import os
import sys
import threading
import time

import pytest
import torch

from explorer.server.scheduler import (
    MAX_JOBS_ENV,
    Scheduler,
    default_max_jobs,
    max_jobs_from_env,
    start_estimates,
    threads_per_job,
)


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Slots set torch's process-wide thread count; give the next test the count it had."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_jobs_wait_first_in_first_out():
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0)
    first, second, third = (scheduler.enqueue(name) for name in ("a", "b", "c"))
    assert (first.state, first.position) == ("running", 0)
    assert (second.position, third.position) == (1, 2)
    assert scheduler.waiting_jobs() == ["b", "c"]
    first.done()
    assert (second.state, third.position) == ("running", 1)
    assert scheduler.running_jobs() == ["b"]
    second.done()
    assert scheduler.running_jobs() == ["c"] and first.position is None


def test_two_slots_run_two_jobs_and_the_third_waits():
    scheduler = Scheduler(max_jobs=2, cores=4, nice=0)
    tickets = [scheduler.enqueue(f"job{i}") for i in range(3)]
    assert [t.state for t in tickets] == ["running", "running", "waiting"]
    tickets[1].done()
    assert tickets[2].state == "running"


def test_a_cancelled_job_leaves_the_queue_and_its_wait_returns_false():
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0)
    running, cancelled, behind = (scheduler.enqueue(name) for name in ("a", "b", "c"))
    cancelled.cancel()
    assert cancelled.position is None and cancelled.wait() is False
    assert behind.position == 1
    running.done()
    assert behind.state == "running" and cancelled.state == "cancelled"


def test_a_stop_flag_cancels_a_blocked_wait():
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0)
    scheduler.enqueue("busy")
    stop = threading.Event()
    waiting = scheduler.enqueue("waiting")
    results = []
    thread = threading.Thread(target=lambda: results.append(waiting.wait(stop.is_set, poll_s=0.01)))
    thread.start()
    stop.set()
    thread.join(timeout=10)
    assert results == [False] and scheduler.waiting_jobs() == []


def test_releasing_a_session_removes_only_its_waiting_jobs():
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0, per_session=2)
    mine_running = scheduler.enqueue("mine-1", session="tab-1")
    theirs = scheduler.enqueue("theirs", session="tab-2")
    mine_waiting = scheduler.enqueue("mine-2", session="tab-1")
    results = []
    thread = threading.Thread(target=lambda: results.append(mine_waiting.wait()))
    thread.start()
    assert scheduler.release_session("tab-1") == 1
    thread.join(timeout=10)
    assert results == [False]
    assert scheduler.waiting_jobs() == ["theirs"] and mine_running.state == "running"
    assert theirs.position == 1


def test_a_waiting_job_is_told_its_position_as_it_moves_up():
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0)
    first, second = scheduler.enqueue("a"), scheduler.enqueue("b")
    seen = []
    ran = []

    def third_job():
        with scheduler.slot("c", on_position=lambda position, _eta: seen.append(position)) as ticket:
            ran.append(ticket is not None)

    thread = threading.Thread(target=third_job)
    thread.start()
    while not seen:
        thread.join(timeout=0.01)
    first.done()
    while seen[-1] != 1:
        thread.join(timeout=0.01)
    second.done()
    thread.join(timeout=10)
    assert seen == [2, 1] and ran == [True]
    assert scheduler.running_jobs() == [] and scheduler.waiting_jobs() == []


def test_a_slot_yields_none_when_cancelled_and_frees_its_place():
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0)
    busy = scheduler.enqueue("busy")
    with scheduler.slot("later", cancelled=lambda: True) as ticket:
        assert ticket is None
    assert scheduler.waiting_jobs() == [] and busy.state == "running"


def test_threads_are_split_among_running_jobs_leaving_one_core():
    assert threads_per_job(1, 2) == 1  # the 2-core laptop: the other core answers the pages
    assert threads_per_job(1, 16) == 15
    assert threads_per_job(3, 16) == 5
    assert threads_per_job(7, 16) == 2
    assert threads_per_job(4, 2) == 1 and threads_per_job(1, 1) == 1


def test_a_job_thread_gets_its_share_and_a_lower_priority():
    scheduler = Scheduler(max_jobs=2, cores=5, nice=3, measure_load=False)
    seen = {}

    def job():
        with scheduler.slot("alone") as ticket:
            seen["threads"] = torch.get_num_threads()
            seen["share"] = ticket.threads
            if sys.platform.startswith("linux"):
                seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            other = scheduler.enqueue("second")  # a second job starts: the share halves
            ticket.pace()
            seen["threads_with_two"] = torch.get_num_threads()
            other.done()

    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if sys.platform.startswith("linux") else 0
    thread = threading.Thread(target=job)
    thread.start()
    thread.join(timeout=30)
    assert seen["threads"] == seen["share"] == 4  # 5 cores, one kept for interactive work
    assert seen["threads_with_two"] == 2
    if "nice" in seen:
        assert seen["nice"] == min(19, main_nice + 3)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice  # only that thread
    # torch.get_num_threads() answers for the calling thread; a thread new to torch copies the
    # process-wide count, which the last job out set back to the idle default, the cores but one.
    fresh = []
    newcomer = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    newcomer.start()
    newcomer.join(timeout=10)
    assert fresh == [4]


class FakeCounters:
    """A clock and busy-time counters for explorer.devices.OtherLoad."""

    def __init__(self):
        self.now = self.machine = self.process = 0.0

    def advance(self, seconds, *, others, ours):  # cores busy meanwhile
        self.now += seconds
        self.machine += seconds * (others + ours)
        self.process += seconds * ours

    def load(self):
        from explorer.devices import OtherLoad

        return OtherLoad(3.0, clock=lambda: self.now, machine=lambda: self.machine, process=lambda: self.process)


def test_other_load_is_the_machines_busy_time_less_this_process():
    counters = FakeCounters()
    load = counters.load()
    assert load.cores() is None  # the first reading only starts the window
    counters.advance(1, others=1.0, ours=1.0)
    assert load.cores() is None  # window not over
    counters.advance(3, others=0.5, ours=2.0)
    assert load.cores() == pytest.approx((1.0 + 1.5) / 4)


def test_a_lone_job_takes_every_core_while_other_processes_are_quiet():
    counters = FakeCounters()
    scheduler = Scheduler(max_jobs=2, cores=2, nice=0, other_load=counters.load())
    ticket = scheduler.enqueue("lone")
    assert ticket.threads == 1  # no reading yet: its share, one core kept for the pages
    counters.advance(3, others=0.1, ours=1.0)
    assert ticket.threads == 2  # quiet: both cores
    counters.advance(3, others=0.45, ours=2.0)
    assert ticket.threads == 2  # hysteresis: 0.45 is below the 0.6 that takes a core back
    counters.advance(3, others=0.8, ours=2.0)
    assert ticket.threads == 1  # a browser, another process: back to the share
    counters.advance(3, others=0.45, ours=1.0)
    assert ticket.threads == 1  # and it stays there until the others drop below 0.3
    second = scheduler.enqueue("second")
    counters.advance(3, others=0.0, ours=1.0)
    assert ticket.threads == 1 and second.threads == 1  # two jobs: never more than the share
    second.done()
    ticket.done()


def test_default_job_limit_comes_from_the_core_count_or_the_environment():
    assert [default_max_jobs(cores) for cores in (1, 2, 4, 8, 16)] == [1, 1, 1, 3, 7]
    assert max_jobs_from_env({}, cores=8) == 3
    assert max_jobs_from_env({MAX_JOBS_ENV: " 5 "}, cores=2) == 5
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match=MAX_JOBS_ENV):
            max_jobs_from_env({MAX_JOBS_ENV: bad})
    with pytest.raises(ValueError, match="at least 1"):
        Scheduler(max_jobs=0)


def test_start_estimates_follow_the_slots_as_they_free():
    # Two slots free after 10 s and 30 s; each queued job then runs 20 s.
    assert start_estimates([10.0, 30.0], 3, 20.0) == [10.0, 30.0, 30.0]
    assert start_estimates([0.0], 2, 60.0) == [0.0, 60.0]
    assert start_estimates([5.0], 2, None) == [5.0, None]  # no run has finished yet
    assert start_estimates([None, 4.0], 1, 20.0) == [None]
    assert start_estimates([-3.0], 1, 10.0) == [0.0]  # a job past its estimate frees "now"


def test_a_waiting_job_estimates_its_wait_from_the_running_job():
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0, time_limit_s=math.inf)  # no limit to bound the waits
    running, next_job, last = (scheduler.enqueue(name) for name in ("a", "b", "c"))
    assert next_job.wait_estimate_s is None  # nothing reported, no past run
    running.report(eta_s=40.0)
    assert next_job.wait_estimate_s == 40.0
    assert last.wait_estimate_s is None  # needs the length of a run, and none has finished
    assert running.wait_estimate_s is None  # running: nothing to wait for


def test_only_runs_that_ended_teach_the_wait_estimate():
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0, time_limit_s=math.inf)
    stopped_early = scheduler.enqueue("stopped after a moment")
    waiting = scheduler.enqueue("waiting")
    stopped_early.done()  # not completed: a Stop, a failure
    later = scheduler.enqueue("later")
    assert later.wait_estimate_s is None  # no run length known yet
    waiting.completed = True
    waiting.done()
    following = scheduler.enqueue("following")
    assert following.wait_estimate_s is not None and following.wait_estimate_s >= 0  # one finished run's length


def _until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _tiny_run(steps=2):
    from explorer.training.engine import preset

    return preset("demo", models=("plain20",), data="synthetic:400", steps=steps)


def test_a_job_waits_for_a_slot_says_its_place_and_leaves_the_queue_on_stop():
    from explorer.server.jobs import TrainingJob

    scheduler = Scheduler(max_jobs=1, cores=2, nice=0)
    holder = scheduler.enqueue("another session's run")
    loads = []

    def loader(*args, **kwargs):  # must not run while the job waits
        loads.append(args)
        raise AssertionError("the data was loaded before the job had a slot")

    job = TrainingJob(_tiny_run(), device="cpu", name="queued", loader=loader).start(scheduler, session="tab-2")
    _until(lambda: job.snapshot().queue is not None)
    snapshot = job.snapshot()
    assert snapshot.state == "queued" and snapshot.queue.position == 1 and snapshot.fraction == 0
    assert snapshot.progress_text().startswith("waiting for a free training slot: next in line")
    assert "trains 1 run at a time" in snapshot.progress_text()
    job.stop()
    job.join(timeout=10)
    assert not job.running and job.snapshot().state == "stopped" and job.snapshot().queue is None
    assert scheduler.waiting_jobs() == [] and scheduler.running_jobs() == ["another session's run"] and not loads
    holder.done()


def test_a_queued_job_starts_when_the_slot_frees():
    from explorer.server.jobs import TrainingJob

    scheduler = Scheduler(max_jobs=1, cores=2, nice=0)
    holder = scheduler.enqueue("first")
    job = TrainingJob(_tiny_run(steps=3), device="cpu", name="second").start(scheduler)
    _until(lambda: job.snapshot().queue is not None)
    assert scheduler.waiting_jobs() == ["train-second"]
    holder.done()
    job.join(timeout=60)
    snapshot = job.snapshot()
    assert snapshot.state == "finished" and snapshot.done_steps == 3 and snapshot.queue is None
    assert scheduler.running_jobs() == [] and scheduler.waiting_jobs() == []


def test_waits_and_times_left_read_in_seconds_minutes_or_hours():
    from explorer.server.jobs import QueuePlace
    from explorer.words import spoken_duration

    assert [spoken_duration(s) for s in (0, 40.4, 89, 90, 725, 4226, 5369, 5460, 7170)] == [
        "0 s", "40 s", "89 s", "2 min", "12 min", "70 min", "89 min", "1 h 31 min", "2 h"]
    text = QueuePlace(position=2, wait_s=4226, slots=1).text()
    assert "number 2 in line · starts in about 70 min (" in text


def test_the_progress_line_shows_a_training_step_rate_not_the_validation_pass():
    from explorer.server.jobs import JobSnapshot
    from explorer.store.runs import new_record
    from explorer.training.lockstep import ModelMetrics, StepRecord
    from explorer.training.recipe import preset

    record = new_record("r", preset("demo", models=("plain20",), data="synthetic", steps=300), "cpu", {})
    for step, rate, val in ((299, 743.0, None), (300, 123.0, 0.4)):  # the last step validates
        metrics = ModelMetrics(name="plain20", loss=1.0, train_error=0.5, val_error=val, lr=0.1, grad_norms=None)
        record.append(StepRecord(step=step, epoch=1.0, elapsed_s=60.0, images_per_s=rate, models=(metrics,)))
    text = JobSnapshot("finished", None, record=record, saved_to=None, total_steps=300).progress_text()
    assert text == "finished: step 300 of 300 · 743 images/s"
