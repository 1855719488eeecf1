"""benchmarks/lifelong_table.py from a clone: a complete --help, one-line errors, and no third-party file
needed (the maps are regenerated)."""

import subprocess
import sys
from pathlib import Path

from memory import make_policy
from scenarios.schema import ObservationSpec
from tests.benchmarks.helpers import BENCHMARKS, benchmark_script

SCRIPT = BENCHMARKS / "lifelong_table.py"


def run(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_help_states_the_whole_protocol(tmp_path):
    done = run("--help", cwd=tmp_path)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "on the benchmark's lifelong (LMAPF) Random protocol." in text  # the description, whole
    assert "avg_throughput = arrivals / 256." in text and text.endswith("128 runs per cell).")
    for option in ("--episodes", "--seed", "--agents", "--maps", "--greedy-actions"):
        assert option in text


def test_a_missing_maps_file_or_run_is_one_line(tmp_path):
    for arguments, expected in (
        (("run", "--maps", "absent.yaml"), "lifelong_table: --maps absent.yaml: no such file"),
        ((str(tmp_path),), f"lifelong_table: {tmp_path}: a directory without checkpoints"),
    ):
        done = run(*arguments, cwd=tmp_path)
        assert done.returncode == 2 and done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith(expected), line


def test_the_policy_column_replays_its_episodes(tmp_path):
    """The policy's throughput is measured on the same episodes every time (per-episode sampling streams),
    and is a rate of arrivals per step."""
    with benchmark_script("lifelong_table") as table:
        maps = table.write_maps_yaml(
            tmp_path / "01-random.yaml", dict(list(table.validation_random_maps().items())[:2])
        )
        scenario = table.benchmark_scenario(
            maps, 8, ObservationSpec(radius=5, channels=("obstacles", "agents", "goal"))
        )
        obs_shape = table.GridEnv(scenario, 1, seed=0).obs_shape
        policy = make_policy("empty", tuple(obs_shape), seed=0)
        first, again = (table.policy_throughput(scenario, policy, 2, seed=3, greedy=False) for _ in range(2))
    assert first == again and 0.0 <= first <= 8.0
