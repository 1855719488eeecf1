"""The update phase of MAPPO: epochs of clipped-PPO minibatch steps over the rollout's (chunk, env) pairs.

Each minibatch unrolls its chunks from their stored memory state (gradients through memory) and scores them
with `marl.losses.mappo_loss`. Across ranks every statistic is a sum over all ranks (`Ranks`), so the step
and its statistics are those of one process holding every rank's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import hpc
from marl.buffers import RolloutBuffer
from marl.config import TrainConfig
from marl.losses import LossTerms, categorical_log_prob_entropy, mappo_loss
from marl.minibatch import MinibatchLayout, loss_inputs
from marl.rollout import Policy, policy_device
from marl.value_norm import ValueNorm
from memory.pool import Outside


def learning_rate(config: TrainConfig, progress: float, current: float) -> float:
    """The learning rate for the next update; progress in [0, 1] is the fraction of training done."""
    if config.lr_schedule == "linear":
        return config.lr * max(1.0 - progress, 0.0)
    return current


def set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, progress: float) -> None:
    """Set every parameter group's learning rate for the next update (`learning_rate`)."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, progress, group["lr"])


def _adapt_lr_to_kl(config: TrainConfig, optimizer: torch.optim.Optimizer, approx_kl: float) -> None:
    """Sample Factory's kl_adaptive_minibatch rule."""
    assert config.target_kl is not None
    for group in optimizer.param_groups:
        if approx_kl > 2.0 * config.target_kl:
            group["lr"] = max(group["lr"] / 1.5, 1e-6)
        elif approx_kl < 0.5 * config.target_kl:
            group["lr"] = min(group["lr"] * 1.5, 1e-2)


def minibatch_loss(
    policy: Policy,
    value_norm: ValueNorm,
    mb: dict[str, torch.Tensor],
    state0: Any,
    config: TrainConfig,
    outside: list[Outside] | None = None,
) -> LossTerms:
    """Unroll the chunks from their stored memory (gradients through memory) and score them; `outside`:
    the rest of each env's agents when the minibatch holds groups of agents (marl.minibatch)."""
    group = {} if outside is None else {"outside_seq": outside}
    inputs = (mb["obs"], state0, mb["reset"], mb.get("neighbours"), mb["active"])
    logits, values, _ = policy.unroll(*inputs, **group)
    return score_unrolled(logits, values, mb, mb["active"], value_norm, config)


def score_unrolled(
    logits: torch.Tensor,
    values: torch.Tensor,
    mb: dict[str, torch.Tensor],
    scored: torch.Tensor,
    value_norm: ValueNorm,
    config: TrainConfig,
) -> LossTerms:
    """MAPPO's loss terms of unrolled logits (L, B, N, A) and values (L, B, N) against the minibatch's
    stored actions, old log-probs / values, advantages and returns, averaged over the `scored` (L, B, N)
    agent-steps."""
    log_probs, entropy = categorical_log_prob_entropy(logits, mb["actions"])
    return mappo_loss(
        log_probs,
        mb["old_log_probs"],
        entropy,
        mb["advantages"],
        values,
        mb["old_values"],
        value_norm.normalize(mb["returns"]),
        scored,
        clip=config.clip,
        value_clip=config.value_clip,
        huber_delta=config.huber_delta,
        value_coef=config.value_coef,
        entropy_coef=config.entropy_coef,
    )


@dataclass
class Ranks:
    """The data-parallel world a learner trains in: the communicator and its gradient averager."""

    comm: hpc.Comm
    averager: hpc.GradientAverager | None  # None in a world of one process

    @classmethod
    def of(cls, comm: hpc.Comm, policy: Any) -> Ranks:
        return cls(comm, hpc.GradientAverager(comm, policy) if comm.size > 1 else None)


SINGLE_PROCESS = Ranks(hpc.Comm(), None)
LOSS_STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")


def _global_sums(comm: hpc.Comm, values: list[float]) -> np.ndarray:
    """The element-wise sums of `values` over every rank (float64)."""
    return comm.allreduce_sum_numpy(np.array(values, dtype=np.float64))


