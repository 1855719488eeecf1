"""`gridswarm run SCENARIO --policy pibt`: expert episodes into the episode store, and the planner names the
command offers."""

from __future__ import annotations

import numpy as np
import pytest

import sim.baselines
import sim.episodes
from gridswarm.cli import main
from gridswarm.commands.run import PLANNERS, POLICIES
from sim.kernels.dynamics import MOVES
from sim.planners import PRESETS
from tests.planners.instances import conflicts, env_for, instance


def test_the_command_offers_every_preset_and_every_scripted_policy():
    assert PLANNERS == (*PRESETS, "lacam") == sim.baselines.PLANNERS
    assert POLICIES == sim.baselines.POLICIES == (*sim.baselines.BASELINES, *PLANNERS)


def test_recorded_pibt_episodes_replay_and_are_conflict_free(tmp_path, capsys):
    store = tmp_path / "experts.zarr"
    argv = ["run", "random", "--policy", "pibt", "--episodes", "2", "--envs", "2", "--seed", "4"]
    assert main([*argv, "--record", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "random: pibt policy, 2 episodes, 2 envs"
    opened = sim.episodes.open(store)
    assert len(opened) >= 2
    for episode in (opened[episode_id] for episode_id in opened.ids()):
        assert episode.info.policy == "pibt (seed 4)"
        assert sim.episodes.replay(episode) == []  # the stored actions re-simulate to the stored states
        positions, actions = episode.positions.astype(np.int64), episode.actions
        assert episode.info.metrics["avg_throughput"] > 1.0  # greedy reaches ~0.75 on this scenario
        for t in range(len(actions) - 1):
            planned = positions[t] + MOVES[actions[t]]
            everyone = np.ones(len(planned), dtype=bool)
            assert conflicts(positions[t], planned, everyone) == (0, 0)
            np.testing.assert_array_equal(positions[t + 1], planned)


def test_an_unknown_planner_is_a_one_line_error(capsys):
    assert main(["run", "random", "--policy", "pibt-fast"]) == 2
    err = capsys.readouterr().err
    assert "unknown policy 'pibt-fast'" in err and "pibt-lns" in err


def test_the_lifelong_policies_are_exactly_those_that_play_a_lifelong_scenario():
    from sim.planners.lacam_policy import NotPlannable
    from sim.policy_names import LIFELONG_POLICIES

    obstacles, starts, goals = instance(0, 6, 6, 0.1, 4)
    env = env_for(obstacles, starts, goals, on_target="restart")
    for name in POLICIES:
        if name in LIFELONG_POLICIES:
            actions = sim.baselines.make_baseline(name, env, 0)()
            assert actions.shape == (1, len(starts)) and ((actions >= 0) & (actions < len(MOVES))).all()
        else:
            with pytest.raises(NotPlannable):
                sim.baselines.make_baseline(name, env, 0)
