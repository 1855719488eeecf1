"""The `gridswarm` command: a thin layer over the packages.

Each subcommand lives in its own module `gridswarm.commands.<name>` with `add_parser(subparsers)`, which
registers the parser and sets `handler`. Errors meant for the user (the exception types each command
module lists in `USER_ERRORS`, `optdeps.MissingPackageError` for an optional package that is not installed,
and any `OSError`: a missing file, a full or read-only disk, a file where a directory belongs) are printed as
one line with exit status 2, never as a traceback; so are bad arguments.

Every command module is imported to build the parser, so a command module's top level imports only what
its parser needs: the standard library, `gridswarm.arguments`, and modules that import neither torch nor
numba (`scenarios`, `fsio`, `marl.config`, `deploy.errors`; not `sim.*`, `hpc.*`, `memory`, nor `marl`
modules beyond `marl.config` and `marl.threads`). Its handler imports the rest when it runs, and an
argument check that needs a heavy module imports it inside the check. `USER_ERRORS` therefore names the
types as strings, `"package.module.Class"` where the class is defined: the CLI matches them against the
raised exception's classes (subclasses count) without importing anything. tests/gridswarm/test_startup.py
checks both: the names resolve, and `--help` and `scenario list` leave torch and numba unimported.
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
    "imitate",
    "pretrained",
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


def user_error_names() -> frozenset[str]:
    """The dotted names of every exception type that carries a message for the user rather than a bug."""
    return frozenset(
        name
        for module in COMMAND_MODULES
        for name in getattr(importlib.import_module(f"gridswarm.commands.{module}"), "USER_ERRORS", ())
    ) | {qualified_name(MissingPackageError)}


def qualified_name(kind: type) -> str:
    """`package.module.Class`, the way `USER_ERRORS` names a type."""
    return f"{kind.__module__}.{kind.__qualname__}"


def is_user_error(error: BaseException) -> bool:
    """Whether the error's type, or a type it derives from, is named in a command's `USER_ERRORS`."""
    names = user_error_names()
    return any(qualified_name(kind) in names for kind in type(error).__mro__)


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
    except Exception as error:
        if not is_user_error(error):
            raise
        print(f"{where}: error: {one_line(error)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
