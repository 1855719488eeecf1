"""Run under `mpiexec -n R`: R ranks x E samples average to the gradient of one rank with R*E samples,
and K optimizer steps keep every replica identical."""

import torch
from torch import nn

import hpc

SAMPLES_PER_RANK = 8
UPDATES = 5

comm = hpc.get_comm()
assert comm.size > 1, f"expected an MPI world, got size {comm.size}"


def toy_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def batch(update: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1_000 + update)
    inputs = torch.randn(comm.size * SAMPLES_PER_RANK, 4, generator=generator)
    targets = torch.randn(comm.size * SAMPLES_PER_RANK, 3, generator=generator)
    return inputs, targets


# Every rank starts from a different initialisation: broadcast_params must make them rank 0's.
model = toy_model(seed=comm.rank)
hpc.broadcast_params(comm, model)
reference = toy_model(seed=0)
assert hpc.params_hash(model) == hpc.params_hash(reference), "broadcast_params did not copy rank 0's values"

averager = hpc.GradientAverager(comm, model)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
reference_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
mine = slice(comm.rank * SAMPLES_PER_RANK, (comm.rank + 1) * SAMPLES_PER_RANK)
for update in range(UPDATES):
    inputs, targets = batch(update)
    optimizer.zero_grad()
    nn.functional.mse_loss(model(inputs[mine]), targets[mine]).backward()
    averager.average_()
    # The single-process reference sees all R*E samples at once.
    reference_optimizer.zero_grad()
    nn.functional.mse_loss(reference(inputs), targets).backward()
    for (name, param), ref in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert torch.allclose(param.grad, ref.grad, rtol=1e-5, atol=1e-6), f"update {update} {name}"
    optimizer.step()
    reference_optimizer.step()

hpc.check_params_equal(comm, model)
for param, ref in zip(model.parameters(), reference.parameters(), strict=True):
    assert torch.allclose(param, ref, rtol=1e-5, atol=1e-6), "data-parallel run left the reference"

# A replica that drifts is named.
if comm.rank == comm.size - 1:
    with torch.no_grad():
        next(model.parameters())[0, 0] += 1e-3
try:
    hpc.check_params_equal(comm, model)
except hpc.HpcError as error:
    assert f"ranks [{comm.size - 1}]" in str(error), error
else:
    raise AssertionError("check_params_equal missed a diverged rank")
print(f"data parallel ok rank {comm.rank} hash {hpc.params_hash(reference)[:12]}", flush=True)
