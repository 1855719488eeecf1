"""Baselines: greedy steps down the distance field with random tie-breaking; random covers all actions."""

from types import SimpleNamespace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sim.baselines import GreedyPolicy, random_actions
from tests.sim.helpers import reference_bfs

MOVES = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}


def state(obstacles, positions, goals, active):
    return SimpleNamespace(
        num_envs=positions.shape[0], num_agents=positions.shape[1], obstacles=obstacles,
        positions=positions.astype(np.int32), goals=goals.astype(np.int32), active=active,
    )  # fmt: skip


@given(st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_greedy_moves_one_step_closer_and_stays_on_goal_or_when_inactive(seed, num_agents):
    rng = np.random.default_rng(seed)
    obstacles = (rng.random((2, 9, 7)) < 0.25).astype(np.uint8)
    free = [np.argwhere(obstacles[env] == 0) for env in range(2)]
    positions = np.stack([f[rng.integers(0, len(f), num_agents)] for f in free])
    goals = np.stack([f[rng.integers(0, len(f), num_agents)] for f in free])
    goals[:, 0] = positions[:, 0]  # one agent already on its goal
    active = rng.random((2, num_agents)) < 0.8
    actions = GreedyPolicy(state(obstacles, positions, goals, active), seed=seed)()
    for env in range(2):
        for agent in range(num_agents):
            distance = reference_bfs(obstacles[env], tuple(goals[env, agent]))
            here = tuple(positions[env, agent])
            if not active[env, agent] or distance[here] == 0 or distance[here] > 10**6:
                assert actions[env, agent] == 0
                continue
            step = MOVES[int(actions[env, agent])]
            assert distance[here[0] + step[0], here[1] + step[1]] == distance[here] - 1


def test_greedy_breaks_ties_at_random_and_reproducibly():
    obstacles = np.zeros((1, 5, 5), dtype=np.uint8)
    env = state(obstacles, np.array([[[0, 0]] * 200]), np.array([[[4, 4]] * 200]), np.ones((1, 200), bool))
    actions = GreedyPolicy(env, seed=3)().copy()
    assert set(actions[0].tolist()) == {2, 4}  # down and right are equally short
    assert 60 < (actions == 2).sum() < 140
    np.testing.assert_array_equal(GreedyPolicy(env, seed=3)(), actions)


def test_greedy_follows_the_field_after_the_map_changes():
    obstacles = np.zeros((1, 3, 3), dtype=np.uint8)
    env = state(obstacles, np.array([[[2, 0]]]), np.array([[[0, 0]]]), np.ones((1, 1), bool))
    policy = GreedyPolicy(env, seed=0)
    assert policy()[0, 0] == 1  # straight up
    obstacles[0, 1, :2] = 1
    assert policy()[0, 0] == 4  # wall above: go round on the right


def test_random_actions_cover_every_action():
    env = SimpleNamespace(num_envs=3, num_agents=100)
    actions = random_actions(env, np.random.default_rng(0))
    assert actions.shape == (3, 100)
    assert set(np.unique(actions).tolist()) == {0, 1, 2, 3, 4}


@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_greedy_plans_keep_every_move_downhill_while_agents_are_blocked_teleported_and_retargeted(
    seed, num_agents
):
    # a tiny pool makes the policy pack and grow it; the actions must not depend on that
    rng = np.random.default_rng(seed)
    obstacles = (rng.random((2, 11, 8)) < 0.2).astype(np.uint8)
    free = [np.argwhere(obstacles[env] == 0) for env in range(2)]
    positions = np.stack([f[rng.integers(0, len(f), num_agents)] for f in free]).astype(np.int32)
    goals = np.stack([f[rng.integers(0, len(f), num_agents)] for f in free]).astype(np.int32)
    env = state(obstacles, positions, goals, np.ones((2, num_agents), bool))
    policy = GreedyPolicy(env, seed=seed)
    policy._grow_pool = _packing_into_a_pool_of_exactly(policy)
    roomy = GreedyPolicy(env, seed=seed)
    for _ in range(25):
        actions = policy().copy()
        np.testing.assert_array_equal(roomy(), actions)
        for e in range(2):
            for agent in range(num_agents):
                distance = reference_bfs(obstacles[e], tuple(env.goals[e, agent]))
                here = tuple(env.positions[e, agent])
                step = MOVES[int(actions[e, agent])]
                after = distance[here[0] + step[0], here[1] + step[1]]
                expected = distance[here] - 1 if 0 < distance[here] < 10**6 else distance[here]
                assert after == expected
                event = rng.random()
                if event < 0.2:
                    continue  # blocked by another agent: it stays
                if event < 0.3:
                    env.positions[e, agent] = free[e][rng.integers(len(free[e]))]  # a new episode's start
                elif event < 0.4:
                    env.goals[e, agent] = free[e][rng.integers(len(free[e]))]
                else:
                    env.positions[e, agent] += step


def _packing_into_a_pool_of_exactly(policy):
    """`GreedyPolicy._grow_pool` giving the pool exactly the room asked for (worst case for packing)."""
    from sim.baselines import compact_pool

    def grow():
        plans = policy._plans
        remaining = int((plans.length - plans.cursor).sum())
        pool = np.zeros(remaining + int(plans.request[0]), dtype=np.int8)
        used = compact_pool(plans, pool)
        policy._plans = plans._replace(pool=pool, used=np.array([used], dtype=np.int64))

    policy._plans = policy._plans._replace(pool=np.zeros(0, dtype=np.int8))
    return grow
