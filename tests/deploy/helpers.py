"""What the deploy tests and benchmarks share: policies reproducible from their seed, the C-vs-torch error."""

from __future__ import annotations

import numpy as np
import torch

import memory


def decisive_policy(
    name: str, obs_shape: tuple[int, int, int], seed: int, *, scope: str = "local", perturb: float = 0.0
) -> memory.SwarmPolicy:
    """A drone-preset policy with decisive, goal-seeking-sized logits (an orthogonal head of gain 2), as after
    training; `perturb` adds that much Gaussian noise to every weight so that equal initial values (zero
    biases) do not share one constant in the C. Everything is drawn from `seed`."""
    policy = memory.make_policy(name, obs_shape, preset="drone", scope=scope, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(perturb * torch.randn(parameter.shape, generator=generator))
    torch.nn.init.orthogonal_(policy.policy_head.weight, gain=2.0, generator=generator)
    return policy


def max_error(c_outputs: list[np.ndarray], torch_outputs: tuple[torch.Tensor, ...]) -> float:
    """The largest absolute difference between the C function's outputs and torch's, over all outputs."""
    return max(
        float(np.abs(c - t.detach().float().numpy()).max(initial=0.0))
        for c, t in zip(c_outputs, torch_outputs, strict=True)
    )
