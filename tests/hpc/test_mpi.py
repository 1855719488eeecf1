"""Several MPI ranks launched by mpiexec (the mpich wheel's, next to this python)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from marl.run_dir import latest_checkpoint, read_metrics

pytestmark = pytest.mark.mpi

PROGRAMS = Path(__file__).parent / "mpi_programs"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
if not MPIEXEC.exists():
    pytest.skip(f"no mpiexec next to {sys.executable} (install the 'mpi' extra)", allow_module_level=True)


def run_ranks(program: str, *args: str, ranks: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [str(MPIEXEC), "-n", str(ranks), sys.executable, str(PROGRAMS / program), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


TINY = Path(__file__).parent / "tiny.yaml"
TINY_TRAINING = (
    "--model",
    "gru",
    "--device",
    "cpu",
    "--set",
    "num_envs=2",
    "--set",
    "rollout_length=8",
    "--set",
    "chunk_length=4",
    "--set",
    "num_minibatches=2",
    "--set",
    "checkpoint_every=2",
    "--set",
    "eval_episodes=0",
)


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_collectives_equal_the_local_reductions():
    result = run_ranks("collectives.py")
    assert_succeeded(result)
    assert "ok rank 0 of 2" in result.stdout and "ok rank 1 of 2" in result.stdout


def test_data_parallel_gradients_equal_one_rank_with_all_samples_and_replicas_stay_equal():
    result = run_ranks("data_parallel.py")
    assert_succeeded(result)
    hashes = {line.split("hash ")[1][:12] for line in result.stdout.split("data parallel ok")[1:]}
    assert len(hashes) == 1, result.stdout


def test_a_preemption_signal_on_one_rank_stops_every_rank_at_the_same_update():
    result = run_ranks("preempted.py", "7")
    assert_succeeded(result)
    assert "stopped rank 0 update 7 local False" in result.stdout, result.stdout
    assert "stopped rank 1 update 7 local True" in result.stdout, result.stdout


@pytest.mark.parametrize("death", ["exit", "kill"])
def test_a_rank_that_dies_ends_the_whole_job_with_a_failure_within_a_minute(death):
    started = time.monotonic()
    try:
        result = run_ranks("crash.py", death, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mpiexec still running 60 s after a rank died ({death})")
    assert result.returncode != 0
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_ranks_with_e_envs_update_like_one_process_with_all_envs_and_stay_equal(tmp_path):
    result = run_ranks("train_equivalence.py", str(tmp_path / "run"), timeout=300)
    assert_succeeded(result)
    assert "gradient equivalence ok rank 0 of 2" in result.stdout
    assert "gradient equivalence ok rank 1 of 2" in result.stdout
    hashes = {line.split("hash ")[1][:64] for line in result.stdout.split("trained rank")[1:]}
    assert len(hashes) == 1, result.stdout


@pytest.mark.slow
def test_gridswarm_train_on_two_ranks_writes_one_run_with_both_ranks_state(tmp_path):
    steps_per_update = 8 * 2 * 4 * 2  # rollout x envs x agents x ranks
    command = [
        str(MPIEXEC),
        "-n",
        "2",
        sys.executable,
        "-m",
        "gridswarm.cli",
        "train",
        str(TINY),
        *TINY_TRAINING,
        "--steps",
        str(4 * steps_per_update),
        "--out",
        str(tmp_path / "run"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert_succeeded(result)
    assert "single process" not in result.stderr
    assert result.stdout.count("update 4/4") == 1, "only rank 0 logs"
    tensors, meta, path = latest_checkpoint(tmp_path / "run")
    assert meta["update"] == 4 and meta["world_size"] == 2 and path.name == "step-000000000004.ckpt"
    sampling = tensors["sampling_rng"]
    assert sampling.shape[0] == 2 and not torch.equal(sampling[0], sampling[1])
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [row["agent_steps"] for row in rows] == [steps_per_update * k for k in (1, 2, 3, 4)]
    # resuming with another world size would give the ranks other environments: refused in one line
    resume = [sys.executable, "-m", "gridswarm.cli", "train", "--resume", str(tmp_path / "run")]
    resumed = subprocess.run(resume, capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode == 2 and "written by 2 rank(s), resumed with 1" in resumed.stderr
