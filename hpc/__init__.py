"""The cluster runtime: MPI data parallelism, checkpoints, preemption, SLURM.

Imports nothing else of GridSwarm but `optdeps` (torch, numpy, optionally mpi4py; pyyaml for SLURM site
files). The API
a trainer uses, in the order of a run:

    comm = hpc.get_comm()                       # MpiComm under mpiexec/srun, else one process
    device = hpc.device_for_rank(requested)     # "auto" | "cpu" | "cuda" | "cuda:N"
    hpc.broadcast_params(comm, model)           # same start on every rank
    averager = hpc.GradientAverager(comm, model)
    ...  loss.backward(); averager.average_(); clip; optimizer.step()
    metrics = comm.gather_metrics({"loss": ..., "success": ...})   # NaN = no value on this rank
    hpc.check_params_equal(comm, model)         # now and then: HpcError naming diverged ranks
    if comm.is_root: hpc.save_checkpoint(run_dir / "checkpoints", step, tensors, meta, keep=3)
    tensors, meta, path = hpc.load_latest(run_dir / "checkpoints")   # NoCheckpointError if none
    rng_tensors, rng_meta = hpc.capture_rng({"env": generator}); hpc.restore_rng(...)
    with hpc.PreemptionHandler() as preemption: ... preemption.stop_requested(comm) ... hpc.requeue_job()

`hpc.slurm` renders and submits the sbatch templates of slurm/.
"""

from hpc.checkpoint import (
    CheckpointError,
    NoCheckpointError,
    checkpoint_path,
    first_non_finite,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    save_checkpoint,
)
from hpc.comm import Comm, MpiComm, device_for_rank, env_local_rank, get_comm
from hpc.errors import HpcError
from hpc.grads import GradientAverager, broadcast_params, check_params_equal, params_hash
from hpc.preempt import PreemptionHandler, requeue_job, restart_count, slurm_job_ref
from hpc.rng import capture_rng, restore_rng

__all__ = [
    "CheckpointError",
    "Comm",
    "GradientAverager",
    "HpcError",
    "MpiComm",
    "NoCheckpointError",
    "PreemptionHandler",
    "broadcast_params",
    "capture_rng",
    "check_params_equal",
    "checkpoint_path",
    "device_for_rank",
    "env_local_rank",
    "first_non_finite",
    "get_comm",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest",
    "params_hash",
    "requeue_job",
    "restart_count",
    "restore_rng",
    "save_checkpoint",
    "slurm_job_ref",
]
