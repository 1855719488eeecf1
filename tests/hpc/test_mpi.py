"""Several MPI ranks launched by mpiexec (the mpich wheel's, next to this python)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

PROGRAMS = Path(__file__).parent / "mpi_programs"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
if not MPIEXEC.exists():
    pytest.skip(f"no mpiexec next to {sys.executable} (install the 'mpi' extra)", allow_module_level=True)


def run_ranks(program: str, *args: str, ranks: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [str(MPIEXEC), "-n", str(ranks), sys.executable, str(PROGRAMS / program), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


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
