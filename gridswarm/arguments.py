"""Argument types for the subcommands: each refuses a bad value while the command line is parsed, so a
command never starts work it cannot finish (argparse reports the refusal as one line, exit status 2).
Also what several subcommands declare alike (`TRAINING_ERRORS`)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_ENVS = 1 << 16
"""Environments of one batch (the machine's memory is checked as well, from the scenario's sizes)."""
SEED_LIMIT = 2**63
"""Seeds are in [0, 2**63): numpy's SeedSequence refuses negative ones, and seeds are stored as int64."""
TRAINING_ERRORS = (
    "marl.config.ConfigError",
    "marl.run_dir.CheckpointError",
    "marl.update.TrainingDiverged",
    "scenarios.errors.ScenarioError",
    "hpc.errors.HpcError",
)
"""The USER_ERRORS of the commands that train (`train`, `imitate`): shown as one line, exit status 2."""


def integer(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], found {text}")
        return value

    parse.__name__ = "integer"
    return parse


def number(low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (or (low, high] with low_open)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
        inside = (low < value if low_open else low <= value) and value <= high
        if not math.isfinite(value) or not inside:
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"expected a number in {bounds}, found {text}")
        return value

    parse.__name__ = "number"
    return parse


seed = integer(0, SEED_LIMIT - 1)
