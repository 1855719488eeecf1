"""Run under `mpiexec -n R`: every collective of hpc.Comm against the same reduction computed locally."""

import numpy as np
import torch

import hpc

comm = hpc.get_comm()
assert comm.size > 1, f"expected an MPI world, got size {comm.size}"
assert 0 <= comm.local_rank < comm.local_size <= comm.size

# Each rank can recompute every other rank's data from the rank number alone.
per_rank = [
    np.random.default_rng(seed).standard_normal(1_000).astype(np.float32) for seed in range(comm.size)
]

flat = torch.from_numpy(per_rank[comm.rank].copy())
comm.allreduce_mean_(flat)
expected = np.mean(np.stack(per_rank), axis=0, dtype=np.float64)
assert np.allclose(flat.numpy(), expected, rtol=1e-5, atol=1e-6), (
    "allreduce_mean_ differs from the local mean"
)

summed = comm.allreduce_sum_numpy(np.arange(5, dtype=np.int64) * (comm.rank + 1))
assert summed.tolist() == [i * comm.size * (comm.size + 1) // 2 for i in range(5)], summed

maximum = comm.allreduce_max_numpy(np.array([comm.rank, -comm.rank], dtype=np.int32))
assert maximum.tolist() == [comm.size - 1, 0], maximum

for dtype in (torch.float32, torch.bfloat16, torch.int64, torch.bool):
    tensor = torch.full((3, 2), comm.rank + 1).to(dtype)
    comm.broadcast_(tensor, root=comm.size - 1)
    assert torch.equal(tensor, torch.full((3, 2), comm.size).to(dtype)), (dtype, tensor)

gathered = comm.allgather_numpy(np.array([comm.rank, 7], dtype=np.int16))
assert gathered.tolist() == [[rank, 7] for rank in range(comm.size)], gathered

# Rank 0 has no finished episode (NaN): the success mean is over the other ranks only.
metrics = comm.gather_metrics({"loss": float(comm.rank), "success": np.nan if comm.rank == 0 else 1.0})
assert metrics["loss"] == (comm.size - 1) / 2, metrics
assert metrics["success"] == 1.0, metrics
nowhere = comm.gather_metrics({"never": np.nan})
assert np.isnan(nowhere["never"]), nowhere

try:
    comm.gather_metrics({f"name_of_rank_{comm.rank}": 1.0})
except hpc.HpcError as error:
    assert "ranks [1" in str(error), error
else:
    raise AssertionError("gather_metrics accepted different metric names on different ranks")

comm.barrier()
print(f"collectives ok rank {comm.rank} of {comm.size}", flush=True)
