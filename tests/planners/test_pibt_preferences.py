"""Move preferences in PIBT (policy-guided PIBT): equal preferences are plain PIBT step for step, no
preference array can make a joint move conflict, and a preferred move is taken where it is free."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.kernels.dynamics import MOVES
from sim.planners import PIBTPolicy
from tests.planners.instances import ON_TARGET, SYSTEMS, conflicts, env_for, instance, options


@st.composite
def guidable_options(draw):
    """Every PIBTConfig option a preference array combines with (all but lns_window)."""
    return {**draw(options()), "guidance": draw(st.booleans())}


INSTANCE = {
    "seed": st.integers(0, 2**31 - 1),
    "height": st.integers(2, 8),
    "width": st.integers(2, 8),
    "density": st.floats(0.0, 0.4),
    "agents": st.integers(1, 40),
    "system": st.sampled_from(SYSTEMS),
    "on_target": st.sampled_from(ON_TARGET),
    "config": guidable_options(),
}


@settings(deadline=None, max_examples=60)
@given(**INSTANCE)
def test_equal_preferences_plan_exactly_as_plain_pibt(
    seed, height, width, density, agents, system, on_target, config
):
    # differential: each agent's five preferences equal (a fresh level per agent and step, so levels differ
    # between agents), against the planner without preferences; same seed, same actions at every step
    obstacles, starts, goals = instance(seed, height, width, density, agents)
    plain_env = env_for(obstacles, starts, goals, system, on_target, steps=64, num_envs=2)
    guided_env = env_for(obstacles, starts, goals, system, on_target, steps=64, num_envs=2)
    preferences = np.zeros((2, len(starts), 5), dtype=np.float32)
    plain = PIBTPolicy(plain_env, seed=seed, **config)
    guided = PIBTPolicy(guided_env, seed=seed, preferences=preferences, **config)
    levels = np.random.default_rng(seed)
    for _ in range(16):
        preferences[:] = levels.normal(size=(2, len(starts), 1)).astype(np.float32)
        actions = plain()
        np.testing.assert_array_equal(guided(), actions)
        plain_env.step(actions)
        guided_env.step(actions)


@settings(deadline=None, max_examples=80)
@given(
    **INSTANCE,
    preference_values=st.sampled_from(("ties", "normal", "extreme")),
)
def test_no_preference_array_makes_a_conflict(
    seed, height, width, density, agents, system, on_target, config, preference_values
):
    obstacles, starts, goals = instance(seed, height, width, density, agents)
    env = env_for(obstacles, starts, goals, system, on_target, steps=64, num_envs=2)
    preferences = np.zeros((2, len(starts), 5), dtype=np.float32)
    policy = PIBTPolicy(env, seed=seed, preferences=preferences, **config)
    rng = np.random.default_rng(seed)
    for _ in range(16):
        shape = preferences.shape
        if preference_values == "ties":  # few distinct values: many equal preferences
            preferences[:] = rng.integers(0, 3, size=shape)
        elif preference_values == "normal":
            preferences[:] = rng.normal(size=shape)
        else:  # the largest finite float32 magnitudes
            preferences[:] = rng.choice([-3.4e38, 0.0, 3.4e38], size=shape)
        actions = policy().copy()
        planned, before, active = policy.planned.copy(), env.positions.copy(), env.active.copy()
        for e in range(env.num_envs):
            np.testing.assert_array_equal(planned[e][active[e]], (before[e] + MOVES[actions[e]])[active[e]])
            assert (obstacles[planned[e][:, 0], planned[e][:, 1]] == 0).all()
            assert conflicts(before[e], planned[e], active[e]) == (0, 0)
        env.step(actions)
        for e in range(env.num_envs):  # every planned move executed under the collision system in force
            np.testing.assert_array_equal(env.positions[e][active[e]], planned[e][active[e]])


@pytest.mark.parametrize("action", range(5))
def test_a_lone_agent_takes_the_move_it_prefers(action):
    # open 5x5 map, the agent in the middle, its goal in a corner: plain PIBT would head for the goal
    obstacles = np.zeros((5, 5), dtype=np.uint8)
    env = env_for(obstacles, np.array([[2, 2]]), np.array([[4, 4]]))
    preferences = np.zeros((1, 1, 5), dtype=np.float32)
    preferences[0, 0, action] = 1.0
    policy = PIBTPolicy(env, seed=0, preferences=preferences)
    assert policy()[0, 0] == action
    np.testing.assert_array_equal(policy.planned[0, 0], np.array([2, 2]) + MOVES[action])


def test_a_blocked_preference_falls_to_the_next_one_then_to_the_distance():
    # the agent prefers up (a wall), then left; right and down are equally unpreferred and lead to the goal
    obstacles = np.zeros((3, 3), dtype=np.uint8)
    obstacles[0, 1] = 1
    env = env_for(obstacles, np.array([[1, 1]]), np.array([[2, 2]]))
    preferences = np.array([[[0.0, 5.0, 0.0, 2.0, 0.0]]], dtype=np.float32)  # stay, up, down, left, right
    policy = PIBTPolicy(env, seed=0, preferences=preferences)
    assert policy()[0, 0] == 3  # left
    preferences[0, 0] = [1.0, 5.0, -1.0, -1.0, -1.0]  # up is a wall; stay beats the moves toward the goal
    assert policy()[0, 0] == 0
    preferences[0, 0] = [-1.0, 5.0, 0.0, -1.0, 0.0]  # down and right tie: both lead to the goal
    assert policy()[0, 0] in (2, 4)


def test_preferences_must_match_the_batch():
    env = env_for(np.zeros((3, 3), dtype=np.uint8), np.array([[0, 0]]), np.array([[2, 2]]))
    with pytest.raises(ValueError, match="float32 array of shape"):
        PIBTPolicy(env, preferences=np.zeros((1, 2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="float32 array of shape"):
        PIBTPolicy(env, preferences=np.zeros((1, 1, 5)))
    with pytest.raises(ValueError, match="lns_window"):
        PIBTPolicy(env, preferences=np.zeros((1, 1, 5), dtype=np.float32), lns_window=4)
