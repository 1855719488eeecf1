"""`gridswarm slurm submit` on a real one-node SLURM cluster: a 2-task MPI training job, and a preempted job
that checkpoints, requeues, resumes and ends where an uninterrupted job ends."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from marl.run_dir import latest_checkpoint, read_metrics

# about a minute on the shared 2-core box: two 480-update 2-task jobs, one preempted and requeued
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

MPIEXEC = Path(sys.executable).parent / "mpiexec"
if not MPIEXEC.exists():
    pytest.skip(f"no MPI next to {sys.executable} (install the 'mpi' extra)", allow_module_level=True)

TINY = Path(__file__).parent / "tiny.yaml"
# long enough that the preemption signal lands mid-run even on an idle machine: at ~9k agent-steps/s, 120
# updates of this size take under 2 s, which a signal through scancel and srun can miss
UPDATES = 480
STEPS_PER_UPDATE = 8 * 2 * 4 * 2  # rollout x envs x agents x ranks
TRAIN_ARGS = (
    f"--model gru --device cpu --steps {UPDATES * STEPS_PER_UPDATE} --set num_envs=2 "
    "--set epochs=1 "
    "--set num_minibatches=1 --set rollout_length=8 --set chunk_length=4 --set checkpoint_every=2 "
    "--set eval_episodes=0"
)
# The pip mpich wheel's default UCX netmod fails its address exchange in about 1 of 5 starts under
# srun --mpi=pmi2 (MPIDI_UCX_comm_addr_exchange); libfabric's tcp provider starts reliably
# (benchmarks/bench_slurm_start.py, docs/scaling.md).
SITE = {"setup": ["export MPIR_CVAR_CH4_NETMOD=ofi FI_PROVIDER=tcp"], "python": sys.executable}


def submit(cluster, tmp_path: Path, name: str, request) -> tuple[str, Path]:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(SITE))
    run_dir = tmp_path / name
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gridswarm.cli",
            "slurm",
            "submit",
            str(TINY),
            "--ntasks-per-node",
            "2",
            "--cpus-per-task",
            "1",
            "--time",
            "10",
            "--site",
            str(site),
            "--run-dir",
            str(run_dir),
            "--seed",
            "5",
            f"--train-args={TRAIN_ARGS}",
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    job = result.stdout.split("submitted train job ")[1].split(";")[0]
    # stopping the cluster does not end a running step: cancel the job when the test ends
    request.addfinalizer(lambda: cluster.run("scancel", job, check=False))
    return job, run_dir


def job_log(run_dir: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in (run_dir / "slurm").glob("*.out"))


def wait_until(condition, timeout: float, what: str, cluster, run_dir: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{job_log(run_dir)}\n{cluster.logs()}")
        time.sleep(0.1)


def restarts(cluster, job: str) -> int:
    shown = cluster.run("scontrol", "-o", "show", "job", job, check=False).stdout
    fields = dict(field.split("=", 1) for field in shown.split() if "=" in field)
    return int(fields.get("Restarts", "0"))


@pytest.fixture(scope="module")
def uninterrupted(slurm_cluster, tmp_path_factory, request):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    job, run_dir = submit(slurm_cluster, tmp_path, "run", request)
    state = slurm_cluster.wait_for_state(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=300)
    assert state == "COMPLETED", f"{state}\n{job_log(run_dir)}\n{slurm_cluster.logs()}"
    return run_dir


def test_a_two_task_training_job_writes_a_checkpoint_and_metrics_of_both_ranks(uninterrupted):
    tensors, meta, _ = latest_checkpoint(uninterrupted)
    assert meta["update"] == UPDATES and meta["world_size"] == 2
    assert tensors["sampling_rng"].shape[0] == 2
    rows = read_metrics(uninterrupted / "metrics.jsonl")
    assert [row["agent_steps"] for row in rows] == [STEPS_PER_UPDATE * k for k in range(1, UPDATES + 1)]
    assert "single process" not in job_log(uninterrupted)


def test_a_preempted_job_checkpoints_requeues_and_resumes_to_the_uninterrupted_parameters(
    slurm_cluster, uninterrupted, tmp_path, request
):
    job, run_dir = submit(slurm_cluster, tmp_path, "run", request)
    metrics = run_dir / "metrics.jsonl"
    wait_until(lambda: len(read_metrics(metrics)) >= 3, 240, "update 3", slurm_cluster, run_dir)
    slurm_cluster.run("scancel", "--signal=USR1", "--batch", job)
    wait_until(lambda: restarts(slurm_cluster, job) >= 1, 120, "the requeue", slurm_cluster, run_dir)
    # SLURM holds a requeued job back for a while (its begin time); start it now
    slurm_cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
    state = slurm_cluster.wait_for_state(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=300)
    log = job_log(run_dir)
    assert state == "COMPLETED", f"{state}\n{log}\n{slurm_cluster.logs()}"
    assert "stopped by SIGUSR1" in log and "SLURM job requeued" in log, log
    assert f"job {job} restart 1" in log, log
    stopped_after = int(re.search(r"stopped by SIGUSR1 after update (\d+), checkpointed", log).group(1))
    assert f"from update {stopped_after}" in log, "resumed from the checkpoint written on the signal"
    straight, _, _ = latest_checkpoint(uninterrupted)
    resumed, meta, _ = latest_checkpoint(run_dir)
    assert meta["update"] == UPDATES
    for name, tensor in straight["policy"].items():
        torch.testing.assert_close(resumed["policy"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert [row["update"] for row in read_metrics(metrics)] == list(range(1, UPDATES + 1))
