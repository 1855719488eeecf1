"""A policy played inside real POGEMA (pogema_v0, its own observations) scores exactly what it scores in
GridSwarm on the same tasks, episode by episode, and the `gridswarm eval --in-pogema` table says so."""

import numpy as np
import pytest
import torch

import memory
import scenarios
from marl.evaluate import evaluate_in_pogema, play_in_both
from marl.seeds import pogema_seeds

pytest.importorskip("pogema")
pytestmark = pytest.mark.pogema

CPU = torch.device("cpu")

RANDOM = """
name: tiny-random
map: {{generator: random, width: 8, height: 8, density: 0.25}}
agents: {{count: 4}}
dynamics: {{collision_system: {collisions}, on_target: {on_target}, max_episode_steps: 24}}
observation: {{radius: 2}}
"""


def sharp_policy(name: str, seed: int) -> memory.SwarmPolicy:
    """An untrained policy with a large action head: its actions depend strongly on what it observes."""
    torch.manual_seed(seed)
    policy = memory.make_policy(name, (3, 5, 5), 5, preset="bottleneck", scope="global")
    with torch.no_grad():
        policy.policy_head.weight.mul_(300.0)
    return policy


@pytest.mark.parametrize(
    ("name", "collisions", "on_target", "greedy"),
    [
        ("srmt", "priority", "finish", True),
        ("srmt", "block_both", "nothing", False),
        ("gru", "soft", "restart", False),
    ],
)
def test_per_episode_metrics_in_pogema_equal_gridswarm(name, collisions, on_target, greedy) -> None:
    scenario = scenarios.loads(RANDOM.format(collisions=collisions, on_target=on_target))
    ours, theirs = play_in_both(
        scenario, sharp_policy(name, 1), pogema_seeds(5, 0, 6), CPU, sampling_seed=2, greedy=greedy
    )
    assert len(ours) == len(theirs) == 6
    assert ours == theirs
    # the episodes differ from each other: the comparison is not between six copies of a trivial episode
    assert len({tuple(sorted(e.items())) for e in ours}) > 1


@pytest.mark.parametrize("name", ["bottleneck", "mazes"])
def test_generated_maps_convert_to_the_same_pogema_tasks(name) -> None:
    """Generators POGEMA lacks (bottleneck rooms, mazes) convert episode by episode: the GridConfig of seed s
    holds the map and cells the scenario's own episode s has, and a policy scores the same in both."""
    from sim.env import GridEnv
    from sim.pogema_adapter import grid_config_from_scenario

    scenario = scenarios.load(name)
    if scenario.variants is not None:
        scenario = scenarios.expand_variants(scenario)[-1]  # bottleneck: its longest training corridor
    seeds = pogema_seeds(3, 0, 3)
    for seed in seeds:
        own = GridEnv(scenario, 1, auto_reset=False)
        own.reset(episode_seeds=np.array([seed]))
        converted = GridEnv.from_pogema(grid_config_from_scenario(scenario, seed=seed))
        converted.reset()
        for field in ("obstacles", "positions", "goals"):
            np.testing.assert_array_equal(getattr(own, field), getattr(converted, field), err_msg=field)
    if name == "bottleneck":
        ours, theirs = play_in_both(scenario, sharp_policy("srmt", 3), seeds, CPU, sampling_seed=1)
        assert ours == theirs


def test_observations_fed_wrongly_would_be_caught(monkeypatch) -> None:
    """The equality above is sensitive: POGEMA observations with the agents channel dropped change the
    policy's episodes."""
    from marl import envs

    original = envs.PogemaEnv.step

    def blind_step(self, actions):
        obs, *rest = original(self, actions)
        obs[:, :, 1] = 0.0
        return (obs, *rest)

    monkeypatch.setattr(envs.PogemaEnv, "step", blind_step)
    scenario = scenarios.loads(RANDOM.format(collisions="priority", on_target="finish"))
    ours, theirs = play_in_both(
        scenario, sharp_policy("srmt", 1), pogema_seeds(5, 0, 6), CPU, sampling_seed=2, greedy=False
    )
    assert ours != theirs


def test_in_pogema_rows_put_both_engines_side_by_side() -> None:
    scenario = scenarios.loads(RANDOM.format(collisions="soft", on_target="finish"))
    (row,) = evaluate_in_pogema(scenario, sharp_policy("srmt", 3), 4, seed=9, device=CPU)
    assert row["variant"] == "all" and row["episodes"] == 4 and row["equal_episodes"] == 4
    for key in ("ISR", "CSR", "ep_length"):
        assert np.isclose(row[key], row[f"pogema {key}"])
