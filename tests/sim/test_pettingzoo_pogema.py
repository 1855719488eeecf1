"""The PettingZoo env given a pogema GridConfig: PettingZoo's API and seed tests, and step-by-step parity with
POGEMA's own PettingZoo integration (names, observations, rewards, terminations, truncations, removal)."""

import numpy as np
import pytest

pytest.importorskip("pogema")
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test
from pogema import GridConfig, pogema_v0

from sim.pettingzoo_env import parallel_env

pytestmark = pytest.mark.pogema

CONFIGS = [
    dict(num_agents=6, size=8, density=0.3, seed=3, obs_radius=2, collision_system="soft",
         on_target="finish"),
    dict(num_agents=5, width=9, height=6, density=0.2, seed=11, obs_radius=3, on_target="nothing"),
    dict(num_agents=8, size=10, density=0.25, seed=7, obs_radius=1, collision_system="block_both",
         on_target="restart"),
    dict(num_agents=3, size=5, density=0.1, seed=0, obs_radius=2, collision_system="priority",
         on_target="finish"),
]  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['on_target']}-{c.get('collision_system')}")
def test_matches_pogemas_pettingzoo_integration_step_by_step(config):
    ours = parallel_env(GridConfig(max_episode_steps=24, **config))
    theirs = pogema_v0(GridConfig(max_episode_steps=24, integration="PettingZoo", **config))
    rng = np.random.default_rng(config["seed"])
    our_obs, our_infos = ours.reset()
    their_obs, their_infos = theirs.reset()
    assert_same(our_obs, their_obs, "reset obs")
    assert our_infos == their_infos
    for step in range(30):
        assert ours.agents == theirs.agents, step
        if not theirs.agents:
            break
        # a missing entry means "stay" in both; agents already done may still send actions
        actions = {agent: int(rng.integers(0, 5)) for agent in theirs.possible_agents if rng.random() < 0.9}
        ours_out = ours.step(dict(actions))
        theirs_out = theirs.step(dict(actions))
        names = ("obs", "rewards", "terminations", "truncations")
        for name, got, expected in zip(names, ours_out[:4], theirs_out[:4], strict=True):
            assert_same(got, expected, f"{name} at step {step}")
        assert {a: i["is_active"] for a, i in ours_out[4].items()} == {
            a: i["is_active"] for a, i in theirs_out[4].items()
        }, step
        if "metrics" in theirs_out[4].get("player_0", {}):
            assert ours_out[4]["player_0"]["metrics"] == pytest.approx(theirs_out[4]["player_0"]["metrics"])
    assert not theirs.agents and not ours.agents  # both episodes ended within the loop


def assert_same(got: dict, expected: dict, what: str) -> None:
    assert got.keys() == expected.keys(), what
    for agent in expected:
        np.testing.assert_array_equal(got[agent], expected[agent], err_msg=f"{what} {agent}")


def test_passes_pettingzoos_parallel_api_test():
    config = GridConfig(num_agents=6, size=8, seed=5, max_episode_steps=40, collision_system="soft")
    env = parallel_env(config)
    assert isinstance(env, ParallelEnv)
    parallel_api_test(env, num_cycles=200)


def test_passes_pettingzoos_parallel_seed_test():
    config = GridConfig(num_agents=4, size=8, seed=9, on_target="restart", max_episode_steps=30)
    parallel_seed_test(lambda: parallel_env(config), num_cycles=40)
