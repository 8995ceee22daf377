"""The ``vaemanifold`` command line: one sub-command per module in ``vaemanifold.commands``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; list it in ``COMMANDS`` below.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

#: Command modules under vaemanifold.commands, in the order ``--help`` lists them.
COMMANDS = ("geodesic", "benchmark", "train", "demo", "interpolate", "cluster", "distances", "amortize")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaemanifold", description="Geometry in the latent spaces of VAEs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"vaemanifold.commands.{name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"vaemanifold {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
