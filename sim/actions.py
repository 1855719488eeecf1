"""The action table of the grid world (POGEMA 1.4.0's): what every part of GridSwarm means by action a.

Action a moves an agent by MOVES[a] = (d_row, d_col); rows grow downwards. The four moves 1..4 in this
order are also the order in which searches visit a cell's neighbours and break ties between equally short
paths (`sim.distance`, `sim.paths`, `sim.channels`).
"""

from __future__ import annotations

import numpy as np

ACTION_NAMES = ("stay", "up", "down", "left", "right")
"""The name of each action, by index."""

MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int32)
"""(NUM_ACTIONS, 2) int32: the (d_row, d_col) step of each action."""

NUM_ACTIONS = len(ACTION_NAMES)

ROW_STEPS = MOVES[1:, 0].astype(np.int64)
COL_STEPS = MOVES[1:, 1].astype(np.int64)
"""(4,) int64: the row and column steps of the moves 1..4 (k-th entry: action k + 1), for neighbour loops."""


def checked_actions(actions: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`actions` as an array, if it has `shape` and an integer dtype (the step kernels check the values:
    they must be in 0..NUM_ACTIONS-1). Raises ValueError otherwise."""
    if type(actions) is not np.ndarray:
        actions = np.asarray(actions)
    if actions.shape != shape:
        raise ValueError(f"actions must have shape {shape} (envs, agents), got {actions.shape}")
    if actions.dtype.kind not in "iu":
        raise ValueError(f"actions must be an integer array, got dtype {actions.dtype}")
    return actions


def actions_of_moves(moves: np.ndarray) -> np.ndarray:
    """(..., 2) int (d_row, d_col) steps, each one of MOVES -> (...) int64, the action of each step.
    Raises ValueError for a step no action makes (a jump, a diagonal)."""
    matches = (np.asarray(moves)[..., None, :] == MOVES).all(axis=-1)  # (..., NUM_ACTIONS)
    if not matches.any(axis=-1).all():
        raise ValueError("a step of more than one cell, or a diagonal one: no action makes it")
    return matches.argmax(axis=-1).astype(np.int64)
