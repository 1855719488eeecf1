"""The MPI communicator of a data-parallel run, with a one-process fallback.

Every collective goes through the uppercase, buffer-based mpi4py calls on contiguous CPU arrays (one
`Allreduce(IN_PLACE)` per call, no pickling). Without mpi4py, without an MPI library, or without an MPI
launcher in the environment, `get_comm()` returns a `Comm` of size 1 whose collectives are identities, so
the same training code runs as one process; a launcher that started several ranks without mpi4py is an
`optdeps.MissingPackageError` naming the install command (each rank alone would train a separate run).

Under SLURM the world size must equal `SLURM_NTASKS`: a launcher whose process-management interface does
not match the MPI library starts N independent one-process jobs without any error, each training alone.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from hpc.errors import HpcError
from optdeps import require

# Variables that an MPI launcher (MPICH hydra, Open MPI, PMIx, srun --mpi=pmi2|pmix) exports to each rank.
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE")
WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
# MPICH Hydra's own first: under `mpiexec -bootstrap slurm` every rank inherits SLURM_LOCALID=0 from the
# one-task srun step that started its node's proxy.
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK")

_notified = False


class Comm:
    """A world of one process: every collective returns its input. Base of `MpiComm`."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_root(self) -> bool:
        """True on rank 0, the only rank that logs and writes checkpoints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank reaches this call."""

    def allreduce_mean_(self, flat: torch.Tensor) -> torch.Tensor:
        """Replace `flat` (1-D contiguous CPU float32) by its mean over ranks, in place; return it."""
        _require_flat_float32(flat)
        return flat

    def allreduce_sum_numpy(self, array: np.ndarray) -> np.ndarray:
        """Replace a contiguous numpy array by its element-wise sum over ranks, in place; return it."""
        _require_contiguous(array)
        return array

    def allreduce_max_numpy(self, array: np.ndarray) -> np.ndarray:
        """Replace a contiguous numpy array by its element-wise maximum over ranks, in place; return it."""
        _require_contiguous(array)
        return array

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        """Overwrite a contiguous CPU tensor with its value on `root`, in place; return it."""
        _require_cpu_contiguous(tensor)
        return tensor

    def allgather_numpy(self, array: np.ndarray) -> np.ndarray:
        """Stack every rank's array (same shape and dtype on all ranks): shape (size, *array.shape)."""
        _require_contiguous(array)
        return array[np.newaxis].copy()

    def gather_to_root(self, value: Any) -> list[Any] | None:
        """Every rank's `value` (picklable: arrays of any shapes, tensors) as a list on rank 0, None
        elsewhere: for state written once per checkpoint (the environments), not for per-step traffic."""
        return [value]

    def gather_metrics(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """Mean of each metric over the ranks that report a finite value (NaN where none does).

        Every rank must pass the same keys; every rank receives the result. NaN marks "no value here"
        (e.g. no episode ended on this rank during the update), so it is left out of the mean.
        """
        names = sorted(metrics)
        self._require_same_keys(names)
        values = np.array([float(metrics[name]) for name in names], dtype=np.float64)
        present = np.isfinite(values)
        # One Allreduce for both the sums and the counts: [sum_0..sum_k, count_0..count_k].
        sums_and_counts = np.concatenate([np.where(present, values, 0.0), present.astype(np.float64)])
        self.allreduce_sum_numpy(sums_and_counts)
        sums, counts = np.split(sums_and_counts, 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return {name: float(mean) for name, mean in zip(names, means, strict=True)}

    def ranks_differing_from_root(self, digest: bytes) -> list[int]:
        """The ranks whose `digest` (same length on every rank) differs from rank 0's; a collective call."""
        digests = self.allgather_numpy(np.frombuffer(digest, dtype=np.uint8).copy())  # (size, len) uint8
        return [rank for rank in range(self.size) if not np.array_equal(digests[rank], digests[0])]

    def _require_same_keys(self, names: list[str]) -> None:
        differing = self.ranks_differing_from_root(hashlib.sha256("\0".join(names).encode()).digest())
        if differing:
            raise HpcError(
                f"gather_metrics: ranks {differing} report other metric names than rank 0 "
                f"(rank {self.rank} has {names})"
            )


class MpiComm(Comm):
    """`COMM_WORLD` of a run started by an MPI launcher."""

    def __init__(self, mpi: object) -> None:
        self._mpi = mpi
        self._world = mpi.COMM_WORLD
        self.rank = self._world.Get_rank()
        self.size = self._world.Get_size()
        # Ranks sharing a node (shared memory) give the node-local rank, whatever the launcher exports.
        node = self._world.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = node.Get_rank()
        self.local_size = node.Get_size()
        node.Free()

    def barrier(self) -> None:
        self._world.Barrier()

    def allreduce_mean_(self, flat: torch.Tensor) -> torch.Tensor:
        _require_flat_float32(flat)
        self._world.Allreduce(self._mpi.IN_PLACE, flat.detach().numpy(), op=self._mpi.SUM)
        flat.div_(self.size)
        return flat

    def allreduce_sum_numpy(self, array: np.ndarray) -> np.ndarray:
        _require_contiguous(array)
        self._world.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)
        return array

    def allreduce_max_numpy(self, array: np.ndarray) -> np.ndarray:
        _require_contiguous(array)
        self._world.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.MAX)
        return array

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        _require_cpu_contiguous(tensor)
        # Bcast moves bytes, so any dtype (bfloat16 and bool included) travels as raw uint8.
        self._world.Bcast(tensor.detach().reshape(-1).view(torch.uint8).numpy(), root=root)
        return tensor

    def allgather_numpy(self, array: np.ndarray) -> np.ndarray:
        _require_contiguous(array)
        gathered = np.empty((self.size, *array.shape), dtype=array.dtype)
        self._world.Allgather(array, gathered)
        return gathered

    def gather_to_root(self, value: Any) -> list[Any] | None:
        # The pickle-based gather: ranks' snapshots differ in size, it runs once per checkpoint, and it
        # only carries this run's own arrays between its processes.
        return self._world.gather(value, root=0)


