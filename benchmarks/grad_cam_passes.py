"""Grad-CAM at every stage end: one forward + backward for all stages vs captum's
``LayerGradCam`` called once per stage (one forward + backward each), side by side.

    python benchmarks/grad_cam_passes.py [--device cuda] [--models resnet20,resnet50,resnet152]

Both give the same maps (tests/test_inspect.py checks it); the inspect page uses the single
pass. Prints the median time of each way and their ratio, per model, from the same run.
"""

import argparse
import statistics
import time

import torch
from captum.attr import LayerGradCam

from explorer.devices import pick_device
from explorer.models import build_model, get_model_spec
from explorer.paper.gradcam import grad_cams, stage_ends


def _median_seconds(function, repeats: int, device: torch.device) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--models", default="resnet20,resnet56,resnet18,resnet50,resnet152")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device={device}, one image, target class 0")
    print(f"{'model':10} {'stages':>6} {'per stage ms':>13} {'one pass ms':>12} {'speed-up':>9}")
    for name in args.models.split(","):
        spec = get_model_spec(name)
        model = build_model(name).to(device).eval().requires_grad_(False)
        batch = torch.randn(1, *spec.input_size, device=device)
        target = torch.tensor([0], device=device)
        layers = [layer for _, layer in stage_ends(model, spec)]

        def per_stage():
            for layer in layers:
                LayerGradCam(model, model.get_submodule(layer)).attribute(batch, target=target, relu_attributions=True)

        def one_pass():
            grad_cams(model, batch, layers, target)

        separate = _median_seconds(per_stage, args.repeats, device)
        together = _median_seconds(one_pass, args.repeats, device)
        print(f"{name:10} {len(layers):6} {1e3 * separate:13.1f} {1e3 * together:12.1f} {separate / together:8.2f}×")


if __name__ == "__main__":
    main()
