"""LaCAM as a policy: the simulator executes its plans exactly, it replans where another policy moved the
agents, PIBT plays where it finds no plan, and it refuses scenarios it cannot play."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridswarm.cli import main
from sim.actions import MOVES
from sim.planners import PIBTPolicy, make_planner
from sim.planners.lacam_policy import LaCAMPolicy, NotPlannable
from tests.planners.instances import conflicts, env_for, instance


def play(env, policy, steps: int, meddle=None) -> list[np.ndarray]:
    """Positions (E, N, 2) before each step and at the end; `meddle(t, actions)` may replace the policy's
    actions. The policy's own joint moves must have no conflict and be executed as given."""
    seen = [env.positions.copy()]
    for t in range(steps):
        actions = policy()
        if meddle is not None:
            actions = meddle(t, actions)
        before, active = env.positions.copy(), env.active.copy()
        info = env.step(actions)[4]
        if meddle is None:
            for e in range(env.num_envs):
                planned = before[e] + MOVES[actions[e]]
                assert conflicts(before[e], planned, active[e]) == (0, 0)
                np.testing.assert_array_equal(env.positions[e][active[e]], planned[active[e]])
        seen.append(env.positions.copy())
        if all(m is not None for m in info["metrics"]):
            break
    return seen


@settings(deadline=None, max_examples=30)
@given(
    seed=st.integers(0, 2**31 - 1),
    side=st.integers(3, 9),
    density=st.floats(0.0, 0.3),
    agents=st.integers(1, 12),
    on_target=st.sampled_from(["finish", "nothing"]),
)
def test_the_simulator_plays_the_plan_exactly(seed, side, density, agents, on_target):
    obstacles, starts, goals = instance(seed, side, side, density, agents)
    env = env_for(obstacles, starts, goals, on_target=on_target, steps=200, num_envs=2)
    policy = LaCAMPolicy(env, seed=seed)
    seen = play(env, policy, 200)
    assert policy.fallbacks == sum(plan.paths is None for plan in policy.plans)
    for e, plan in enumerate(policy.plans):
        if plan.paths is None:  # LaCAM found no plan within its limit: PIBT played
            continue
        assert plan.start == 0  # the env never left the first plan, so it was never replanned
        for t, positions in enumerate(
            seen[: len(plan.paths)]
        ):  # where the plan put the agents still on the map
            on_map = (positions[e] != plan.paths[-1]).any(axis=1) | (on_target == "nothing")
            np.testing.assert_array_equal(positions[e][on_map], plan.paths[t][on_map])
        if on_target == "finish":
            assert not env.active[e].any()
        else:
            np.testing.assert_array_equal(env.positions[e], goals)


def test_a_plan_depends_on_the_episode_not_on_its_row_in_the_batch():
    obstacles, starts, goals = instance(7, 8, 8, 0.2, 10)
    env = env_for(obstacles, starts, goals, on_target="finish", steps=100, num_envs=3)
    env.reset(episode_seeds=np.array([5, 9, 5]))
    policy = LaCAMPolicy(env, seed=3)
    policy()
    first, other, again = policy.plans
    np.testing.assert_array_equal(first.paths, again.paths)
    assert first.paths.shape != other.paths.shape or (first.paths != other.paths).any()


def test_agents_moved_off_the_plan_are_planned_again_and_still_arrive():
    obstacles, starts, goals = instance(11, 9, 9, 0.15, 12)
    env = env_for(obstacles, starts, goals, on_target="finish", steps=300, num_envs=3)
    policy = LaCAMPolicy(env, seed=1)
    rng = np.random.default_rng(0)

    def meddle(t: int, actions: np.ndarray) -> np.ndarray:  # a learner's mistakes, as in DAgger
        return rng.integers(0, 5, actions.shape) if t < 20 and t % 3 == 0 else actions

    play(env, policy, 300, meddle)
    assert not env.active.any()  # every agent reached its goal
    assert all(plan.start > 0 for plan in policy.plans)


def test_without_a_plan_it_plays_pibt_with_the_swap_technique():
    obstacles, starts, goals = instance(5, 8, 8, 0.2, 14)
    env = env_for(obstacles, starts, goals, on_target="finish", steps=80, num_envs=2)
    twin = env_for(obstacles, starts, goals, on_target="finish", steps=80, num_envs=2)
    policy, pibt = LaCAMPolicy(env, seed=2, step_limit=0), PIBTPolicy(twin, seed=2, swap=True)
    for _ in range(30):
        actions = policy()
        np.testing.assert_array_equal(actions, pibt())
        env.step(actions)
        twin.step(actions)
    assert policy.fallbacks == 2


def test_agents_sharing_a_goal_are_played_by_pibt():
    obstacles = np.zeros((3, 5), dtype=np.uint8)
    starts, goals = np.array([[0, 0], [2, 0]]), np.array([[1, 4], [1, 4]])
    env = env_for(obstacles, starts, goals, on_target="finish", steps=40)
    policy = LaCAMPolicy(env, seed=0)
    play(env, policy, 40)
    assert policy.fallbacks == 1 and not env.active.any()


@pytest.mark.parametrize(
    ("collision_system", "on_target", "expected"),
    [("block_both", "finish", "collision_system 'block_both'"), ("soft", "restart", "lifelong")],
)
def test_scenarios_it_cannot_play_are_refused(collision_system, on_target, expected):
    obstacles, starts, goals = instance(1, 5, 5, 0.0, 3)
    env = env_for(obstacles, starts, goals, collision_system, on_target)
    with pytest.raises(NotPlannable, match=expected):
        make_planner("lacam", env, 0)


def test_the_command_plays_lacam_and_refuses_a_lifelong_scenario_in_one_line(capsys):
    assert main(["run", "puzzles", "--policy", "lacam", "--episodes", "2", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("puzzles: lacam policy") and lines[-1].split()[2] == "1"  # mean CSR
    assert main(["run", "random", "--policy", "lacam"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lifelong" in err and "Traceback" not in err
