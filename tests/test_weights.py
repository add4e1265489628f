"""Finding, loading and downloading torchvision weights, on files made here.

Downloads go over a real HTTP server on 127.0.0.1, so torchvision's downloader and
torch.hub's hash check run for real without the internet.
"""

import functools
import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest
import torch
from torchvision.models import Weights, WeightsEnum

from explorer.models import build_model, get_model_spec
from explorer.store.weights import (
    WeightsError,
    fetch_weights,
    find_weights,
    get_instructions,
    load_pretrained,
    load_weights_file,
    require_weights,
    weights_filename,
)


def _state_dict_bytes(tmp_path: Path, name: str) -> bytes:
    path = tmp_path / "source.pth"
    torch.save(build_model(name).state_dict(), path)
    return path.read_bytes()


def test_nothing_is_found_on_a_fresh_machine():
    assert find_weights(get_model_spec("resnet18")) is None
    with pytest.raises(WeightsError, match="python -m explorer weights download resnet18"):
        load_pretrained(build_model("resnet18"), "resnet18")
    with pytest.raises(WeightsError, match="No ImageNet weights for resnet34 on this machine"):
        require_weights(get_model_spec("resnet34"))


def test_weights_in_pretrained_are_found_and_loaded(tmp_path):
    spec = get_model_spec("resnet18")
    folder = Path(os.environ["EXPLORER_PRETRAINED_DIR"])
    folder.mkdir(parents=True)
    source = build_model("resnet18")
    torch.save(source.state_dict(), folder / weights_filename(spec.weights))
    model = build_model("resnet18")
    assert load_pretrained(model, "resnet18") == require_weights(spec) == folder / "resnet18-f37072fd.pth"
    assert torch.equal(model.conv1.weight, source.conv1.weight)


def test_weights_in_the_torch_hub_cache_are_found():
    spec = get_model_spec("resnet34")
    folder = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / weights_filename(spec.weights)).write_bytes(b"")
    assert find_weights(spec) == folder / "resnet34-b627a593.pth"


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "resnet34.pth"
    path.write_bytes(_state_dict_bytes(tmp_path, "resnet34"))
    with pytest.raises(WeightsError, match="does not fit ResNet"):
        load_weights_file(build_model("resnet18"), path)


def test_garbage_and_pickled_objects_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        load_weights_file(build_model("resnet18"), garbage)
    # A whole pickled model is exactly what weights_only=True exists to refuse.
    pickled = tmp_path / "model.pth"
    torch.save(build_model("resnet18"), pickled)
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        load_weights_file(build_model("resnet18"), pickled)


@pytest.fixture
def loopback_server(tmp_path):
    """Serve tmp_path/served over HTTP on 127.0.0.1; yields (folder, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _weights_entry(url: str) -> WeightsEnum:
    class TinyWeights(WeightsEnum):
        FILE = Weights(url=url, transforms=None, meta={})

    return TinyWeights.FILE


def test_download_checks_the_hash_and_saves_the_file(tmp_path, loopback_server):
    served, base_url = loopback_server
    payload = _state_dict_bytes(tmp_path, "resnet18")
    filename = f"resnet18-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    (served / filename).write_bytes(payload)
    saved = fetch_weights(_weights_entry(f"{base_url}/{filename}"), dest=tmp_path / "dl", progress=False)
    assert saved == tmp_path / "dl" / filename and saved.read_bytes() == payload
    load_weights_file(build_model("resnet18"), saved)


def test_download_with_a_wrong_hash_is_refused_and_not_kept(tmp_path, loopback_server):
    served, base_url = loopback_server
    filename = "resnet18-00000000.pth"
    (served / filename).write_bytes(_state_dict_bytes(tmp_path, "resnet18"))
    with pytest.raises(WeightsError, match="invalid hash"):
        fetch_weights(_weights_entry(f"{base_url}/{filename}"), dest=tmp_path / "dl", progress=False)
    assert not (tmp_path / "dl" / filename).exists()


def test_offline_download_says_where_to_put_the_file(tmp_path):
    # Port 9 ("discard") on loopback refuses the connection: the offline case, on any machine.
    entry = _weights_entry("http://127.0.0.1:9/resnet18-f37072fd.pth")
    with pytest.raises(WeightsError) as raised:
        fetch_weights(entry, dest=tmp_path, progress=False)
    message = str(raised.value)
    assert "Could not download resnet18-f37072fd.pth" in message
    assert os.environ["EXPLORER_PRETRAINED_DIR"] in message


def test_instructions_name_the_command_and_the_folders():
    text = get_instructions(get_model_spec("resnet152"))
    assert "python -m explorer weights download resnet152" in text
    assert "resnet152-394f9c45.pth" in text and os.environ["EXPLORER_PRETRAINED_DIR"] in text


def test_models_without_published_weights_say_so():
    with pytest.raises(WeightsError, match="no ImageNet weights for plain34"):
        get_instructions(get_model_spec("plain34"))
