"""The MAPPO loss terms as pure functions over masked batches.

Every tensor has the same leading shape (e.g. (T, B, N): chunk step, batch, agent); `active` marks the
steps that count. Inactive steps (finished agents, padding) contribute nothing: every mean below is over
active steps only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the entries where mask is true (0 when none is)."""
    # where, not multiplication: a non-finite value on a masked step must not turn the mean into NaN.
    return torch.where(mask, x, torch.zeros_like(x)).sum() / mask.sum().clamp(min=1)


def normalize_advantages(advantages: torch.Tensor, active: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(A - mean) / (std + eps) with mean and std over active steps; inactive entries become 0."""
    mean = masked_mean(advantages, active)
    var = masked_mean((advantages - mean) ** 2, active)
    return torch.where(active, (advantages - mean) / (var.sqrt() + eps), torch.zeros_like(advantages))


@dataclass(frozen=True)
class LossTerms:
    """The scalar terms of one minibatch; `total` is what is differentiated."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def clipped_policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    active: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate -E[min(rA, clip(r)A)], the approximate KL (k3 estimator) and clip fraction."""
    log_ratio = log_probs - old_log_probs
    ratio = log_ratio.exp()
    surrogate = ratio * advantages
    clipped_surrogate = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    loss = -masked_mean(torch.min(surrogate, clipped_surrogate), active)
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, active)
        clip_fraction = masked_mean(((ratio - 1.0).abs() > clip).float(), active)
    return loss, approx_kl, clip_fraction


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    targets: torch.Tensor,
    active: torch.Tensor,
    clip: float | None,
    huber_delta: float | None,
) -> torch.Tensor:
    """MAPPO's value loss: max of the unclipped and clipped errors (squared or Huber), over active steps."""
    errors = targets - values
    if clip is None:
        return masked_mean(_error_loss(errors, huber_delta), active)
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    worst = torch.max(_error_loss(errors, huber_delta), _error_loss(targets - clipped_values, huber_delta))
    return masked_mean(worst, active)


def _error_loss(errors: torch.Tensor, huber_delta: float | None) -> torch.Tensor:
    if huber_delta is None:
        return 0.5 * errors**2
    magnitude = errors.abs()
    linear = huber_delta * (magnitude - 0.5 * huber_delta)
    return torch.where(magnitude <= huber_delta, 0.5 * errors**2, linear)


def categorical_log_prob_entropy(
    logits: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(a) and the entropy of the categorical distribution over the last axis of logits."""
    log_pi = torch.log_softmax(logits, dim=-1)
    entropy = -(log_pi.exp() * log_pi).sum(-1)
    return log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy


def mappo_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    entropy: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    targets: torch.Tensor,
    active: torch.Tensor,
    *,
    clip: float,
    value_clip: float | None,
    huber_delta: float | None,
    value_coef: float,
    entropy_coef: float,
) -> LossTerms:
    """L = L_clip + c_v L_value - c_e H, every term averaged over active steps."""
    policy, approx_kl, clip_fraction = clipped_policy_loss(log_probs, old_log_probs, advantages, active, clip)
    value = clipped_value_loss(values, old_values, targets, active, value_clip, huber_delta)
    mean_entropy = masked_mean(entropy, active)
    total = policy + value_coef * value - entropy_coef * mean_entropy
    return LossTerms(total, policy, value, mean_entropy, approx_kl, clip_fraction)
