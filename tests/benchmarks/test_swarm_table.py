"""benchmarks/swarm_table.py: scripted and trained columns play the same task, the reported throughput is
the episode's arrivals per step, and bad input is one line with exit status 2."""

import subprocess
import sys

import numpy as np
import pytest

from marl.evaluate import PolicyActor
from memory import make_policy
from scenarios.errors import ScenarioError
from scenarios.schema import ObservationSpec
from sim import GridEnv
from sim.baselines import make_baseline
from tests.benchmarks.helpers import BENCHMARKS, benchmark_script

SCRIPT = BENCHMARKS / "swarm_table.py"
# a trained policy's observation unlike the scenario's own: more channels, fewer neighbours
TRAINED_OBSERVATION = ObservationSpec(
    radius=3,
    channels=("obstacles", "agents", "goal", "path", "other_goals"),
    neighbours=4,
    neighbour_radius=3,
)


@pytest.fixture(scope="module")
def table():
    with benchmark_script("swarm_table") as module:
        yield module


@pytest.fixture(scope="module")
def scenario(table):
    return table.with_steps(table.random_map_scenario(24, 16), 32)


def trained(table, scenario, radius=None):
    """A freshly initialized local-scope SRMT column reading TRAINED_OBSERVATION, built for the scenario's
    radius (or `radius`)."""
    radius = scenario.observation.radius if radius is None else radius
    probe = table.dataclasses.replace(
        scenario, observation=table.dataclasses.replace(TRAINED_OBSERVATION, radius=radius)
    )
    policy = make_policy("srmt", tuple(GridEnv(probe, 1).obs_shape), scope="local", seed=0)
    return table.TrainedPolicy("srmt", policy, TRAINED_OBSERVATION)


def test_scripted_and_trained_columns_play_the_same_task(table, scenario):
    scripted = table.make_env(scenario, "pibt", 7)
    learned = table.make_env(scenario, trained(table, scenario), 7)
    assert scripted.obs_shape[0] == 3 and learned.obs_shape == (5, 11, 11)  # the observations differ
    scripted.reset(seed=7)
    learned.reset(seed=7)
    assert learned.neighbours.shape[-1] == 4 and scripted.neighbours.shape[-1] == 8
    planner = make_baseline("pibt", scripted, 0)
    for _ in range(scenario.dynamics.max_episode_steps):  # the same moves: the same lifelong goals too
        for name in ("obstacles", "positions", "goals", "starts"):
            np.testing.assert_array_equal(getattr(scripted, name), getattr(learned, name), err_msg=name)
        actions = planner()
        scripted.step(actions)
        learned.step(actions)


@pytest.mark.parametrize("column", ["greedy", "pibt", "trained"])
def test_throughput_is_the_arrivals_per_step(table, scenario, column):
    player = trained(table, scenario) if column == "trained" else column
    cell = table.play(scenario, player, 3)
    env = table.make_env(scenario, player, 3)
    env.reset(seed=3)
    actor = PolicyActor(player.policy, env, 3) if column == "trained" else make_baseline(column, env, 3)
    arrivals = 0
    for _ in range(scenario.dynamics.max_episode_steps):
        goals = env.goals.copy()
        env.step(actor())
        arrivals += int(np.all(env.positions == goals, axis=-1).sum())
    assert cell.steps == 32
    assert cell.avg_throughput == pytest.approx(arrivals / 32, abs=1e-12)
    assert arrivals > 0 or column == "trained"
    assert cell.agent_steps_per_s == pytest.approx(24e3 / cell.step_ms)


def test_a_policy_trained_at_another_radius_is_refused(table, scenario):
    with pytest.raises(ScenarioError, match="radius 5 gives"):
        table.make_env(scenario, trained(table, scenario, radius=3), 0)


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["--policies", "pibt", "absent-run"], "swarm_table: --policies absent-run: "),
        (["--scenarios", "absent.yaml"], "swarm_table: --scenarios: absent.yaml"),
        (
            ["--scenarios", "lmapf-mixed"],
            "swarm_table: --scenarios: lmapf-mixed: expected a scenario without",
        ),
        (["--scenarios", "bottleneck"], "swarm_table: --scenarios: bottleneck: expected a lifelong scenario"),
        (["--scenarios", "--agents", "1000", "--side", "16"], "swarm_table: --agents: random-16x16-1000"),
        (["--steps", "0"], "swarm_table: error: argument --steps"),
    ],
)
def test_bad_input_is_one_line(tmp_path, argv, start):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(start), line
