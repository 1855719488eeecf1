"""`gridswarm run` pieces: playing episodes with the baselines, and the metrics table."""

import numpy as np
import pytest

pytest.importorskip("pogema")
from pogema import GridConfig

from gridswarm.commands.run import make_policy, metrics_table, play
from sim.env import GridEnv

pytestmark = pytest.mark.pogema


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_greedy_alone_arrives_in_exactly_its_shortest_path_length(seed):
    config = GridConfig(num_agents=1, size=12, density=0.3, seed=seed, max_episode_steps=200)
    env = GridEnv.from_pogema(config)
    env.reset()
    distance = int(env.distance_to_goal()[0, 0])
    rows = play(env, make_policy("greedy", env, seed), episodes=1)
    assert rows[0]["ISR"] == 1.0 and rows[0]["CSR"] == 1.0
    assert rows[0]["ep_length"] == distance


def test_play_collects_the_requested_number_of_episodes_from_several_envs():
    env = GridEnv.from_pogema(GridConfig(num_agents=4, size=8, seed=1, max_episode_steps=16), num_envs=3)
    rows = play(env, make_policy("random", env, 0), episodes=5)
    assert len(rows) == 5
    assert all(0.0 <= row["ISR"] <= 1.0 for row in rows)


def test_metrics_table_lists_every_episode_and_the_mean():
    table = metrics_table([{"ISR": 0.5, "ep_length": 10.0}, {"ISR": 1.0, "ep_length": 20.0}]).splitlines()
    assert table[0].split() == ["episode", "ISR", "ep_length"]
    assert table[1].split() == ["0", "0.5", "10"]
    assert table[-1].split() == ["mean", "0.75", "15"]
    assert np.unique([len(line) for line in table]).size == 1  # columns aligned
