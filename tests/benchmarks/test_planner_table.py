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


WAREHOUSE_LIKE = "\n".join(
    [
        "..........",
        ".$$.@@@@..",
        ".$$.####..",
        ".$$.@@@@..",
        "..........",
        ".$$.@@@@..",
        ".$$.####..",
        ".$$.@@@@..",
        "..........",
    ]
)


def warehouse_like_layout():
    from scenarios.asciimap import parse_ascii_map
    from sim.maps import layout_from_ascii

    return layout_from_ascii(parse_ascii_map(WAREHOUSE_LIKE), "warehouse-like")


def test_task_seeds_on_one_map_play_pogemas_tasks(table):
    """The warehouse set's episodes (one map, task seeds 0..K-1, starts on `@` and goals on `$` cells) are
    POGEMA's: the same positions and goals at every step of a lifelong episode under the same actions (PIBT's,
    so that agents arrive and POGEMA draws their next goals: about 40 arrivals per episode)."""
    pogema = pytest.importorskip("pogema")
    from sim.baselines import make_baseline

    layout = warehouse_like_layout()
    for task in (0, 1, 7):
        config = pogema.GridConfig(
            map=WAREHOUSE_LIKE, seed=task, num_agents=6, on_target="restart", obs_radius=5,
            collision_system="soft", max_episode_steps=48, observation_type="POMAPF",
        )  # fmt: skip
        reference = pogema.pogema_v0(grid_config=config)
        reference.reset()
        ours = table.episode_env([layout], 6, 48, task_seeds=[task])
        ours.reset()
        planner = make_baseline("pibt", ours, seed=0)
        arrivals = 0
        for _ in range(48):
            assert (ours.positions[0] == reference.grid.get_agents_xy(ignore_borders=True)).all()
            assert (ours.goals[0] == reference.grid.get_targets_xy(ignore_borders=True)).all()
            actions = planner()
            reference.step(actions[0].tolist())
            arrivals += int(ours.step(actions)[1].sum())
        assert arrivals >= 20


def test_task_seeds_play_in_one_batch_as_alone(table):
    """Trained policies play the warehouse set's tasks in one batch: each task plays as it would alone, and
    different seeds are different tasks."""
    layout = warehouse_like_layout()
    observation = ObservationSpec(radius=5, channels=("obstacles", "agents", "goal"))
    obs_shape = table.episode_env([layout], 6, 16, observation).obs_shape
    player = table.TrainedPolicy("rmt", make_policy("rmt", tuple(obs_shape), seed=0), observation)
    tasks = [0, 1, 2, 3]
    batched = table.throughputs([layout] * 4, 6, 32, player, seed=3, task_seeds=tasks)
    alone = [table.throughputs([layout], 6, 32, player, seed=3, task_seeds=[task])[0] for task in tasks]
    assert batched == alone
    starts = []
    for task in tasks:
        env = table.episode_env([layout], 6, 32, task_seeds=[task])
        env.reset()
        starts.append(env.positions[0].tobytes())
    assert len(set(starts)) == len(tasks)


def test_the_warehouse_set_plays_task_seeds_on_its_one_map(tmp_path):
    """`--sets warehouse` reads 03-warehouse.yaml from --data, plays the first --maps task seeds on its one
    map and quotes the published cells of its own agent counts."""
    rows = "\n".join("  " + (".@@@@@@@@." if row % 2 else ".$$$$$$$$.") for row in range(10))
    (tmp_path / "03-warehouse.yaml").write_text(f'"wfi_warehouse": |-\n{rows}\n')
    done = run_table(
        [
            "--sets",
            "warehouse",
            "--data",
            str(tmp_path),
            "--policies",
            "pibt",
            "--agents",
            "32",
            "--maps",
            "3",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert (
        "### LMAPF 03-warehouse: 1 maps of 03-warehouse.yaml, 3 tasks, 256 steps, avg_throughput"
        in done.stdout
    )
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 32 |")]
    assert row.split("<!--")[0].rstrip().endswith("| 1.127 | 1.109 | 1.225 |")  # Follower, MATS-LP, RHCR
