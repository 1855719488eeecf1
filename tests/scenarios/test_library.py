"""Every built-in scenario loads, round-trips, lays out every variant, and runs in GridEnv."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import scenarios
from sim import GridEnv
from sim.maps import build_layout

FAST = [name for name in scenarios.builtin_names() if name != "swarm-10k"]


@pytest.mark.parametrize("name", scenarios.builtin_names())
def test_builtin_loads_round_trips_and_lays_out_every_variant(name):
    scenario = scenarios.load(name)
    assert scenario.name == name and scenario.description
    assert scenarios.loads(scenarios.dump(scenario)) == dataclasses.replace(scenario, source="<string>")
    for variant in scenarios.expand_variants(scenario):
        layout = build_layout(variant, 7)
        assert layout.obstacles.dtype == np.uint8 and layout.obstacles.ndim == 2


def run_a_few_steps(name: str) -> None:
    variants = scenarios.expand_variants(scenarios.load(name))
    for variant in (variants[0], variants[-1]):
        env = GridEnv(variant, num_envs=2, seed=3)
        obs = env.reset()
        side = 2 * variant.observation.radius + 1
        assert obs.shape == (2, variant.agents.count, len(variant.observation.channels), side, side)
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs, rewards, terminated, _, _ = env.step(rng.integers(0, 5, (2, variant.agents.count)))
            assert rewards.shape == terminated.shape == (2, variant.agents.count)
            rows, cols = env.positions[..., 0], env.positions[..., 1]
            on_map = np.take_along_axis(
                env.obstacles.reshape(2, -1), rows * env.obstacles.shape[2] + cols, axis=1
            )
            assert not on_map[env.active].any()  # active agents stand on free cells


@pytest.mark.parametrize("name", FAST)
def test_builtin_runs_in_grid_env(name):
    run_a_few_steps(name)


@pytest.mark.slow
def test_swarm_10k_runs_in_grid_env():
    run_a_few_steps("swarm-10k")
