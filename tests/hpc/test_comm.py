"""The one-process communicator, launcher detection and device choice."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hpc
from hpc import comm as comm_module
from optdeps import MissingPackageError

LAUNCHER_AND_SLURM = (
    *comm_module.LAUNCHER_VARIABLES,
    *comm_module.LOCAL_RANK_VARIABLES,
    "SLURM_NTASKS",
    "SLURM_STEP_ID",
)


@pytest.fixture
def bare_environment(monkeypatch):
    for name in LAUNCHER_AND_SLURM:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_launcher_the_world_is_one_process_and_says_so_once(bare_environment, capsys):
    bare_environment.setattr(comm_module, "_notified", False)
    comm = hpc.get_comm()
    hpc.get_comm()
    assert (comm.rank, comm.size, comm.local_rank, comm.is_root) == (0, 1, 0, True)
    assert capsys.readouterr().err.count("running as a single process") == 1


def test_a_launcher_without_mpi4py_falls_back_to_one_process(bare_environment, capsys):
    bare_environment.setenv("PMI_RANK", "0")
    bare_environment.setitem(__import__("sys").modules, "mpi4py", None)
    bare_environment.setattr(comm_module, "_notified", False)
    assert hpc.get_comm().size == 1
    assert "mpi4py is not installed" in capsys.readouterr().err


def test_srun_tasks_that_are_not_one_mpi_world_are_refused(bare_environment):
    # What a mismatched PMI looks like from inside: srun started 4 tasks, each sees a world of 1.
    bare_environment.setenv("SLURM_NTASKS", "4")
    bare_environment.setenv("SLURM_STEP_ID", "0")
    with pytest.raises(hpc.HpcError, match=r"SLURM started 4 tasks but the MPI world has 1 rank.*--mpi=pmi2"):
        hpc.get_comm()


def test_ranks_of_hydra_inside_an_allocation_are_not_compared_with_the_proxy_step(bare_environment):
    # `mpiexec -bootstrap slurm`: srun started one proxy task per node; the ranks are Hydra's
    bare_environment.setenv("SLURM_NTASKS", "1")
    bare_environment.setenv("SLURM_STEP_ID", "0")
    bare_environment.setenv("MPI_LOCALRANKID", "0")
    assert hpc.get_comm().size == 1


def test_the_batch_shell_of_a_multi_task_job_is_not_a_step(bare_environment):
    bare_environment.setenv("SLURM_NTASKS", "4")
    assert hpc.get_comm().size == 1


def test_a_malformed_slurm_variable_is_named(bare_environment):
    bare_environment.setenv("SLURM_NTASKS", "four")
    bare_environment.setenv("SLURM_STEP_ID", "0")
    with pytest.raises(hpc.HpcError, match="SLURM_NTASKS='four'"):
        hpc.get_comm()


@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=50))
def test_one_process_collectives_are_identities(values):
    comm = hpc.Comm()
    flat = torch.tensor(values, dtype=torch.float32)
    before = flat.clone()
    assert comm.allreduce_mean_(flat) is flat and torch.equal(flat, before)
    array = np.array(values)
    assert np.array_equal(comm.allreduce_sum_numpy(array.copy()), array)
    assert np.array_equal(comm.allgather_numpy(array), array[None])


def test_gather_metrics_of_one_process_keeps_values_and_nan():
    metrics = hpc.Comm().gather_metrics({"loss": 0.5, "success": float("nan")})
    assert metrics["loss"] == 0.5 and np.isnan(metrics["success"])


@pytest.mark.parametrize(
    "tensor",
    [torch.zeros(4, dtype=torch.float64), torch.zeros(2, 2), torch.zeros(8)[::2]],
    ids=["float64", "2-D", "strided"],
)
def test_allreduce_mean_refuses_what_mpi_cannot_reduce_in_place(tensor):
    with pytest.raises(ValueError, match="expected"):
        hpc.Comm().allreduce_mean_(tensor)


def test_device_for_rank(bare_environment):
    assert hpc.device_for_rank("cpu") == torch.device("cpu")
    with pytest.raises(hpc.HpcError, match="expected 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        hpc.device_for_rank("gpu")
    if torch.cuda.is_available():
        bare_environment.setenv("SLURM_LOCALID", str(torch.cuda.device_count()))
        assert hpc.device_for_rank("auto") == torch.device("cuda", 0)
    else:
        assert hpc.device_for_rank("auto") == torch.device("cpu")
        with pytest.raises(hpc.HpcError, match="no CUDA device"):
            hpc.device_for_rank("cuda")


def test_local_rank_comes_from_the_launcher(bare_environment):
    assert hpc.env_local_rank() == 0
    bare_environment.setenv("MPI_LOCALRANKID", "3")
    assert hpc.env_local_rank() == 3
    # under `mpiexec -bootstrap slurm` every rank inherits SLURM_LOCALID=0 of its proxy's step
    bare_environment.setenv("SLURM_LOCALID", "0")
    assert hpc.env_local_rank() == 3
    bare_environment.delenv("MPI_LOCALRANKID")
    bare_environment.setenv("SLURM_LOCALID", "1")
    assert hpc.env_local_rank() == 1


def test_a_launch_of_several_ranks_without_mpi4py_names_the_install(bare_environment):
    # one process per rank would train 4 separate runs into one run directory
    bare_environment.setenv("PMI_RANK", "0")
    bare_environment.setenv("PMI_SIZE", "4")
    bare_environment.setitem(__import__("sys").modules, "mpi4py", None)
    with pytest.raises(
        MissingPackageError, match=r"^a launch of 4 MPI ranks needs .* mpi4py: pip install .*\[mpi\]"
    ):
        hpc.get_comm()
