"""``models``, ``arch`` and ``weights``: what is registered, its Table 1, its ImageNet weights."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from explorer.cli.parsing import CommandError, folder_option, print_json, table
from explorer.settings import pretrained_dir


def add_commands(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="every registered model: params, GMACs, paper numbers")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.add_argument("--shipped", action="store_true",
                        help="the shipped checkpoints and recorded runs as the README's Markdown tables")
    models.set_defaults(run=_cmd_models)

    arch = commands.add_parser("arch", help="the paper's Table 1 for one model, from the live model")
    arch.add_argument("name", help="a registered model, e.g. resnet50 (see `models`)")
    arch.add_argument("--json", action="store_true", help="machine-readable output")
    arch.set_defaults(run=_cmd_arch)

    weights = commands.add_parser("weights", help="torchvision's ImageNet weights: list or download")
    weight_commands = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    listing = weight_commands.add_parser("list", help="which weight files are on this machine")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=_cmd_weights_list)
    download = weight_commands.add_parser("download", help="download with torchvision's hash check")
    download.add_argument("names", nargs="+", metavar="NAME", help="models, e.g. resnet50 resnet152")
    download.add_argument("--dir", type=Path, default=None,
                          help="an existing folder to save into (default: the torch hub cache)")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(run=_cmd_weights_download)


def _zoo_entries() -> list[dict]:
    # deferred: torch, so --help stays instant
    from explorer.models import list_models
    from explorer.paper.table1 import zoo_row
    from explorer.store.checkpoints import best_checkpoints, trained_label
    from explorer.store.weights import weights_status

    trained = best_checkpoints()
    entries = []
    for spec in list_models():
        row = zoo_row(spec.name)
        status = weights_status(spec)
        entries.append({
            "name": row.name, "family": spec.family, "depth": row.depth, "block": row.block,
            "params": row.params, "macs": round(row.gmacs * 1e9), "gmacs": round(row.gmacs, 3),
            "paper_gmacs": row.paper_gmacs, "imagenet_top1": row.imagenet_top1,
            "paper_top1_error": row.paper_top1_error,
            "weights": "present" if status.present else ("missing" if status.filename else "none published"),
            "checkpoint": trained[spec.name].key if spec.name in trained else None,
            "checkpoint_val_error": trained[spec.name].val_error if spec.name in trained else None,
            "trained_here": trained_label(trained.get(spec.name)),
        })
    return entries


def _cmd_models(args: argparse.Namespace) -> None:
    if args.shipped:
        from explorer.store.shipped import BEGIN, END, shipped_tables  # deferred: torch, so --help stays instant

        print(f"{BEGIN}\n{shipped_tables(pretrained_dir())}\n{END}")
        return
    entries = _zoo_entries()
    if args.json:
        print_json(entries, indent=2)
        return
    print(table(
        ["name", "depth", "block", "params", "GMACs", "paper", "ImageNet top-1 %", "weights", "trained here (val error)"],
        [[e["name"], e["depth"], e["block"], f"{e['params']:,}", f"{e['gmacs']:.2f}",
          e["paper_gmacs"], e["imagenet_top1"], e["weights"], e["trained_here"]] for e in entries],
    ))
    print("\nGMACs: multiply-accumulates for one image at the model's input size "
          "(what the paper calls FLOPs); BatchNorm, ReLU, pooling and additions are not counted.")


def _cmd_arch(args: argparse.Namespace) -> None:
    from explorer.paper.table1 import analyze  # deferred: torch, so --help stays instant

    analysis = analyze(args.name)
    if args.json:
        print_json({
            "name": analysis.spec.name,
            "input_size": list(analysis.spec.input_size),
            "rows": [asdict(row) for row in analysis.stages],
            "total_params": analysis.params,
            "total_macs": analysis.macs,
        }, indent=2)
        return
    print(f"{analysis.spec.name}: {analysis.spec.summary} (untrained architecture, "
          f"input {'×'.join(map(str, analysis.spec.input_size))})\n")
    print(table(
        ["stage", "output size", "blocks", "params", "GMACs"],
        [[r.stage, r.output_size, r.blocks, f"{r.params:,}", f"{r.macs / 1e9:.3f}"] for r in analysis.stages],
    ))
    print(f"\ntotal: {analysis.params:,} parameters, {analysis.macs / 1e9:.3f} GMACs")


def _cmd_weights_list(args: argparse.Namespace) -> None:
    # deferred: torch, so --help stays instant
    from explorer.models import list_models
    from explorer.store.weights import search_dirs, weights_status

    statuses = [weights_status(spec) for spec in list_models() if spec.weights is not None]
    if args.json:
        print_json([{"name": s.name, "file": s.filename, "path": str(s.path) if s.path else None}
                    for s in statuses], indent=2)
        return
    print(table(["model", "file", "where"],
                [[s.name, s.filename, s.path or "missing"] for s in statuses]))
    print("\nSearched: " + ", ".join(map(str, search_dirs())))
    if not all(s.present for s in statuses):
        print("Get missing files with: python -m explorer weights download NAME [NAME ...]")


def _cmd_weights_download(args: argparse.Namespace) -> None:
    # deferred: torch, so --help stays instant
    from explorer.models import get_model_spec
    from explorer.store.weights import WeightsError, download_weights

    failures = []
    if args.dir is not None:  # a missing folder or a file fails before any download starts
        folder_option(args.dir, "--dir", must_exist=True)
    for name in args.names:
        get_model_spec(name)  # unknown names fail before any download starts
    for name in args.names:
        try:
            path = download_weights(name, dest=args.dir, progress=not args.quiet)
            print(f"{name}: saved {path}")
        except WeightsError as error:
            failures.append(f"{name}: {error}")
    if failures:
        raise CommandError("; ".join(failures))
