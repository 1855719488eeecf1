"""Policy-guided PIBT (`marl.guided`, `gridswarm run --guide`): the policy's action probabilities reach
PIBT as move preferences, the joint moves stay conflict-free, and the command line reports the mode as
centralized and refuses what it cannot do in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import memory
import sim.episodes
from gridswarm.cli import main
from marl.evaluate import PolicyActor
from marl.guided import GuidedPlanner
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim.env import GridEnv
from sim.layout import MapLayout
from tests.marl import test_pretrained
from tests.planners.instances import conflicts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

trained = test_pretrained.trained  # the fixture: a tiny MAPPO run and its scenario file

OBSERVATION = ObservationSpec(radius=2, channels=("obstacles", "agents", "goal"))


def open_env(starts: list[tuple[int, int]], goals: list[tuple[int, int]], size: int = 7) -> GridEnv:
    """An empty size x size map with these agents, lifelong, reset."""
    scenario = Scenario(
        map=MapSpec(width=size, height=size),
        agents=AgentsSpec(count=len(starts)),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart", max_episode_steps=32),
        observation=OBSERVATION,
    )
    layout = MapLayout(np.zeros((size, size), dtype=np.uint8), starts=np.array(starts), goals=np.array(goals))
    env = GridEnv(scenario, 1, seed=0, auto_reset=False, _layouts=lambda _env, _seed: layout)
    env.reset()
    return env


def untrained_policy(env: GridEnv, seed: int):
    return memory.make_policy("gru", tuple(env.obs_shape), seed=seed)


@pytest.mark.parametrize("seed", range(4))
def test_a_lone_agent_takes_the_policys_most_probable_move(seed):
    # nothing blocks a lone agent in the middle of an open map: PIBT takes the policy's favourite move,
    # wherever its goal is; a second actor on a twin env gives the policy's argmax
    env, twin = open_env([(3, 3)], [(0, 0)]), open_env([(3, 3)], [(0, 0)])
    policy = untrained_policy(env, seed)
    guided = GuidedPlanner(policy, env, "pibt", seed=0)
    argmax = PolicyActor(policy, twin, greedy=True)
    for _ in range(3):
        favourite = argmax()
        actions = guided()
        np.testing.assert_array_equal(actions, favourite)
        probabilities = torch.softmax(torch.from_numpy(guided.preferences), -1).numpy()
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
        env.step(actions)
        twin.step(favourite)


@pytest.mark.parametrize("planner", ["pibt", "pibt-swap", "pibt-guided"])
def test_a_crowd_guided_by_any_policy_moves_without_conflicts(planner):
    rng = np.random.default_rng(1)
    cells = rng.permutation(49)[:30]
    starts = [(int(c) // 7, int(c) % 7) for c in cells]
    goals = [(int(c) // 7, int(c) % 7) for c in rng.permutation(49)[:30]]
    env = open_env(starts, goals)
    guided = GuidedPlanner(untrained_policy(env, 0), env, planner, seed=0)
    for _ in range(12):
        before = env.positions[0].copy()
        actions = guided().copy()
        planned = guided.planner.planned[0].copy()
        assert conflicts(before, planned, env.active[0]) == (0, 0)
        env.step(actions)
        np.testing.assert_array_equal(env.positions[0], planned)


def test_a_planner_that_takes_no_preferences_is_refused():
    env = open_env([(3, 3)], [(0, 0)])
    with pytest.raises(ValueError, match="not 'pibt-lns'"):
        GuidedPlanner(untrained_policy(env, 0), env, "pibt-lns")


def test_run_guide_plays_and_records_the_mode_as_centralized(trained, tmp_path, capsys):
    run, scenario_file = trained
    store = tmp_path / "guided.zarr"
    argv = ["run", str(scenario_file), "--policy", "pibt", "--guide", str(run), "--episodes", "2"]
    assert main([*argv, "--record", str(store)]) == 0
    out = capsys.readouterr().out
    assert (
        out.splitlines()[0]
        == f"imitation-tiny: pibt guided by {run} (centralized) policy, 2 episodes, 1 envs"
    )
    opened = sim.episodes.open(store)
    assert all("(centralized" in opened[i].info.policy for i in opened.ids())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy", "greedy"], "--guide orders a planner's moves: --policy must be one of pibt, pibt-swap"),
        (["--policy", "pibt-lns"], "not 'pibt-lns'"),
    ],
)
def test_run_guide_refuses_a_policy_it_cannot_guide_in_one_line(trained, extra, message, capsys):
    run, scenario_file = trained
    assert main(["run", str(scenario_file), "--guide", str(run), *extra]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line


def test_run_guide_refuses_an_unknown_guide_in_one_line(tmp_path, capsys):
    assert main(["run", "random", "--policy", "pibt", "--guide", str(tmp_path / "absent")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--guide" in line and "absent" in line and "expected a checkpoint" in line
