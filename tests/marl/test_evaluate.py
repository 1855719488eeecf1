"""Evaluation on the real GridEnv: recorded episodes replay exactly, one row per variant, clear errors."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch

import memory
import scenarios
import sim.episodes
from marl.evaluate import (
    Progress,
    evaluate_scenario,
    play_in_both,
    play_scenario,
    run_episodes,
)
from marl.report import with_mean_row
from marl.rollout import episode_keys, keyed_actions, keyed_uniforms
from marl.seeds import evaluation_episode_seeds
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
    metrics = run_episodes(env, policy("gru"), CPU, 0, seed=3)
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


# on_target 'nothing': SoC and makespan depend on every move, so a changed action stream shows in them
THREE_CORRIDORS = CORRIDORS.replace("on_target: finish", "on_target: nothing").replace(
    "values: [2, 4]", "values: [2, 3, 5], linked: {dynamics.max_episode_steps: [9, 80, 40]}"
)


def play_each_variant_alone(scenario, seeds, sampling_seed, model, greedy=False) -> list[list[dict]]:
    return [
        play_scenario(variant, model, CPU, seeds[v : v + 1], sampling_seed, greedy=greedy)[0]
        for v, variant in enumerate(scenarios.expand_variants(scenario))
    ]


@pytest.mark.parametrize(("name", "greedy"), [("srmt", False), ("gru", False), ("srmt", True)])
def test_batched_evaluation_equals_one_variant_at_a_time(name: str, greedy: bool) -> None:
    """All variants x episodes in one batch (episodes ending at different steps and dropping out of it)
    give every episode exactly the metrics it has when its variant is evaluated alone."""
    scenario = scenarios.loads(THREE_CORRIDORS)
    seeds = evaluation_episode_seeds(5, 3, 4)
    model = policy(name, seed=2)
    batched = play_scenario(scenario, model, CPU, seeds, sampling_seed=9, greedy=greedy)
    assert batched == play_each_variant_alone(scenario, seeds, 9, model, greedy)
    lengths = {episode["ep_length"] for per_variant in batched for episode in per_variant}
    assert len(lengths) > 2  # episodes ended at different steps: the batch shrank while others ran


def test_the_batch_comparison_catches_sampling_that_depends_on_the_batch(monkeypatch) -> None:
    """The harness above fails when an episode's random numbers depend on its place in the batch."""
    scenario = scenarios.loads(THREE_CORRIDORS)
    seeds = evaluation_episode_seeds(5, 3, 4)
    model = policy("srmt", seed=2)
    monkeypatch.setattr(
        "marl.evaluate.episode_keys",
        lambda seed, episode_seeds: np.arange(len(episode_seeds), dtype=np.uint64),
    )
    assert play_scenario(scenario, model, CPU, seeds, 9) != play_each_variant_alone(scenario, seeds, 9, model)


def test_keyed_actions_follow_the_policy_distribution() -> None:
    logits = torch.tensor([[[2.0, 0.0, -1.0, 0.5, -3.0]]]).expand(4000, 1, 5)  # (E, N, A)
    keys = episode_keys(3, np.arange(4000))
    draws = np.concatenate([keyed_actions(logits, keyed_uniforms(keys, step, 1)) for step in range(5)])
    frequencies = np.bincount(draws.reshape(-1), minlength=5) / draws.size
    expected = torch.softmax(logits[0, 0], -1).numpy()
    # 20,000 draws: a binomial standard error below 0.0035 for every action
    np.testing.assert_allclose(frequencies, expected, atol=0.015)
    # the streams of different steps and agents are not the same numbers
    assert not np.array_equal(keyed_uniforms(keys, 0, 2)[:, 0], keyed_uniforms(keys, 0, 2)[:, 1])
    assert not np.array_equal(keyed_uniforms(keys, 0, 1), keyed_uniforms(keys, 1, 1))


def test_the_mean_row_weighs_every_variant_the_same() -> None:
    rows = [
        {"variant": "a", "episodes": 2, "CSR": 1.0, "ep_length": 10.0},
        {"variant": "b", "episodes": 2, "CSR": 0.5, "ep_length": 30.0},
    ]
    assert with_mean_row(rows)[-1] == {"variant": "mean", "episodes": 4, "CSR": 0.75, "ep_length": 20.0}
    assert with_mean_row(rows[:1]) == rows[:1]  # one row is its own mean


def test_progress_bounds_the_time_left_and_reports_completion() -> None:
    stream = io.StringIO()
    progress = Progress("eval x", total=4, stream=stream, every_s=0.0)
    progress.update(1, 0, steps_left=100)
    progress.update(2, 0, steps_left=99)
    progress.update(3, 4, steps_left=0)
    first, second, last = stream.getvalue().splitlines()
    # the first step's time includes setup and compilation: no bound from it
    assert first.startswith("eval x: step 1, 0/4 episodes done") and first.endswith(
        "known after the next step"
    )
    assert second.startswith("eval x: step 2, 0/4 episodes done") and second.endswith(" s left")
    assert last.startswith("eval x: step 3, 4/4 episodes done") and last.endswith("done")
