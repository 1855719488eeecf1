"""`gridswarm run`: built-in names and YAML paths, `--episodes`, `--render` (one GIF frame per step plus the
start), one-line errors; and its pieces: playing episodes with the baselines, the metrics table."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from gridswarm.cli import main
from gridswarm.commands.run import make_policy, metrics_table
from scenarios.loader import dump
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, Scenario
from sim.baselines import play_episodes
from sim.env import GridEnv

CORRIDOR = Scenario(
    name="corridor", map=MapSpec(generator="ascii", ascii=".....\n.###.\n.....\n"),
    agents=AgentsSpec(count=1, placement="fixed", starts=((0, 0),), goals=((2, 3),)),
    dynamics=DynamicsSpec(on_target="finish", max_episode_steps=40), seed=0,
)  # fmt: skip
CORRIDOR_DISTANCE = 5  # (0,0) -> (2,3): down the left column, then right along the bottom row


def table_rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    return [line.split() for line in lines[1:]]


def test_builtin_name_plays_the_requested_episodes(capsys):
    assert main(["run", "bottleneck-test", "--episodes", "3", "--envs", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "bottleneck-test: greedy policy, 3 episodes, 2 envs"
    rows = table_rows(out)
    assert rows[0] == ["episode", "ISR", "CSR", "ep_length"]  # POGEMA's finish metrics
    assert [row[0] for row in rows[1:]] == ["0", "1", "2", "mean"]


def test_yaml_path_greedy_lone_agent_takes_its_shortest_path(tmp_path, capsys):
    path = tmp_path / "corridor.yaml"
    path.write_text(dump(CORRIDOR))
    assert main(["run", str(path), "--episodes", "2"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[1:] == [[str(i), "1", "1", str(CORRIDOR_DISTANCE)] for i in range(2)] + [
        ["mean", "1", "1", str(CORRIDOR_DISTANCE)]
    ]


def test_render_writes_one_frame_per_step_and_the_start(tmp_path, capsys):
    path, gif = tmp_path / "corridor.yaml", tmp_path / "out.gif"
    path.write_text(dump(CORRIDOR))
    assert main(["run", str(path), "--episodes", "1", "--render", str(gif)]) == 0
    assert f"rendered env 0's first episode to {gif}" in capsys.readouterr().out
    with Image.open(gif) as image:
        assert image.n_frames == CORRIDOR_DISTANCE + 1


def test_render_of_a_truncated_episode_has_max_steps_plus_one_frames(tmp_path):
    scenario = dataclasses.replace(
        CORRIDOR, agents=dataclasses.replace(CORRIDOR.agents, goals=((0, 4),)),
        map=MapSpec(generator="ascii", ascii="..#..\n..#..\n"),
        dynamics=DynamicsSpec(on_target="finish", max_episode_steps=6),
    )  # fmt: skip
    path, gif = tmp_path / "walled.yaml", tmp_path / "out.gif"
    path.write_text(dump(scenario))
    argv = ["run", str(path), "--episodes", "1", "--policy", "random", "--seed", "3", "--render", str(gif)]
    assert main(argv) == 0
    with Image.open(gif) as image:
        assert image.n_frames == 6 + 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no-such-scenario"], "gridswarm run: error: no-such-scenario: no such file or built-in"),
        (["run", "random", "--policy", "clever"], "gridswarm run: error: unknown policy 'clever' (expected"),
    ],
)
def test_unknown_scenario_or_policy_is_a_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith(message)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_greedy_alone_arrives_in_exactly_its_shortest_path_length(seed):
    scenario = Scenario(
        map=MapSpec(width=12, height=12, density=0.3), agents=AgentsSpec(count=1),
        dynamics=DynamicsSpec(on_target="finish", max_episode_steps=200), seed=seed,
    )  # fmt: skip
    probe = GridEnv(scenario)
    probe.reset()  # the first episode, as play_episodes() will start it
    distance = int(probe.distance_to_goal()[0, 0])
    env = GridEnv(scenario)
    rows = play_episodes(env, make_policy("greedy", env, seed), episodes=1)
    assert rows[0]["ISR"] == 1.0 and rows[0]["CSR"] == 1.0
    assert rows[0]["ep_length"] == distance


def test_play_collects_the_requested_number_of_episodes_from_several_envs():
    scenario = Scenario(map=MapSpec(width=8, height=8), agents=AgentsSpec(count=4),
                        dynamics=DynamicsSpec(max_episode_steps=16), seed=1)  # fmt: skip
    env = GridEnv(scenario, num_envs=3)
    rows = play_episodes(env, make_policy("random", env, 0), episodes=5)
    assert len(rows) == 5
    assert all(0.0 <= row["ISR"] <= 1.0 for row in rows)


def test_metrics_table_lists_every_episode_and_the_mean():
    table = metrics_table([{"ISR": 0.5, "ep_length": 10.0}, {"ISR": 1.0, "ep_length": 20.0}]).splitlines()
    assert table[0].split() == ["episode", "ISR", "ep_length"]
    assert table[1].split() == ["0", "0.5", "10"]
    assert table[-1].split() == ["mean", "0.75", "15"]
    assert np.unique([len(line) for line in table]).size == 1  # columns aligned
