"""The `gridswarm` command: a thin layer over the packages.

Each subcommand lives in its own module `gridswarm.commands.<name>` with `add_parser(subparsers)`, which
registers the parser and sets `handler`. Errors meant for the user (subclasses of `UserError` in each
package, listed by the command modules) are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gridswarm import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "bench",
    "episodes",
    "export",
    "eval",
    "render",
    "replay",
    "run",
    "scenario",
    "slurm",
    "train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridswarm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gridswarm {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"gridswarm.commands.{name}").add_parser(subparsers)
    return parser


def user_error_types() -> tuple[type[Exception], ...]:
    """Every exception type that carries a message for the user rather than a bug."""
    types: list[type[Exception]] = []
    for name in COMMAND_MODULES:
        types.extend(getattr(importlib.import_module(f"gridswarm.commands.{name}"), "USER_ERRORS", ()))
    return tuple(types)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except user_error_types() as error:
        print(f"gridswarm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gridswarm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
