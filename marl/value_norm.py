"""MAPPO's value normalization: running statistics of the value targets.

The critic predicts normalized values; targets are normalized with the running mean and variance before the
value loss, and predictions are denormalized before GAE. The statistics are exponential moving averages of
the mean and mean of squares with a debiasing term, as in marlbenchmark/on-policy `ValueNorm`.
"""

from __future__ import annotations

import torch
from torch import nn


class ValueNorm(nn.Module):
    """Running mean/variance of value targets; its buffers go into checkpoints via state_dict().

    With `enabled=False` it is the identity (the critic then predicts returns directly).
    """

    def __init__(
        self, beta: float = 0.99999, epsilon: float = 1e-5, min_variance: float = 1e-2, enabled: bool = True
    ) -> None:
        super().__init__()
        self.enabled = enabled
        self.beta = beta
        self.epsilon = epsilon
        self.min_variance = min_variance
        self.register_buffer("running_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("running_mean_sq", torch.zeros((), dtype=torch.float64))
        self.register_buffer("debiasing_term", torch.zeros((), dtype=torch.float64))

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The debiased mean and the variance (floored at min_variance), float64 scalars."""
        weight = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / weight
        mean_sq = self.running_mean_sq / weight
        return mean, (mean_sq - mean**2).clamp(min=self.min_variance)

    @torch.no_grad()
    def update(self, targets: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Fold a batch of targets (any shape; only where mask is true) into the running statistics."""
        selected = targets if mask is None else targets[mask]
        if not self.enabled or selected.numel() == 0:
            return
        selected = selected.double()
        self.fold_moments(selected.numel(), selected.mean(), (selected**2).mean())

    @torch.no_grad()
    def fold_moments(self, count: int, mean: torch.Tensor | float, mean_sq: torch.Tensor | float) -> None:
        """Fold a batch given by its size and first two moments into the running statistics.

        Data-parallel training passes the moments of all ranks' targets together, so every rank's
        statistics stay those of one process that saw every target.
        """
        if not self.enabled or count == 0:
            return
        # Weighting by the batch size makes the statistics independent of how a rollout is split.
        weight = self.beta**count
        self.running_mean.mul_(weight).add_(mean * (1.0 - weight))
        self.running_mean_sq.mul_(weight).add_(mean_sq * (1.0 - weight))
        self.debiasing_term.mul_(weight).add_(1.0 - weight)

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return values
        mean, var = self.mean_var()
        return ((values - mean) / var.sqrt()).to(values.dtype)

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return values
        mean, var = self.mean_var()
        return (values * var.sqrt() + mean).to(values.dtype)
