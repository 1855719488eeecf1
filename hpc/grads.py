"""Gradient averaging and parameter agreement across data-parallel ranks.

Same initial parameters (broadcast from rank 0), averaged gradients and the same optimizer on every rank
keep the replicas identical without ever sending parameters again; `check_params_equal` verifies it.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from hpc.comm import Comm
from hpc.errors import HpcError


class GradientAverager:
    """Averages the gradients of a module's trainable parameters over all ranks with one Allreduce.

    The flat float32 CPU buffer is allocated once. A parameter without a gradient on this rank counts as
    a zero gradient and receives the average, so every rank takes the same optimizer step.
    """

    def __init__(self, comm: Comm, module: nn.Module) -> None:
        self.comm = comm
        self.params = [param for param in module.parameters() if param.requires_grad]
        self.flat = torch.zeros(sum(param.numel() for param in self.params), dtype=torch.float32)

    def average_(self) -> None:
        """Replace every parameter's `.grad` by its mean over ranks."""
        if self.comm.size == 1:
            return
        offset = 0
        for param in self.params:
            chunk = self.flat[offset : offset + param.numel()]
            if param.grad is None:
                chunk.zero_()
            else:
                chunk.copy_(param.grad.reshape(-1))
            offset += param.numel()
        self.comm.allreduce_mean_(self.flat)
        offset = 0
        for param in self.params:
            mean = self.flat[offset : offset + param.numel()].view_as(param)
            if param.grad is None:
                param.grad = mean.to(device=param.device, dtype=param.dtype, copy=True)
            else:
                param.grad.copy_(mean)
            offset += param.numel()


def params_hash(module: nn.Module) -> str:
    """SHA-256 (hex) of the module's parameters and buffers: names, dtypes, shapes and exact bytes."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_params_equal(comm: Comm, module: nn.Module) -> None:
    """Raise `HpcError` naming the ranks whose parameters differ from rank 0's (a collective call)."""
    diverged = comm.ranks_differing_from_root(bytes.fromhex(params_hash(module)))
    if diverged:
        raise HpcError(
            f"parameters diverged: ranks {diverged} differ from rank 0; "
            "replicas must start equal and see the same gradients"
        )


def broadcast_params(comm: Comm, module: nn.Module) -> None:
    """Overwrite every rank's parameters and buffers with rank 0's (a collective call)."""
    if comm.size == 1:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            staging = tensor.detach().cpu().contiguous().clone()
            comm.broadcast_(staging, root=0)
            tensor.copy_(staging)
