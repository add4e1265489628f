"""The "Why shortcuts work" views against plain forward passes, side by side in one run.

    python benchmarks/inside_speed.py [--images 1000] [--surface-images 512] [--points 9] [--full-surface]

1. Lesion sweep: ``lesion_study(draws=0)`` on ResNet-56 (nothing removed, then each of its
   27 blocks removed: 28 evaluations through forward hooks) against 28 plain evaluations of
   the same images. Issue 15 asks for ≤ 1.15×: no model copies, no re-tracing per block.
2. Loss surface: the time per grid point of ``loss_surface`` on ResNet-20 against one plain
   evaluation of the same images (issue 15: ≤ 1.2×; ``functional_call`` under ``vmap``, no copies).
3. The 21×21 ResNet-20 surface on 512 images: measured with ``--full-surface``, otherwise
   extrapolated from the measured time per point (441 points).

The plain evaluations are split in two halves, one before and one after the view, so a
load that drifts during the run (a shared CPU) weighs on both sides alike.
"""

import argparse
import os
import time

import torch

from explorer.paper.inside import lesion_study, load_probe, load_subject, loss_surface, probe_evaluation


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _side_by_side(view, plain, repeats: int) -> tuple[float, float]:
    """(seconds of ``view``, seconds of ``repeats`` calls of ``plain``), the plain calls
    half before and half after the view."""
    before = sum(_timed(plain) for _ in range(repeats // 2))
    view_seconds = _timed(view)
    after = sum(_timed(plain) for _ in range(repeats - repeats // 2))
    return view_seconds, before + after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images of the lesion sweep (issue: 1,000)")
    parser.add_argument("--surface-images", type=int, default=512, help="images of the surface (issue: 512)")
    parser.add_argument("--points", type=int, default=3, help="grid side of the measured surface (points²)")
    parser.add_argument("--full-surface", action="store_true", help="also time the whole 21×21 surface")
    parser.add_argument("--only", choices=("lesion", "surface"), default=None, help="run one of the two parts")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()}")

    if args.only != "surface":
        _lesion_sweep(args.images)
    if args.only != "lesion":
        _surface(args.surface_images, args.points, args.full_surface)
    print(f"load average at the end {os.getloadavg()}")


def _lesion_sweep(images: int) -> None:
    subject = load_subject("resnet56-cifar10")
    probe = load_probe(subject, None, images)
    labels = probe.labels
    probe_evaluation(subject.model, probe.images[:50], labels[:50])  # warm-up
    sweep, plain = _side_by_side(lambda: lesion_study(subject, probe, draws=0),
                                 lambda: probe_evaluation(subject.model, probe.images, labels), 28)
    print(f"lesion sweep, ResNet-56, 27 blocks + baseline, {probe.count} images: {sweep:.1f} s; "
          f"28 plain evaluations: {plain:.1f} s; ratio {sweep / plain:.3f} (issue: <= 1.15)")


def _surface(images: int, side: int, full: bool) -> None:
    subject = load_subject("resnet20-cifar10")
    probe = load_probe(subject, None, images)
    points = side ** 2
    surface, plain = _side_by_side(lambda: loss_surface(subject, probe, grid=side, span=1.0),
                                   lambda: probe_evaluation(subject.model, probe.images, probe.labels), points)
    per_point = surface / points
    print(f"loss surface, ResNet-20, {probe.count} images: {per_point:.2f} s per grid point; one plain "
          f"evaluation: {plain / points:.2f} s; ratio {surface / plain:.3f} (issue: <= 1.2)")
    if full:
        seconds = _timed(lambda: loss_surface(subject, probe, grid=21, span=1.0))
        print(f"21×21 ResNet-20 surface on {probe.count} images: {seconds / 60:.1f} min (measured)")
    else:
        print(f"21×21 ResNet-20 surface on {probe.count} images: about {441 * per_point / 60:.1f} min "
              f"(441 × the time per point measured above)")


if __name__ == "__main__":
    main()
