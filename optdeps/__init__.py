"""Optional packages: import one, or stop with one line that names the `pip install` bringing it in.

Every optional dependency of GridSwarm belongs to an extra of its `pyproject.toml` (`pogema`, `mpi`,
`export`, `render`, `wandb`). Code that needs one calls `require(module, extra, purpose)`; when the module
cannot be imported it raises `MissingPackageError`, whose message is the whole answer:

    --in-pogema needs the optional package pogema: pip install -e ".[pogema]"

Installing the extra (rather than the bare package) lets pip resolve GridSwarm's own requirements with it:
pogema 1.4.0 pins numpy <= 1.26.4 and gymnasium 0.28.1, and only a resolution that includes zarr and
pettingzoo picks versions of them that accept those pins. This package imports nothing of GridSwarm, so
every layer may use it.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from types import ModuleType

EXTRAS = ("pogema", "mpi", "export", "render", "wandb")
"""The extras of pyproject.toml that hold optional packages."""

_PLAIN_PATH = re.compile(r"[\w ./+=:@%,-]*")
"""Characters that need no quoting inside a double-quoted shell word (the checkout's path)."""


class MissingPackageError(ImportError):
    """An optional package is not installed (or cannot be imported); the message names the install command."""


def install_command(extra: str) -> str:
    """The `pip install` line that adds `extra` to this installation.

    From a source checkout (the README's `pip install -e .`) it is `pip install -e ".[extra]"` when the
    working directory is the checkout, else the checkout's path in place of `.`; an installation from a
    wheel gets `pip install "gridswarm[extra]"`.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r} (expected one of: {', '.join(EXTRAS)})")
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "pyproject.toml").is_file():
        return f'pip install "gridswarm[{extra}]"'
    target = "." if checkout == Path.cwd().resolve() else str(checkout)
    word = f"{target}[{extra}]"
    return (
        f'pip install -e "{word}"' if _PLAIN_PATH.fullmatch(target) else f"pip install -e {shlex.quote(word)}"
    )


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import and return `module`, which the extra `extra` installs, for `purpose` (the feature asking, e.g.
    "--in-pogema"). Raises `MissingPackageError` when it, or a package it imports, is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        package = module.partition(".")[0]
        if error.name is not None and error.name.partition(".")[0] != package:
            # the package is there but one of its own dependencies is not: the extra brings that too
            problem = f"{package}, which cannot be imported ({error})"
        else:
            problem = package
        raise MissingPackageError(
            f"{purpose} needs the optional package {problem}: {install_command(extra)}"
        ) from None
