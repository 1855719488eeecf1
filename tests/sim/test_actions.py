"""The one action table (`sim.actions`): POGEMA's, and the order every search and kernel uses."""

import numpy as np
import pytest

from sim import GridEnv
from sim.actions import ACTION_NAMES, COL_STEPS, MOVES, NUM_ACTIONS, ROW_STEPS


def test_names_say_where_each_action_moves():
    expected = {"stay": (0, 0), "up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
    assert {name: tuple(MOVES[a]) for a, name in enumerate(ACTION_NAMES)} == expected
    assert NUM_ACTIONS == len(MOVES) == GridEnv.num_actions


def test_neighbour_steps_are_the_moves_in_action_order():
    np.testing.assert_array_equal(np.stack([ROW_STEPS, COL_STEPS], axis=1), MOVES[1:])


@pytest.mark.pogema
def test_table_is_pogemas():
    pogema = pytest.importorskip("pogema")
    np.testing.assert_array_equal(MOVES, np.array(pogema.GridConfig().MOVES))
