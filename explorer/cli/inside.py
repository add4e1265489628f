"""``python -m explorer responses | branches | lesion | landscape``: the four views from a terminal.

:func:`add_commands` adds the subcommands to the CLI's subparsers; each handler takes the
parsed arguments and prints, as JSON with ``--json`` (the schema of issue 15) or as a
readable table. Mistakes raise :class:`~explorer.paper.inside.probes.InsideError` (a ValueError),
which the CLI prints as one line with exit status 2. Progress goes to stderr. The core is
imported inside the handlers, so ``--help`` stays instant (the convention of
:mod:`explorer.cli`); the views' defaults come from :mod:`explorer.paper.inside.defaults`, which
imports nothing (the package's ``__init__`` loads its views on first use).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from explorer import settings
from explorer.cli.parsing import folder_option, print_json, ranged, table
from explorer.paper.inside.defaults import DEFAULT_DRAWS, DEFAULT_GRID, DEFAULT_IMAGES, DEFAULT_SPAN


def _progress_printer(label: str, quiet: bool):
    if quiet:
        return None

    def progress(fraction: float) -> None:
        print(f"\r{label}: {100 * fraction:5.1f}%", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)
    return progress


def _check_data(data: str | None) -> None:
    """Refuse a bad ``--data`` (an unknown source, ``synthetic:1000000000000``) before any model loads."""
    # deferred: torch, so --help stays instant
    from explorer.data import DataError, SourceKind, check_source, source_kind
    from explorer.paper.inside.probes import SAMPLES, InsideError

    if data not in (None, "default", SAMPLES) and source_kind(data) is not SourceKind.PACK:
        try:
            check_source(data)
        except DataError as error:
            raise InsideError(str(error)) from error


def _subject_and_probe(name: str, args: argparse.Namespace):
    from explorer.paper.inside.probes import load_probe, load_subject  # deferred: torch, so --help stays instant

    _check_data(args.data)
    subject = load_subject(name)
    return subject, load_probe(subject, args.data, args.images)


def _saver(args: argparse.Namespace, view: str):
    """save(subject, result, seconds) writing into ``--save-dir`` (pretrained/inside), or None without it."""
    if getattr(args, "save_dir", None) is None:
        return None
    folder_option(args.save_dir, "--save-dir")  # a file there fails now, not after minutes of computing

    def save(subject, result, seconds: float) -> None:
        # deferred: torch, so --help stays instant
        from explorer.devices import machine_description
        from explorer.paper.inside.precomputed import save_result
        from explorer.paper.inside.probes import model_device

        machine = machine_description(model_device(subject.model))
        save_result(view, result, command="python -m explorer " + shlex.join(sys.argv[1:]), seconds=seconds,
                    machine=machine, draws=getattr(args, "draws", None), folder=args.save_dir)
    return save


def _timed(compute, *arguments, **options):
    started = time.perf_counter()
    result = compute(*arguments, **options)
    return result, time.perf_counter() - started


def run_responses(args: argparse.Namespace) -> None:
    # deferred: torch, so --help stays instant
    from explorer.paper.inside.probes import InsideError
    from explorer.paper.inside.responses import layer_responses, mean_std

    names = [name.strip() for name in args.names.split(",") if name.strip()]
    if not names:
        raise InsideError("Name at least one model, e.g. plain20-cifar10,resnet20-cifar10.")
    _check_data(args.data)
    save, results = _saver(args, "responses"), []
    for name in names:
        subject, probe = _subject_and_probe(name, args)
        result, seconds = _timed(layer_responses, subject, probe,
                                 progress=_progress_printer(name, args.json or args.quiet))
        if save is not None:
            save(subject, result, seconds)
        results.append(result)
    if args.json:
        print_json({"models": {result.model: result.to_json() for result in results}}, indent=2)
        return
    for result in results:
        print(f"{result.model}: mean std {mean_std(result):.3f} over {len(result.layers)} 3×3 layers "
              f"({result.images} images of {result.source})")
        print(table(["layer", "std"], [[layer.layer, f"{layer.std:.4f}"] for layer in result.layers]) + "\n")
    print("Std of each 3×3 layer's output after BN, before ReLU/addition (He et al. 2015, Fig. 7).")


def run_branches(args: argparse.Namespace) -> None:
    from explorer.paper.inside.branches import branch_ratios  # deferred: torch, so --help stays instant

    save = _saver(args, "branches")
    subject, probe = _subject_and_probe(args.name, args)
    result, seconds = _timed(branch_ratios, subject, probe, progress=_progress_printer(args.name, args.json or args.quiet))
    if save is not None:
        save(subject, result, seconds)
    if args.json:
        print_json(result.to_json(), indent=2)
        return
    print(f"{result.model}: mean ‖F(x)‖/‖x‖ per block over {result.images} images of {result.source}")
    print(table(["block", "ratio", "downsampling"],
                 [[b.block, f"{b.ratio:.4f}", "yes" if b.downsampling else ""] for b in result.blocks]))


def run_lesion(args: argparse.Namespace) -> None:
    # deferred: torch, so --help stays instant
    from explorer.paper.inside.lesion import lesion_study, path_length_counts

    save = _saver(args, "lesion")
    subject, probe = _subject_and_probe(args.name, args)
    study, seconds = _timed(lesion_study, subject, probe, draws=args.draws, seed=args.seed,
                            progress=_progress_printer(args.name, args.json or args.quiet))
    if save is not None:
        save(subject, study, seconds)
    if args.json:
        print_json(study.to_json(), indent=2)
        return
    print(f"{study.model}: {100 * study.baseline_error:.2f}% error with nothing removed "
          f"({study.images:,} images: {study.source}; {study.precision}, {seconds:.0f} s)")
    print(table(["block removed", "error %", "downsampling"],
                 [[b.block, f"{100 * b.error:.1f}", "yes" if b.downsampling else ""] for b in study.blocks]))
    print("\n" + table(["k removed at random", "mean error %", "min", "max"],
                        [[r.removed, f"{100 * r.error_mean:.1f}", f"{100 * r.error_min:.1f}",
                          f"{100 * r.error_max:.1f}"] for r in study.random]))
    if study.residual:
        counts = path_length_counts(len(study.blocks))
        print(f"\n{len(study.blocks)} blocks: 2^{len(study.blocks)} = {sum(counts):,} paths; "
              f"paths of length k: C(n, k) = {counts}")


def run_landscape(args: argparse.Namespace) -> None:
    # deferred: torch, so --help stays instant
    from explorer.paper.inside.landscape import grid_axis, loss_surface
    from explorer.paper.inside.surfaces import save_surface

    grid_axis(args.grid, args.span)  # a bad grid or span fails before minutes of loading
    if args.save_dir is not None:
        folder_option(args.save_dir, "--save-dir")  # a file there fails now, not after the surface
    subject, probe = _subject_and_probe(args.name, args)
    surface = loss_surface(subject, probe, grid=args.grid, span=args.span, seed=args.seed,
                           progress=_progress_printer(args.name, args.json or args.quiet))
    if args.save_dir is not None:
        save_surface(surface, "python -m explorer " + shlex.join(sys.argv[1:]), args.save_dir)
    if args.json:
        print_json(surface.to_json())
        return
    centre = surface.loss[len(surface.alphas) // 2][len(surface.betas) // 2]
    highest = max(max(row) for row in surface.loss)
    print(f"{surface.model}: loss on a {args.grid}×{args.grid} grid of [−{args.span}, {args.span}]² along two "
          f"filter-normalised directions (seed {args.seed}), {surface.images} images of {surface.source}")
    print(f"centre {centre:.4f}, highest {highest:.4f}, {surface.seconds:.0f} s")
    if 0.0 in surface.betas:
        rows = [[f"{alpha:+.3f}", f"{loss:.4f}"] for alpha, loss in zip(surface.alphas, surface.line())]
        print(table(["α", "loss (β = 0)"], rows))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--data", default=None,
                        help="images to probe with: pack:cifar10-eval (2,000 CIFAR-10 validation images shipped "
                             "with the app), 'samples' (the 10 shipped photos), folder:PATH, cifar10, synthetic; "
                             "default: the checkpoint's own 5k validation split when its folder is here, else "
                             "pack:cifar10-eval (a class-balanced subset)")
    parser.add_argument("--images", type=ranged(settings.PROBE_IMAGES), default=DEFAULT_IMAGES,
                        help=f"how many images, up to {settings.PROBE_IMAGES.high:,} (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _save_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--save-dir", type=Path, default=None,
                        help="also write VIEW-NAME.json and its manifest entry there (pretrained/inside)")


def add_commands(subparsers) -> None:
    """Add ``responses``, ``branches``, ``lesion`` and ``landscape`` to the CLI's subparsers."""
    responses = subparsers.add_parser("responses", help="Fig. 7: std of each 3×3 layer's response (plain vs ResNet)")
    responses.add_argument("names", help="comma-separated checkpoints, e.g. plain20-cifar10,resnet20-cifar10")
    _common(responses)
    _save_option(responses)
    responses.set_defaults(run=run_responses)

    branches = subparsers.add_parser("branches", help="per block, how much its residual branch changes x")
    branches.add_argument("name", help="a checkpoint, or an ImageNet ResNet whose weights are here")
    _common(branches)
    _save_option(branches)
    branches.set_defaults(run=run_branches)

    lesion = subparsers.add_parser("lesion", help="Veit et al. 2016: error with blocks removed at test time")
    lesion.add_argument("name")
    _common(lesion)
    lesion.add_argument("--draws", type=ranged(settings.LESION_DRAWS), default=DEFAULT_DRAWS,
                        help="random subsets per k (default %(default)s)")
    lesion.add_argument("--seed", type=ranged(settings.SEED), default=0, help="seeds the random subsets")
    _save_option(lesion)
    lesion.set_defaults(run=run_lesion)

    landscape = subparsers.add_parser("landscape", help="Li et al. 2018: loss surface around the trained weights")
    landscape.add_argument("name")
    _common(landscape)
    # --grid and --span are checked by grid_axis (explorer.settings' ranges) as the handler starts,
    # so the library and the CLI refuse them with one message, before anything is allocated.
    landscape.add_argument("--grid", type=int, default=DEFAULT_GRID,
                           help=f"points per axis, {settings.LANDSCAPE_GRID.describe()} (default %(default)s)")
    landscape.add_argument("--span", type=float, default=DEFAULT_SPAN,
                           help=f"α, β in [−span, span], {settings.LANDSCAPE_SPAN.describe()} (default %(default)s)")
    landscape.add_argument("--seed", type=ranged(settings.SEED), default=0, help="seeds the two random directions")
    landscape.add_argument("--save-dir", type=Path, default=None,
                           help="also write NAME.json and its manifest entry there (pretrained/landscapes)")
    landscape.set_defaults(run=run_landscape)