def normalize_advantages_across(
    comm: hpc.Comm, advantages: torch.Tensor, active: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """(A - mean) / (std + eps) with mean and std over the active steps of every rank; inactive -> 0."""
    selected = advantages[active].double()
    count, total = _global_sums(comm, [selected.numel(), selected.sum().item()])
    mean = total / max(count, 1.0)
    (squares,) = _global_sums(comm, [((selected - mean) ** 2).sum().item()])
    std = (squares / max(count, 1.0)) ** 0.5
    normalized = ((advantages.double() - mean) / (std + eps)).to(advantages.dtype)
    return torch.where(active, normalized, torch.zeros_like(advantages))


def explained_variance_across(comm: hpc.Comm, buffer: RolloutBuffer) -> float:
    """1 - Var(returns - values) / Var(returns) over the active steps of every rank: how much of the
    value targets' variance the critic explains (1 perfect, 0 no better than their mean; NaN if none)."""
    active = buffer.active
    returns = buffer.returns[active].astype(np.float64)
    errors = returns - buffer.values[active]
    count, r, r2, e, e2 = _global_sums(
        comm, [returns.size, returns.sum(), (returns**2).sum(), errors.sum(), (errors**2).sum()]
    )
    if count < 2:
        return float("nan")
    variance = r2 / count - (r / count) ** 2
    return float(1.0 - (e2 / count - (e / count) ** 2) / variance) if variance > 0 else float("nan")


def update_value_norm_across(
    comm: hpc.Comm, value_norm: ValueNorm, returns: torch.Tensor, active: torch.Tensor
) -> None:
    """Fold the active returns of every rank into the value normalizer (same statistics on every rank)."""
    selected = returns[active].double()
    count, total, squares = _global_sums(
        comm, [selected.numel(), selected.sum().item(), (selected**2).sum().item()]
    )
    if count > 0:
        value_norm.fold_moments(int(count), total / count, squares / count)


def update(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    value_norm: ValueNorm,
    buffer: RolloutBuffer,
    config: TrainConfig,
    shuffle: torch.Generator,
    ranks: Ranks = SINGLE_PROCESS,
    critic_only: bool = False,
) -> dict[str, float]:
    """Epochs of clipped-PPO minibatch steps over (chunk, env, agent group) units (marl.minibatch);
    returns mean loss statistics.

    `critic_only`: only the value head's parameters are stepped (the critic warm-up of a fine-tuned
    policy); the gradients of every other parameter are dropped after averaging.
    Across ranks every minibatch is the union of the ranks' minibatches: each rank's loss is weighted by
    its share of the active steps and the gradients are averaged, so the step equals one process's step
    on all ranks' data (to float tolerance), and the statistics and early stops agree on every rank.
    """
    comm, device = ranks.comm, policy_device(policy)
    layout = MinibatchLayout.of(buffer, config.agent_groups, config.agent_grouping)
    active = torch.from_numpy(buffer.active)
    update_value_norm_across(comm, value_norm, torch.from_numpy(buffer.returns), active)
    advantages = torch.from_numpy(buffer.advantages)
    if config.normalize_advantages:
        advantages = normalize_advantages_across(comm, advantages, active)
    arrays = loss_inputs(buffer, advantages.numpy())
    frozen = _actor_parameters(policy) if critic_only else []
    sums = dict.fromkeys((*LOSS_STATS, "grad_norm"), 0.0)
    steps = 0
    for _epoch in range(config.epochs):
        epoch_kl: list[float] = []
        for minibatch in torch.randperm(layout.num_units, generator=shuffle).chunk(config.num_minibatches):
            units = layout.index(minibatch.numpy())
            mb = layout.minibatch(arrays, units, device)
            state0 = layout.gather_states(buffer.chunk_states, units, device)
            outside = layout.outside(buffer, units, device)
            terms = minibatch_loss(policy, value_norm, mb, state0, config, outside)
            count = float(mb["active"].sum().item())
            local = [terms.policy, terms.value, terms.entropy, terms.approx_kl, terms.clip_fraction]
            reduced = _global_sums(comm, [count, *(count * term.item() for term in local)])
            stats = dict(zip(LOSS_STATS, reduced[1:] / max(reduced[0], 1.0), strict=True))
            _require_finite(stats, "loss")
            loss = terms.total
            if comm.size > 1:  # this rank's share of the active steps of the union minibatch
                loss = loss * (count * comm.size / max(reduced[0], 1.0))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if ranks.averager is not None:
                ranks.averager.average_()
            for param in frozen:
                param.grad = None  # Adam skips parameters without a gradient
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            _require_finite({"gradient norm": grad_norm.item()}, "gradient")  # the same on every rank
            optimizer.step()
            if config.lr_schedule == "kl_adaptive":
                _adapt_lr_to_kl(config, optimizer, stats["approx_kl"])
            epoch_kl.append(stats["approx_kl"])
            for name in LOSS_STATS:
                sums[name] += stats[name]
            sums["grad_norm"] += grad_norm.item()
            steps += 1
        stop_early = config.lr_schedule != "kl_adaptive" and config.target_kl is not None
        if stop_early and float(np.mean(epoch_kl)) > config.target_kl:
            break  # KL early stop: the policy already moved far enough on this rollout
    return {name: total / steps for name, total in sums.items()} | {"minibatch_steps": float(steps)}


class TrainingDiverged(ValueError):
    """A loss, gradient or weight became NaN or infinite; training stopped before it reached a checkpoint."""


def _require_finite(values: dict[str, float], what: str) -> None:
    """TrainingDiverged naming the non-finite entries of `values` (reduced over ranks: every rank agrees)."""
    bad = [f"{name} {value}" for name, value in values.items() if not np.isfinite(value)]
    if bad:
        raise TrainingDiverged(f"non-finite {what} ({', '.join(bad)})")


def _actor_parameters(policy: Any) -> list[torch.nn.Parameter]:
    """Every parameter of the policy except its value head's."""
    critic = {id(param) for param in policy.value_head.parameters()}
    return [param for param in policy.parameters() if id(param) not in critic]
