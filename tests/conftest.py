import os

import pytest


@pytest.fixture(autouse=True)
def no_imagenet_weights(tmp_path_factory, monkeypatch):
    """Every test sees empty weight folders unless it puts files there itself.

    A developer machine may have torchvision's files in ~/.cache/torch; the tests must
    behave as on a fresh clone, where none are present.
    """
    root = tmp_path_factory.mktemp("weights")
    monkeypatch.setenv("EXPLORER_PRETRAINED_DIR", str(root / "pretrained"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    # Runs the lab saves, and decoded datasets, go to per-test folders too.
    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(root / "runs"))
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(root / "cache"))
    # A page's unexpected exception is shown as a short message; in tests it is raised too,
    # so `at.exception` still fails a test (tests/test_app.py checks the message itself).
    monkeypatch.setenv("EXPLORER_RAISE_ERRORS", "1")
    # The app reads folders only inside its data roots (issue 16): the tests' own temporary
    # folders and the project's shared data, as on a class server.
    from explorer.server.roots import SHARED_DATA

    monkeypatch.setenv("EXPLORER_DATA_ROOTS", os.pathsep.join([str(tmp_path_factory.getbasetemp()), str(SHARED_DATA)]))
    return root


@pytest.fixture(autouse=True)
def fresh_server_scheduler():
    """Each test gets the server's job queue empty (issue 16): a job a previous test left
    stopping must not hold the one training slot of a 2-core machine. The app's class server
    (explorer.ui.job_panel.class_server) is made afresh on its next use, under this test's settings."""
    import sys

    if "explorer.ui.job_panel" in sys.modules:
        sys.modules["explorer.ui.job_panel"].class_server.clear()  # its sessions are released


@pytest.fixture(autouse=True)
def fresh_streamlit_caches():
    """AppTest sessions in one process share st.cache_resource, the lab's session-scoped job
    slot included: clear it after each test so one test's training job never shows in the next
    test's page (clearing also stops the job, through the slot's on_release)."""
    yield
    import sys

    if "streamlit" in sys.modules:
        # The class server's release lets go of every session now, not after the TTL.
        sys.modules["streamlit"].cache_resource.clear()
