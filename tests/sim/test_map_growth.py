"""Environments of one batch reset onto maps of different sizes (a curriculum of map sizes) without
disturbing each other: every environment of the batch plays exactly the episodes it plays alone from the
same episode seeds, whether the batch sized its buffers up front or grew them on an auto-reset."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scenarios
from sim import GridEnv, MapLayout
from sim.baselines import GreedyPolicy
from sim.episode_start import EpisodePlan
from sim.maps import largest_map_shape
from sim.seeds import episode_seed
from tests.sim.helpers import curriculum


def record_batch(env: GridEnv, steps: int, rng: np.random.Generator) -> list[list[dict]]:
    """Per environment, its episodes: the seed, then per step the actions and what came back."""
    env.reset()
    episodes: list[list[dict]] = [[{"seed": int(s), "steps": []}] for s in env.episode_seeds]
    for _ in range(steps):
        actions = rng.integers(0, 5, size=(env.num_envs, env.num_agents))
        obs, rewards, terminated, truncated, info = env.step(actions)
        final = info.get("final_obs", obs)
        for e in range(env.num_envs):
            returned = (final[e], rewards[e], terminated[e], truncated[e])
            episodes[e][-1]["steps"].append((actions[e].copy(), *(array.copy() for array in returned)))
            if info["metrics"][e] is not None:
                episodes[e].append({"seed": int(env.episode_seeds[e]), "steps": []})
    return episodes


def assert_replays_alone(scenario: scenarios.Scenario, episodes: list[list[dict]]) -> None:
    alone = GridEnv(scenario, num_envs=1, auto_reset=False)
    for env_episodes in episodes:
        for episode in env_episodes:
            alone.reset(episode_seeds=np.array([episode["seed"]]))
            for actions, obs, rewards, terminated, truncated in episode["steps"]:
                got = alone.step(actions[None])
                np.testing.assert_array_equal(got[0][0], obs)
                np.testing.assert_array_equal(got[1][0], rewards)
                np.testing.assert_array_equal(got[2][0], terminated)
                np.testing.assert_array_equal(got[3][0], truncated)


map_sizes = st.lists(st.tuples(st.integers(3, 14), st.integers(3, 14)), min_size=2, max_size=4)
STEPS, ENVS = 24, 3


def seeded_layouts(scenario: scenarios.Scenario) -> Callable[[int, int], MapLayout]:
    """The layout of each episode seed s (variant s mod V), as a layout source GridEnv cannot size for."""
    plan = EpisodePlan(scenario, 1)
    return lambda _env, seed: plan.layout(0, seed)


def every_episode_fits(scenario: scenarios.Scenario, seed: int) -> bool:
    """Whether every episode the batch can start in STEPS steps (at most one per step and env, from the
    episode seeds GridEnv derives from `seed`) has room for its agents: random maps of a few cells
    sometimes have none (3 x 3 at density 0.2: 1 in 50), and a case the simulator must refuse is not a case
    of this test."""
    plan = EpisodePlan(scenario, ENVS)
    for env in range(ENVS):
        for episode in range(STEPS + 1):
            seed_of_episode = episode_seed(seed, env, episode)
            try:
                plan.layout(env, seed_of_episode)
            except scenarios.ScenarioError:
                return False
    return True


@st.composite
def growth_cases(draw: st.DrawFn) -> tuple[scenarios.Scenario, int]:
    """A curriculum of map sizes (each with its own episode limit) and a batch seed whose every episode
    fits its agents."""
    sizes = draw(map_sizes)
    limits = draw(st.lists(st.integers(2, 8), min_size=len(sizes), max_size=len(sizes)))
    scenario = curriculum(sizes, limits, draw(st.sampled_from(["finish", "restart", "nothing"])))
    seed = draw(st.integers(0, 2**16).filter(lambda s: every_episode_fits(scenario, s)))
    return scenario, seed


@settings(max_examples=15, deadline=None)
@given(case=growth_cases(), grow=st.booleans())
def test_a_batch_over_maps_of_changing_size_plays_each_env_as_alone(case, grow):
    scenario, seed = case
    # `_layouts` given: the env cannot know the largest map up front and must grow its buffers on resets.
    layouts = seeded_layouts(scenario) if grow else None
    env = GridEnv(scenario, num_envs=ENVS, seed=seed, _layouts=layouts)
    episodes = record_batch(env, steps=STEPS, rng=np.random.default_rng(seed))
    assert_replays_alone(scenario, episodes)


def test_the_map_growth_cases_are_batches_the_simulator_can_play():
    scenario = curriculum([(3, 3), (3, 4)], [2, 2], "finish")
    verdicts = {seed: every_episode_fits(scenario, seed) for seed in range(40)}
    assert not all(verdicts.values()), "tiny maps are sometimes full: the filter must have work to do"
    for seed, fits in list(verdicts.items())[:12]:
        if fits:  # the batch plays STEPS steps (every episode ends after 2: at most STEPS + 1 start)
            env = GridEnv(scenario, num_envs=ENVS, seed=seed)
            env.reset()
            for _ in range(STEPS):
                env.step(np.zeros((ENVS, 2), dtype=np.int64))
        else:  # one of the episodes the filter looked at is one the simulator refuses
            alone = GridEnv(scenario, num_envs=1, auto_reset=False)
            refused = 0
            for env_index in range(ENVS):
                for episode in range(STEPS + 1):
                    try:
                        alone.reset(episode_seeds=np.array([episode_seed(seed, env_index, episode)]))
                    except scenarios.ScenarioError:
                        refused += 1
            assert refused, seed


def test_growing_keeps_the_other_envs_maps_and_agents():
    # variants: a short small episode, a long small one, a long large one (episode seed s plays s mod 3)
    scenario = curriculum([(4, 4), (4, 4), (12, 9)], [3, 50, 50], "restart")
    env = GridEnv(scenario, num_envs=2, seed=0, _layouts=seeded_layouts(scenario))
    env.reset(episode_seeds=np.array([0, 1]))
    assert env.obstacles.shape[1:] == (4, 4)
    stay = np.zeros((2, 2), dtype=np.int64)
    map_before, cells_before = env.obstacles[1].copy(), env.positions[1].copy()
    for _ in range(45):  # env 0 auto-resets every 3 steps until it draws the large map
        env.step(stay)
        if env.obstacles.shape[1:] == (12, 9):
            break
    assert env.obstacles.shape[1:] == (12, 9), "no reset drew the large map"
    assert int(env.episode_seeds[1]) == 1, "env 1 is still in its first episode"
    np.testing.assert_array_equal(env.obstacles[1, :4, :4], map_before)
    assert env.obstacles[1, 4:].all() and env.obstacles[1, :, 4:].all()
    np.testing.assert_array_equal(env.map_shapes[1], (4, 4))
    np.testing.assert_array_equal(env.positions[1], cells_before)
    env.step(np.full((2, 2), 2))  # down, as often as the 4 x 4 map allows: nobody leaves it
    env.step(np.full((2, 2), 4))
    assert (env.positions[1] < 4).all() and not env.obstacles[1][tuple(env.positions[1].T)].any()


def test_scenario_batches_are_sized_for_their_largest_map_up_front():
    scenario = curriculum([(5, 6), (11, 4), (7, 9)], [4, 4, 4], "finish")
    assert largest_map_shape(scenarios.expand_variants(scenario)) == (11, 9)
    env = GridEnv(scenario, num_envs=2, seed=3)
    env.reset()
    assert env.obstacles.shape == (2, 11, 9)
    puzzles = GridEnv(scenarios.load("puzzles"), num_envs=1, seed=0)
    puzzles.reset()
    assert puzzles.obstacles.shape[1:] == largest_map_shape(scenarios.expand_variants(puzzles.scenario))


def test_pettingzoo_mapf_observations_fit_their_space_on_every_map_size():
    from sim import parallel_env

    base = curriculum([(3, 4), (13, 6), (5, 11)], [5, 5, 5], "finish")
    scenario = dataclasses.replace(base, observation=dataclasses.replace(base.observation, type="MAPF"))
    env = parallel_env(scenario, seed=0)
    space = env.observation_space("player_0")
    radius = scenario.observation.radius
    assert space["global_obstacles"].shape == (13 + 2 * radius, 11 + 2 * radius)
    heights = set()
    for episode in range(12):
        observations, _ = env.reset(seed=episode)
        heights.add(int(env.env.map_shapes[0, 0]))
        assert all(space.contains(obs) for obs in observations.values())
        observations, *_ = env.step(dict.fromkeys(env.agents, 0))
        assert all(space.contains(obs) for obs in observations.values())
    assert len(heights) == 3  # every map size was played


def listed_goal_layout(_env: int, seed: int) -> MapLayout:
    """An open 3 x (s + 2) map for seed s, every cell listed as a possible start and goal (POGEMA's lists)."""
    width = seed + 2
    cells = np.array([(row, col) for row in range(3) for col in range(width)], dtype=np.int64)
    return MapLayout(np.zeros((3, width), dtype=np.uint8), possible_starts=cells, possible_goals=cells)


def goal_sequence_layout(_env: int, seed: int) -> MapLayout:
    """An open 3 x (s + 2) map for seed s; its two agents cycle through s + 2 goals along rows 0 and 2."""
    width = seed + 2
    sequences = np.array([[(row, col) for col in range(width)] for row in (0, 2)], dtype=np.int64)
    starts = np.array([(1, 0), (1, width - 1)], dtype=np.int64)
    return MapLayout(np.zeros((3, width), dtype=np.uint8), starts=starts, goals=sequences[:, ::-1])


@pytest.mark.parametrize("layouts", [listed_goal_layout, goal_sequence_layout])
def test_environments_with_goal_lists_of_different_lengths_play_as_alone(layouts):
    """Lifelong goals drawn from possible-goal lists or cycled through goal sequences: an environment whose
    list is longer than any before it grows the batch's buffer, and the others keep their own lists."""
    scenario = dataclasses.replace(curriculum([(3, 8)], [60], "restart"), variants=None)
    seeds = (0, 4, 2)
    batch = GridEnv(scenario, num_envs=3, seed=0, auto_reset=False, _layouts=layouts)
    batch.reset(episode_seeds=np.array(seeds))
    policy = GreedyPolicy(batch, seed=0)
    goals, actions = [], []
    for _ in range(40):
        actions.append(policy().copy())
        batch.step(actions[-1])
        goals.append(batch.goals.copy())
    for env, seed in enumerate(seeds):
        alone = GridEnv(scenario, num_envs=1, seed=0, auto_reset=False, _layouts=layouts)
        alone.reset(episode_seeds=np.array([seed]))
        for step_actions, step_goals in zip(actions, goals, strict=True):
            alone.step(step_actions[env][None])
            np.testing.assert_array_equal(alone.goals[0], step_goals[env])


def test_environments_given_variants_play_them_as_alone():
    """`env_variants` pins each environment to one variant: every episode it plays, auto-resets included,
    is that variant's episode of the same seed played alone (map size and episode limit too)."""
    scenario = curriculum([(5, 6), (9, 4), (7, 8)], [3, 7, 5], "finish")
    chosen = [2, 0, 2, 1]
    env = GridEnv(scenario, num_envs=len(chosen), seed=5, env_variants=chosen)
    episodes = record_batch(env, steps=STEPS, rng=np.random.default_rng(5))
    variants = scenarios.expand_variants(scenario)
    for env_index, variant in enumerate(chosen):
        assert env.episode_scenario(env_index) == variants[variant]
        assert len(episodes[env_index]) > 2  # auto-resets kept the variant
        assert_replays_alone(variants[variant], episodes[env_index : env_index + 1])
    np.testing.assert_array_equal(env.map_shapes, [(7, 8), (5, 6), (7, 8), (9, 4)])


@pytest.mark.parametrize("chosen", [[0, 3], [0], [-1, 0]])
def test_variants_outside_the_scenario_or_batch_are_refused(chosen):
    scenario = curriculum([(5, 6), (9, 4), (7, 8)], [3, 7, 5], "finish")
    with pytest.raises(ValueError, match=r"env_variants: expected 2 variant indices in \[0, 3\)"):
        GridEnv(scenario, num_envs=2, env_variants=chosen)
