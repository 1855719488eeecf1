"""GridEnv as a batch: seeding and replay, thread-count independence, mixed map sizes, auto-reset, input
errors, and the soft-collision invariants on random episodes."""

import dataclasses

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim import GridEnv


def scenario(on_target="restart", collision="soft", count=12, size=(9, 13), steps=15):
    return Scenario(
        map=MapSpec(width=size[1], height=size[0], density=0.25), agents=AgentsSpec(count=count),
        dynamics=DynamicsSpec(collision_system=collision, on_target=on_target, max_episode_steps=steps),
        observation=ObservationSpec(radius=2),
    )  # fmt: skip


def rollout(env, steps, seed=0):
    """Observations, rewards and metrics of `steps` random steps (copies)."""
    rng = np.random.default_rng(seed)
    trace = [env.reset().copy()]
    for _ in range(steps):
        actions = rng.integers(0, 5, (env.num_envs, env.num_agents))
        obs, rewards, terminated, truncated, info = env.step(actions)
        trace += [obs.copy(), rewards.copy(), terminated.copy(), truncated.copy(), repr(info["metrics"])]
    return trace


def assert_same_trace(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


def test_results_do_not_depend_on_thread_count():
    traces = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        traces.append(rollout(GridEnv(scenario(), num_envs=4, seed=3, num_threads=threads), 40))
    assert_same_trace(*traces)


def test_batch_member_replays_alone_from_its_episode_seed():
    batch = GridEnv(scenario("finish"), num_envs=3, seed=8, auto_reset=False)
    batch.reset()
    single = GridEnv(scenario("finish"), num_envs=1, auto_reset=False)
    single.reset(episode_seeds=batch.episode_seeds[2:])
    rng = np.random.default_rng(1)
    for _ in range(20):
        actions = rng.integers(0, 5, (3, 12))
        obs, rewards, *_ = batch.step(actions)
        obs_single, rewards_single, *_ = single.step(actions[2:])
        assert np.array_equal(obs[2], obs_single[0]) and np.array_equal(rewards[2], rewards_single[0])


def test_same_seed_same_episodes_and_other_seed_other_tasks():
    twin = (rollout(GridEnv(scenario(), 2, seed=5), 30) for _ in range(2))
    assert_same_trace(*twin)
    first, other = GridEnv(scenario(), 2, seed=5), GridEnv(scenario(), 2, seed=6)
    first.reset(), other.reset()
    assert not np.array_equal(first.starts, other.starts)
    assert not np.array_equal(first.episode_seeds[0], first.episode_seeds[1])


def test_auto_reset_reports_final_obs_and_metrics_only_when_an_episode_ends():
    env = GridEnv(scenario("restart", steps=5), num_envs=2, seed=1)
    env.reset()
    seeds = env.episode_seeds.copy()
    for step in range(1, 6):
        obs, _, _, truncated, info = env.step(np.zeros((2, 12), dtype=np.int64))
        assert ("final_obs" in info) == (step == 5)
        assert all((m is None) == (step < 5) for m in info["metrics"])
    assert truncated.all() and set(info["metrics"][0]) == {"avg_throughput"}
    assert env.elapsed.tolist() == [0, 0] and not np.array_equal(env.episode_seeds, seeds)
    assert not np.array_equal(info["final_obs"], obs)


def test_maps_of_different_sizes_share_a_batch():
    """Each environment of a mixed batch behaves as it does alone (its map padded to the batch maximum)."""
    from sim.maps import build_layout

    small, large = scenario(size=(5, 7), count=4), scenario(size=(11, 6), count=4)
    layouts = {0: build_layout(small, 0), 1: build_layout(large, 1)}
    batch = GridEnv(small, num_envs=2, _layouts=lambda _env, seed: layouts[seed], auto_reset=False)
    batch.reset(episode_seeds=np.array([0, 1]))
    assert batch.map_shapes.tolist() == [[5, 7], [11, 6]] and batch.obstacles.shape == (2, 11, 7)
    assert batch.obstacles[0, 5:].all() and batch.obstacles[1, :, 6:].all()
    alone = GridEnv(large, num_envs=1, _layouts=lambda _env, seed: layouts[seed], auto_reset=False)
    alone.reset(episode_seeds=np.array([1]))
    rng = np.random.default_rng(2)
    for _ in range(12):
        actions = rng.integers(0, 5, (2, 4))
        obs, *_ = batch.step(actions)
        obs_alone, *_ = alone.step(actions[1:])
        assert np.array_equal(obs[1], obs_alone[0])


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.zeros((1, 11), dtype=np.int64), r"shape \(1, 12\)"),
        (np.zeros((1, 12), dtype=np.float32), "integer array"),
        (np.full((1, 12), 5), "0..4, got 5"),
        (np.full((1, 12), -1), "0..4, got -1"),
    ],
)
def test_bad_actions_are_rejected_with_a_clear_message(actions, message):
    env = GridEnv(scenario(), 1, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=message):
        env.step(actions)


def test_step_before_reset_is_a_clear_error():
    with pytest.raises(RuntimeError, match="reset"):
        GridEnv(scenario(), 1, seed=0).step(np.zeros((1, 12), dtype=np.int64))


def test_state_views_follow_the_live_state_and_refuse_assignment():
    env = GridEnv(scenario(), 2, seed=0)
    env.reset()
    positions, seeds = env.positions, env.episode_seeds
    snapshot = env.snapshot()
    assert np.array_equal(positions, snapshot["positions"]) and np.array_equal(seeds, snapshot["seeds"])
    env.step(np.full((2, 12), 2, dtype=np.int64))  # every agent tries to move down
    assert env.positions is positions, "a view is the buffer the step writes into, not a copy"
    assert not np.array_equal(positions, snapshot["positions"])
    with pytest.raises(AttributeError, match="view of the environment's state"):
        env.positions = positions.copy()


@given(seed=st.integers(0, 2**31), on_target=st.sampled_from(["finish", "nothing", "restart"]))
def test_soft_collisions_never_share_cells_or_swap(seed, on_target):
    env = GridEnv(scenario(on_target, count=10, size=(7, 8)), 1, seed=seed, auto_reset=False)
    env.reset()
    rng = np.random.default_rng(seed)
    for _ in range(15):
        before, was_active = env.positions[0].copy(), env.active[0].copy()
        env.step(rng.integers(0, 5, (1, 10)))
        after = env.positions[0]
        cells = [tuple(p) for p in after[was_active]]
        assert len(cells) == len(set(cells))
        index = {tuple(p): i for i, p in enumerate(before) if was_active[i]}
        for i in np.flatnonzero(was_active):
            j = index.get(tuple(after[i]))
            assert j is None or j == i or not np.array_equal(after[j], before[i]), "swap"
        assert (np.abs(after - before).sum(axis=1) <= 1).all()


def test_other_goals_channel_alone_marks_other_agents_goals():
    # the channel needs no distance field; the env once crashed building it without the `path` channel
    spec = scenario(on_target="finish", count=6)
    channels = ("obstacles", "agents", "goal", "other_goals")
    spec = dataclasses.replace(spec, observation=ObservationSpec(radius=2, channels=channels))
    env = GridEnv(spec, 2, seed=1)
    obs = env.reset()
    for e in range(2):
        for agent in range(6):
            row, col = env.positions[e, agent]
            others = {tuple(g) for i, g in enumerate(env.goals[e].tolist()) if i != agent}
            for a in range(5):
                for b in range(5):
                    cell = (row - 2 + a, col - 2 + b)
                    assert obs[e, agent, 3, a, b] == (1.0 if cell in others else 0.0)