def get_comm() -> Comm:
    """The communicator of this process: `MpiComm` under an MPI launcher, else a one-process `Comm`.

    Raises `HpcError` when SLURM started more tasks than the MPI world holds (mismatched PMI).
    """
    if not any(name in os.environ for name in LAUNCHER_VARIABLES):
        _require_slurm_world_size(1)  # before the notice: srun without PMI must fail, not fall back
        comm = _single_process("no MPI launcher in the environment")
    else:
        try:
            from mpi4py import MPI
        except ImportError as error:
            ranks = launcher_world_size()
            if ranks > 1:  # one process each would start `ranks` separate runs into one run directory
                require("mpi4py", "mpi", f"a launch of {ranks} MPI ranks")
                raise HpcError(
                    f"a launch of {ranks} MPI ranks, but mpi4py cannot load MPI ({error})"
                ) from None
            comm = _single_process(f"mpi4py is not installed ({error})")
        except RuntimeError as error:
            comm = _single_process(f"the MPI library could not be loaded ({error})")
        else:
            comm = MpiComm(MPI)
    _require_slurm_world_size(comm.size)
    return comm


def device_for_rank(requested: str = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device of this rank: the GPU of its node-local rank, or the CPU.

    `requested` is "auto" (a GPU if any, else the CPU), "cpu", "cuda" (the node-local rank's GPU; an
    error when there is none) or "cuda:N" (that GPU). `local_rank` defaults to the launcher's
    SLURM_LOCALID / MPI_LOCALRANKID / OMPI_COMM_WORLD_LOCAL_RANK, else 0.
    """
    if requested == "cpu":
        return torch.device("cpu")
    if requested not in ("auto", "cuda") and not requested.startswith("cuda:"):
        raise HpcError(f"device {requested!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        if requested == "auto":
            return torch.device("cpu")
        raise HpcError(f"device {requested!r} requested but torch sees no CUDA device on this node")
    if requested.startswith("cuda:"):
        return torch.device(requested)
    rank = env_local_rank() if local_rank is None else local_rank
    # With one GPU per task (--gpus-per-task) each rank sees a single device, index 0.
    return torch.device("cuda", rank % torch.cuda.device_count())


def launcher_world_size() -> int:
    """The number of ranks the MPI launcher says it started (PMI_SIZE, OMPI_COMM_WORLD_SIZE), 1 when none
    says."""
    for name in WORLD_SIZE_VARIABLES:
        if name in os.environ:
            return _int_variable(name)
    return 1


def env_local_rank() -> int:
    """The node-local rank that the launcher exports, 0 when none does."""
    for name in LOCAL_RANK_VARIABLES:
        if name in os.environ:
            return _int_variable(name)
    return 0


def _single_process(reason: str) -> Comm:
    global _notified
    if not _notified:
        print(f"gridswarm.hpc: running as a single process: {reason}", file=sys.stderr)
        _notified = True
    return Comm()


def _require_slurm_world_size(size: int) -> None:
    # SLURM_NTASKS is set in an allocation; SLURM_STEP_ID only inside an srun step, where it is the
    # step's own task count. In the batch shell itself (one process) there is nothing to compare. Under
    # Hydra (MPI_LOCALRANKID set) srun only started the proxies: its task counts are not the ranks'.
    in_srun_step = "SLURM_NTASKS" in os.environ and "SLURM_STEP_ID" in os.environ
    if not in_srun_step or "MPI_LOCALRANKID" in os.environ:
        return
    expected = _int_variable("SLURM_NTASKS")
    if size != expected:
        raise HpcError(
            f"SLURM started {expected} tasks but the MPI world has {size} rank(s): the launcher's process "
            "management interface does not match the MPI library; start the step with "
            "`srun --mpi=pmi2` (MPICH) or `srun --mpi=pmix` (Open MPI)"
        )


def _int_variable(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise HpcError(f"environment variable {name}={value!r}: expected an integer") from None


def _require_contiguous(array: np.ndarray) -> None:
    if not array.flags.c_contiguous:
        raise ValueError(f"expected a C-contiguous numpy array, got strides {array.strides}")


def _require_cpu_contiguous(tensor: torch.Tensor) -> None:
    if tensor.device.type != "cpu" or not tensor.is_contiguous():
        raise ValueError(
            f"expected a contiguous CPU tensor, got {tensor.device} (contiguous: {tensor.is_contiguous()})"
        )


def _require_flat_float32(flat: torch.Tensor) -> None:
    _require_cpu_contiguous(flat)
    if flat.dtype != torch.float32 or flat.dim() != 1:
        raise ValueError(f"expected a 1-D float32 tensor, got {flat.dtype} of shape {tuple(flat.shape)}")
