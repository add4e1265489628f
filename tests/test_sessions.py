"""A released session stops its jobs, leaves the queue and deletes its uploads and their cached copies."""

import threading
import time

import torch

from explorer.data.cache import cache_slot, write_cache
from explorer.server.scheduler import Scheduler
from explorer.server.sessions import UPLOAD_PREFIX, SessionRegistry, SessionResources, forget_cached_folders


class FakeJob:
    """Stands in for explorer.server.jobs.BackgroundJob: a thread that runs until stopped."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stop.wait, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()

    def join(self, timeout=None):
        self._thread.join(timeout)

    @property
    def running(self):
        return self._thread.is_alive()


def cache_a_decoded_folder(cache_dir, root):
    images, labels = torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])
    path = cache_slot(cache_dir / "folders", root, 4)
    write_cache(path, "key", images, labels, ("a", "b"), root)
    return path


def test_release_stops_the_jobs_and_deletes_the_uploads_and_their_cache(tmp_path):
    session = SessionResources(scheduler=Scheduler(max_jobs=1, cores=2, nice=0), upload_parent=tmp_path,
                               cache_dir=tmp_path / "cache")
    uploads = session.upload_dir()
    assert uploads.name.startswith(UPLOAD_PREFIX) and uploads.parent == tmp_path.resolve()
    (uploads / "upload-1" / "cat").mkdir(parents=True)
    theirs = tmp_path / "shared" / "pets"
    theirs.mkdir(parents=True)
    ours_cached = cache_a_decoded_folder(tmp_path / "cache", uploads / "upload-1")
    theirs_cached = cache_a_decoded_folder(tmp_path / "cache", theirs)
    lab, finetune = FakeJob(), FakeJob()
    session.replace_job("lab", lab)
    session.replace_job("finetune", finetune)
    cleaner = session.release()
    cleaner.join(timeout=10)
    assert not lab.running and not finetune.running
    assert not uploads.exists() and not ours_cached.exists()
    assert theirs.exists() and theirs_cached.exists()  # another data set's cache stays
    assert session.release() is None  # a second release does nothing


def test_replacing_a_job_stops_the_previous_one():
    session = SessionResources(scheduler=Scheduler(max_jobs=1, cores=2, nice=0))
    first, second = FakeJob(), FakeJob()
    session.replace_job("lab", first)
    session.replace_job("lab", second)
    first.join(timeout=10)
    assert not first.running and second.running and session.job("lab") is second
    session.release(background=False)
    assert not second.running


def test_release_takes_the_sessions_waiting_jobs_out_of_the_queue(tmp_path):
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0, per_session=2)  # the other session queues two
    session, other = (SessionResources(scheduler=scheduler, upload_parent=tmp_path) for _ in range(2))
    scheduler.enqueue("other's run", session=other.id)
    scheduler.enqueue("mine", session=session.id)
    scheduler.enqueue("other's second", session=other.id)
    session.release(background=False)
    assert scheduler.waiting_jobs() == ["other's second"]


def test_forgetting_cached_folders_skips_files_that_are_not_cache_files(tmp_path):
    (tmp_path / "cache" / "folders").mkdir(parents=True)
    (tmp_path / "cache" / "folders" / "junk.safetensors").write_bytes(b"not safetensors")
    cached = cache_a_decoded_folder(tmp_path / "cache", tmp_path / "up" / "a")
    assert forget_cached_folders(tmp_path / "up", tmp_path / "cache") == [cached]
    assert (tmp_path / "cache" / "folders" / "junk.safetensors").exists()
    assert forget_cached_folders(tmp_path / "elsewhere", tmp_path / "cache") == []


def test_a_dropped_tab_that_comes_back_in_time_keeps_its_run_and_uploads(tmp_path):
    """Streamlit releases session resources as soon as a websocket drops; the registry waits
    for the grace period (the disconnected-session TTL) before letting go."""
    registry = SessionRegistry()
    resources = registry.resume("tab-1")
    job = FakeJob()
    resources.replace_job("lab", job)
    uploads = resources.upload_dir()
    registry.dropped("tab-1", grace_s=0.3)  # a Wi-Fi blip
    assert registry.resume("tab-1") is resources  # back within the grace period
    threading.Event().wait(0.6)
    assert job.running and uploads.exists() and not resources.released
    registry.dropped("tab-1", grace_s=0.1)  # gone for good
    job.join(timeout=10)  # the timer releases the session, which stops the job
    assert resources.released and not job.running
    assert registry.resume("tab-1") is not resources  # a new visit starts afresh
    registry.release_all()


def test_a_closed_tabs_double_close_logs_one_line_and_other_errors_keep_their_traceback():
    import logging

    from starlette.websockets import WebSocketDisconnected

    from explorer.server.sessions import quiet_closed_tab_tracebacks

    logger = logging.getLogger("test.uvicorn.error")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((self.format(record), record.exc_info))

    logger.addHandler(Keep())
    quiet_closed_tab_tracebacks(logger)
    quiet_closed_tab_tracebacks(logger)
    assert len(logger.filters) == 1  # once per process, however often app.py reruns
    for error in (WebSocketDisconnected('Cannot call "send" once a close message has been sent.'),
                  ValueError("a real bug")):
        try:
            raise error
        except Exception:
            logger.exception("Exception in ASGI application\n")
    (closed, closed_info), (real, real_info) = records
    assert closed_info is None and "Traceback" not in closed and "a browser tab closed" in closed
    assert real_info[0] is ValueError and "Traceback" in real and "a real bug" in real


def test_a_release_frees_what_the_session_held_in_reference_cycles():
    """The server runs no full collection after each script run (.streamlit/config.toml):
    the release collects, so a closed tab's cycles do not wait for the oldest generation."""
    import gc
    import weakref

    class State:  # a closed tab's state that refers to itself, as widget callbacks often do
        pass

    gc.disable()  # only the release may collect
    try:
        state = State()
        state.self = state
        gone = weakref.ref(state)
        del state
        assert gone() is not None
        SessionResources(session_id="tab-1").release(background=False)
        assert gone() is None
    finally:
        gc.enable()


def test_a_page_run_draws_one_phase_of_its_job_and_sees_the_change():
    """Every button of one page run draws the job's phase as first read (JobSlot.drawn_phase),
    while JobSlot.phase follows the job: the live view reruns the page when they differ."""
    from explorer.server.jobs import TrainingJob
    from explorer.training.recipe import preset
    from explorer.ui.job_panel import JobSlot

    resources = SessionResources()
    assert JobSlot(resources, "lab").phase == "idle"
    scheduler = Scheduler(max_jobs=1, cores=2, nice=0, measure_load=False)
    scheduler.enqueue("someone else's run")  # takes the only slot: the next job waits
    job = TrainingJob(preset("demo", models=("resnet20",), data="synthetic:10", steps=2, width=2, image_size=8),
                      device="cpu", name="waiting")
    resources.replace_job("lab", job.start(scheduler, session=resources.id))
    slot = JobSlot(resources, "lab")
    deadline = time.monotonic() + 30
    while not job.waiting and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slot.drawn_phase == "waiting" and slot.running
    job.stop()
    job.join(timeout=30)
    assert slot.phase == "idle"  # what the view compares ...
    assert slot.drawn_phase == "waiting" and slot.running  # ... with what the buttons drew
    assert JobSlot(resources, "lab").running is False  # the rerun's slot draws it idle
