"""The core is plain PyTorch: no Streamlit import, devices picked explicitly."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from explorer.devices import available_devices, pick_device
from explorer.paper.speed import measure_speed

ROOT = Path(__file__).resolve().parents[1]
# Everything under explorer/ except the two Streamlit modules, found on disk (a new module
# is checked the moment it exists, with no list to forget to update).
STREAMLIT_MODULES = {"explorer.app", "explorer.ui"}


def core_modules() -> list[str]:
    found = []
    for path in sorted((ROOT / "explorer").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name not in STREAMLIT_MODULES and not name.startswith("explorer.ui."):
            found.append(name)
    return found


def test_the_core_module_scan_finds_every_concept():
    modules = core_modules()
    assert {"explorer.models.registry", "explorer.training.engine", "explorer.navigation", "explorer.__main__"} <= set(modules)
    assert not STREAMLIT_MODULES & set(modules)


def test_importing_the_core_does_not_import_streamlit():
    imports = "; ".join(f"importlib.import_module({name!r})" for name in core_modules() if name != "explorer.__main__")
    code = f"import importlib, sys; {imports}; print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_default_device_is_the_best_available():
    assert available_devices()[-1] == "cpu"
    assert pick_device().type == available_devices()[0]
    assert pick_device("cpu") == torch.device("cpu")


def test_unavailable_or_unknown_devices_are_refused():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="Unknown device"):
        pick_device("gpu0")


def test_speed_rows_label_untrained_models_and_time_real_passes():
    rows = measure_speed(["resnet18", "plain18"], torch.device("cpu"), batch_size=2, image_size=32, rounds=1).rows
    assert [row.name for row in rows] == ["resnet18", "plain18"]
    for row in rows:
        assert row.trained is False  # no weights on a fresh machine
        assert row.latency_ms > 0 and row.throughput > 0 and row.load_s > 0
        assert row.peak_memory_mb is None  # CPU
    assert rows[0].weights_mb == pytest.approx(11_689_512 * 4 / 2**20, rel=0.01)


def test_speed_refuses_impossible_settings():
    with pytest.raises(ValueError, match="at least 1"):
        measure_speed(["resnet18"], torch.device("cpu"), batch_size=0)


def test_train_step_is_one_plain_sgd_iteration():
    """explorer.training.step.train_step: forward, loss, backward, step; its numbers stay on the
    device as tensors until the engine reads them."""
    import torch.nn.functional as F

    from explorer.models import resnet20, weighted_layers
    from explorer.training.step import train_step

    torch.manual_seed(0)
    model, twin = resnet20(width=2).train(), resnet20(width=2).train()
    twin.load_state_dict(model.state_dict())
    images, labels = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    layers = [weight for _, weight in weighted_layers(model)]
    metrics = train_step(model, optimizer, images, labels, layers=layers)

    by_hand = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    logits = twin(images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    norms = torch.stack([torch.linalg.vector_norm(w.grad) for _, w in weighted_layers(twin)])
    by_hand.step()
    assert all(isinstance(value, torch.Tensor) for value in (metrics.loss, metrics.wrong, metrics.grad_norms))
    assert torch.equal(metrics.loss, loss.detach()) and torch.equal(metrics.grad_norms, norms)
    assert int(metrics.wrong) == int((logits.argmax(1) != labels).sum()) and not metrics.loss.requires_grad
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))
    assert train_step(model, optimizer, images, labels).grad_norms is None  # not asked for
