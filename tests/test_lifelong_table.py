"""benchmarks/lifelong_table.py from a clone: a complete --help, one-line errors, and no third-party file
needed (the maps are regenerated)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lifelong_table.py"


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
