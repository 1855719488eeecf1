"""The `gridswarm` command: a thin layer over the packages.

Each subcommand lives in its own module `gridswarm.commands.<name>` with `add_parser(subparsers)`, which
registers the parser and sets `handler`. Errors meant for the user (the exception types each command
module lists in `USER_ERRORS`, `optdeps.MissingPackageError` for an optional package that is not installed,
and any `OSError`: a missing file, a full or read-only disk, a file where a directory belongs) are printed as
one line with exit status 2, never as a traceback; so are bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from fsio import control_character
from gridswarm import __version__
from optdeps import MissingPackageError

COMMAND_MODULES: tuple[str, ...] = (
    "bench",
    "episodes",
    "export",
    "eval",
    "render",
    "replay",
    "run",
    "runs",
    "scenario",
    "slurm",
    "train",
)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (`--help` still shows the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gridswarm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gridswarm {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"gridswarm.commands.{name}").add_parser(subparsers)
    return parser


def user_error_types() -> tuple[type[Exception], ...]:
    """Every exception type that carries a message for the user rather than a bug."""
    types: list[type[Exception]] = [MissingPackageError]
    for name in COMMAND_MODULES:
        types.extend(getattr(importlib.import_module(f"gridswarm.commands.{name}"), "USER_ERRORS", ()))
    return tuple(types)


def one_line(message: object) -> str:
    """A message as one line: line breaks become spaces."""
    return " ".join(str(message).split("\n")).replace("\r", " ")


def describe_os_error(error: OSError) -> str:
    """`path: reason` (both paths of a failed rename or copy), the way the shell's tools say it."""
    reason = error.strerror or str(error)
    if error.filename is None:
        return reason
    paths = [os.fsdecode(error.filename)]
    if error.filename2 is not None:
        paths.append(os.fsdecode(error.filename2))
    return f"{' -> '.join(paths)}: {reason}"


def _stop_writing_to_a_closed_pipe() -> None:
    # the reader went away (`gridswarm ... | head`): further output and the interpreter's final flush go
    # to /dev/null instead of raising again
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    for argument in argv:
        found = control_character(argument)
        if found is not None:
            print(
                f"gridswarm: error: argument {argument!r} holds the control character {found}",
                file=sys.stderr,
            )
            return 2
    args = build_parser().parse_args(argv)
    where = f"gridswarm {args.command}"
    try:
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader that left early shows here, not in the interpreter's last flush
        return status
    except user_error_types() as error:
        print(f"{where}: error: {one_line(error)}", file=sys.stderr)
    except BrokenPipeError:
        _stop_writing_to_a_closed_pipe()
        return 141  # as a shell reports a process that SIGPIPE ended
    except OSError as error:
        print(f"{where}: error: {one_line(describe_os_error(error))}", file=sys.stderr)
    except MemoryError:
        print(
            f"{where}: error: out of memory (ask for fewer environments, agents or episodes)", file=sys.stderr
        )
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
