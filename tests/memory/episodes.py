"""Random batched inputs for the policy tests: observations, resets, active masks and neighbour lists."""

from __future__ import annotations

from dataclasses import dataclass

import torch

OBS_SHAPE = (3, 5, 5)


@dataclass(frozen=True)
class Episode:
    """T steps of E envs with N agents: obs (T, E, N, C, F, F), masks (T, E, N), neighbours (T, E, N, K)."""

    obs: torch.Tensor
    resets: torch.Tensor
    active: torch.Tensor
    neighbours: torch.Tensor


def random_neighbours(
    generator: torch.Generator, shape: tuple[int, ...], num_agents: int, k: int
) -> torch.Tensor:
    """(*shape, N, K) lists of distinct other agents in random order, some slots -1 (no neighbour)."""
    scores = torch.rand(*shape, num_agents, num_agents, generator=generator)
    scores.diagonal(dim1=-2, dim2=-1).fill_(-1.0)  # never list yourself
    order = scores.argsort(dim=-1, descending=True)[..., :k]
    order = torch.nn.functional.pad(order, (0, max(0, k - order.shape[-1])), value=-1)
    padding = torch.rand(order.shape, generator=generator) < 0.3
    return order.masked_fill(padding, -1)


def random_episode(
    seed: int,
    steps: int,
    num_envs: int,
    num_agents: int,
    k: int = 3,
    reset_rate: float = 0.15,
    inactive_rate: float = 0.15,
) -> Episode:
    """Random inputs: every agent resets at t = 0; later resets and inactive agents at the given rates."""
    generator = torch.Generator().manual_seed(seed)
    batch = (steps, num_envs, num_agents)
    obs = torch.rand(*batch, *OBS_SHAPE, generator=generator)
    resets = torch.rand(batch, generator=generator) < reset_rate
    resets[0] = True
    active = torch.rand(batch, generator=generator) >= inactive_rate
    return Episode(obs, resets, active, random_neighbours(generator, batch[:2], num_agents, k))
