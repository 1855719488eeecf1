"""Evaluation on the real GridEnv: recorded episodes replay exactly, one row per variant, clear errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

import memory
import scenarios
import sim.episodes
from marl.evaluate import evaluate_scenario, play_in_both, run_episodes
from sim.env import GridEnv

CPU = torch.device("cpu")

CORRIDORS = """
name: tiny-corridors
map: {generator: bottleneck, corridor_length: 2}
agents: {count: 2, placement: rooms}
dynamics: {collision_system: block_both, on_target: finish, max_episode_steps: 24}
observation: {radius: 2}
reward: {scheme: directional}
variants: {key: map.corridor_length, values: [2, 4]}
"""


def policy(name="srmt", seed=0):
    torch.manual_seed(seed)
    return memory.make_policy(name, (3, 5, 5), 5, preset="bottleneck", scope="global")


@pytest.mark.parametrize("greedy", [True, False])
def test_recorded_evaluation_episodes_replay_with_zero_mismatches(tmp_path: Path, greedy: bool) -> None:
    scenario = scenarios.loads(CORRIDORS)
    store_path = tmp_path / "eval.zarr"
    rows = evaluate_scenario(
        scenario, policy(), 3, seed=7, device=CPU, greedy=greedy, record=store_path, policy_name="srmt test"
    )
    assert [row["variant"] for row in rows] == ["map.corridor_length=2", "map.corridor_length=4"]
    store = sim.episodes.open(store_path)
    assert len(store) == 2 * 3 and not store.incomplete
    lengths = set()
    for episode_id in store.ids():
        episode = store[episode_id]
        assert episode.info.policy == "srmt test"
        assert sim.episodes.replay(episode) == []
        lengths.add(episode.obstacles.shape[0])
    assert lengths == {2 + 4, 4 + 4}  # both corridor lengths were recorded
    # the rows are the means of the recorded episodes' own metrics
    recorded = [store[i].info.metrics["ISR"] for i in store.ids()]
    assert np.mean([row["ISR"] for row in rows]) == pytest.approx(np.mean(recorded))


def test_each_environment_plays_exactly_one_episode_and_reports_it() -> None:
    scenario = scenarios.expand_variants(scenarios.loads(CORRIDORS))[0]
    env = GridEnv(scenario, 5, seed=3, auto_reset=False)
    metrics = run_episodes(env, policy("gru"), CPU, 3, torch.Generator().manual_seed(0))
    assert len(metrics) == 5
    for e, episode in enumerate(metrics):
        # an episode ends when both agents arrive or at the limit: its length says which
        assert episode["CSR"] == 1.0 or episode["ep_length"] == 24, (e, episode)


def test_a_scenario_pogema_cannot_express_is_a_clear_error() -> None:
    pytest.importorskip("pogema")
    scenario = scenarios.load("warehouse")  # '@' start-only and '$' goal-only cells
    with pytest.raises(ValueError, match=r"start/goal cell lists.*no POGEMA equivalent"):
        play_in_both(scenario, policy(), [1, 2], CPU, sampling_seed=0)


def test_a_local_scope_policy_cannot_run_in_pogema() -> None:
    scenario = scenarios.load("random")
    local = memory.make_policy("srmt", (3, 5, 5), 5, preset="bottleneck", scope="local")
    with pytest.raises(ValueError, match="neighbour lists"):
        play_in_both(scenario, local, [1], CPU, sampling_seed=0)
