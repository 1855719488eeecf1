"""benchmarks/planner_table.py: a trained policy's column plays every benchmark task in one batch exactly as
each would play alone, and a bad --policies entry is one line."""

import subprocess
import sys

import pytest

from memory import make_policy
from scenarios.schema import ObservationSpec
from tests.benchmarks.helpers import BENCHMARKS, benchmark_script

SCRIPT = BENCHMARKS / "planner_table.py"


@pytest.fixture(scope="module")
def table():
    with benchmark_script("planner_table") as module:
        yield module


def test_a_trained_policy_plays_each_task_in_the_batch_as_alone(table):
    layouts = table.generated_layouts("random", 3)
    assert len({layout.shape for layout in layouts}) > 1  # maps of different sizes share the batch
    observation = ObservationSpec(radius=5, channels=("obstacles", "agents", "goal"))
    obs_shape = table.episode_env(layouts[:1], 8, 16, observation).obs_shape
    player = table.TrainedPolicy("rmt", make_policy("rmt", tuple(obs_shape), seed=0), observation)
    batched = table.throughputs(layouts, 8, 16, player, seed=3)
    alone = [table.throughputs([layout], 8, 16, player, seed=3)[0] for layout in layouts]
    assert batched == alone
    assert all(0.0 <= value <= 8.0 for value in batched) and max(batched) > 0.0


def test_an_unknown_policy_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--policies", "pibt", "absent-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("planner_table: --policies absent-run:"), line


def test_a_policy_trained_at_another_radius_is_one_line(tmp_path):
    """The benchmark observes at radius 5: a policy whose run stored a radius-2 scenario is refused before
    it plays, in planner_table and lifelong_table alike, rather than failing on the first observation."""
    import scenarios
    from hpc.checkpoint import save_checkpoint
    from marl.run_dir import CHECKPOINT_FORMAT
    from scenarios.loader import to_dict

    scenario = scenarios.load("bottleneck")
    assert scenario.observation.radius == 2
    policy = make_policy("gru", (3, 5, 5), seed=0)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "policy_config": policy.config.to_dict(),
        "update": 1,
        "scenario": scenario.name,
        "scenario_spec": to_dict(scenario),
    }
    save_checkpoint(tmp_path / "run" / "checkpoints", 1, {"policy": policy.state_dict()}, meta)
    for script, arguments in (
        (SCRIPT, ["--sets", "random", "--maps", "1", "--policies", str(tmp_path / "run")]),
        (SCRIPT.with_name("lifelong_table.py"), [str(tmp_path / "run"), "--episodes", "1"]),
    ):
        done = subprocess.run(
            [sys.executable, str(script), *arguments],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 2 and done.stdout == "", done.stderr[-500:]
        (line,) = done.stderr.splitlines()
        assert "trained at observation radius 2; the benchmark observes at radius 5" in line, line


def run_table(arguments: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_the_out_of_distribution_set_plays_its_maps_beside_its_published_cells(tmp_path):
    """`--sets movingai` reads 04-movingai.yaml from --data, plays 256 steps and quotes the published
    cells of its own agent counts."""
    rows = "\n".join("  " + "." * 64 for _ in range(64))
    (tmp_path / "04-movingai.yaml").write_text(f'"Open_64": |-\n{rows}\n')
    done = run_table(
        ["--sets", "movingai", "--data", str(tmp_path), "--policies", "greedy", "--agents", "64"], tmp_path
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert "### LMAPF 04-movingai: 1 maps of 04-movingai.yaml, 256 steps, avg_throughput" in done.stdout
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 64 |")]
    assert row.split("<!--")[0].rstrip().endswith("| 1.503 | 1.570 | 1.572 |")  # Follower, MATS-LP, RHCR


def test_generated_maps_stand_in_for_random_and_mazes_only(tmp_path):
    done = run_table(["--sets", "random", "movingai", "--generated", "2"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line == (
        "planner_table: --generated plays generated random and mazes maps only, not --sets movingai"
    )
