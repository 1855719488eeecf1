"""Reward schemes: the kernel against the SRMT paper's table, and the shaper on a real map."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenarios.schema import RewardSpec
from sim.distance import DistanceCache
from sim.rewards import SCHEMES, RewardShaper, scheme_code, shape_rewards

C = 0.01
# SRMT Table 2 (Sagirova et al., 2025): (along the path, other move, stay) for a step with no goal reward.
PAPER_TABLE = {
    "pogema": (0.0, 0.0, 0.0),
    "sparse": (0.0, 0.0, 0.0),
    "dense": (-C, -C, -C),
    "directional": (C / 2, 0.0, 0.0),
    "directional_negative": (-C / 2, -C, -C),
    "moving_negative": (-C, -C, -C / 2),
}


@given(
    st.sampled_from(SCHEMES),
    st.lists(
        st.tuples(st.sampled_from([0.0, 1.0]), st.integers(0, 4), st.integers(0, 20), st.integers(-1, 1),
                  st.booleans()),
        min_size=1, max_size=12,
    ),
)  # fmt: skip
def test_kernel_follows_the_paper_table(scheme, agents):
    goal_rewards = np.array([[a[0] for a in agents]], dtype=np.float32)
    actions = np.array([[a[1] for a in agents]], dtype=np.int64)
    before = np.array([[a[2] for a in agents]], dtype=np.int32)
    after = before + np.array([[a[3] for a in agents]], dtype=np.int32)
    moved = (actions != 0) & (after != before)  # a move changes the distance by one; a blocked move does not
    was_active = np.array([[a[4] for a in agents]])
    out = np.empty_like(goal_rewards)
    shape_rewards(scheme_code(scheme), C, goal_rewards, actions, moved, before, after, was_active, out)
    for i, (goal, action, _, change, active) in enumerate(agents):
        if goal > 0 or not active:
            expected = goal
        elif moved[0, i] and change < 0:
            expected = PAPER_TABLE[scheme][0]
        else:
            expected = PAPER_TABLE[scheme][1 if action != 0 else 2]
        assert out[0, i] == pytest.approx(expected), (scheme, i)


def test_shaper_pays_directional_reward_only_for_a_step_down_the_distance_field():
    obstacles = np.zeros((1, 1, 5), dtype=np.uint8)
    goals = np.array([[[0, 4], [0, 4]]], dtype=np.int32)
    shaper = RewardShaper(RewardSpec("directional", C), DistanceCache(obstacles), 1, 2)
    shaper.before_step(np.array([[[0, 1], [0, 2]]], dtype=np.int32), goals, np.array([[True, True]]))
    after = np.array([[[0, 2], [0, 1]]], dtype=np.int32)  # agent 0 steps toward the goal, agent 1 away
    out = np.zeros((1, 2), dtype=np.float32)
    shaper.shape(np.zeros((1, 2), dtype=np.float32), np.array([[4, 3]]), after, goals, out)
    assert out.tolist() == [[pytest.approx(C / 2), 0.0]]


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="'curious' is unknown; expected one of pogema"):
        scheme_code("curious")
