"""``python -m explorer …``: the same core the pages use, from a terminal.

The library never prints; this package decides how results look (a text table, or JSON
with ``--json``). User mistakes end in one line on stderr and exit status 2, never in a
traceback.

One module a group of commands:

* :mod:`~explorer.cli.zoo`: ``models``, ``arch``, ``weights list|download``;
* :mod:`~explorer.cli.classify`: ``classify``, ``cam`` (Grad-CAM);
* :mod:`~explorer.cli.finetune`: ``finetune`` (transfer learning);
* :mod:`~explorer.cli.train`: ``train`` (its flags and config), run by :mod:`~explorer.cli.training_run`;
* :mod:`~explorer.cli.inside`: ``responses``, ``branches``, ``lesion``, ``landscape`` (why shortcuts work).

Adding commands (the convention every module here follows):

1. A module defines ``add_commands(commands)``, where ``commands`` is the
   ``argparse._SubParsersAction`` of the top-level parser. For each command it calls
   ``commands.add_parser(name, help=...)``, adds its arguments and ends with
   ``parser.set_defaults(run=handler)``. A number a user types is parsed with
   ``type=ranged(settings.X)`` (:mod:`explorer.cli.parsing`), so it is checked against the same
   declared range as the app's widget and link while parsing; ``--json`` prints with
   :func:`~explorer.cli.parsing.print_json` (NaN and infinities become null).
2. ``handler(args: argparse.Namespace) -> None`` does the work and prints the result
   (stdout; progress on stderr). A user mistake raises :class:`CommandError` (or a
   ``ValueError``, ``UnknownModelError``, ``WeightsError``, ``OSError``): :func:`main` prints
   ``error: <message>`` on one line of stderr and returns 2, as it does for argparse's own
   usage errors (:class:`~explorer.cli.parsing.Parser`). Ctrl-C returns 130; success 0; no
   command at all prints the help and returns 2.
3. Heavy imports (torch, the core) go inside the handlers, each under a comment saying so
   (``# deferred: torch, so --help stays instant``; tests/test_layout.py checks), so ``--help``
   stays instant and the CLI never imports Streamlit.
4. The module's ``add_commands`` is appended to :data:`COMMAND_GROUPS`, whose order is
   the order of the commands in ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from explorer import __version__
from explorer.cli import classify, finetune, inside, train, zoo
from explorer.cli.parsing import CommandError, Parser, one_line, table

__all__ = ["COMMAND_GROUPS", "CommandError", "build_parser", "main", "table"]

COMMAND_GROUPS = (zoo.add_commands, classify.add_commands, finetune.add_commands, train.add_commands,
                  inside.add_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m explorer",
        description="ResNet Explorer: the models of He et al. (2015), from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_commands in COMMAND_GROUPS:
        add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 done, 2 a user mistake, 130 Ctrl-C)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help and --version (0), a usage error (2, its line already printed)
        return exit.code if isinstance(exit.code, int) else 2
    if getattr(args, "run", None) is None:  # no command: nothing was done, so not a success
        parser.print_help(sys.stderr)
        print("error: name a command (see the list above)", file=sys.stderr)
        return 2
    # deferred: torch, so --help and a usage error stay instant
    from explorer.models import UnknownModelError
    from explorer.store.weights import WeightsError

    try:
        args.run(args)
    except (CommandError, UnknownModelError, WeightsError, ValueError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
