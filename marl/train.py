"""MAPPO training of a shared swarm policy, read top to bottom:

    allocate buffers once -> collect a rollout -> advantages -> update -> log (-> checkpoint)

Shared actor and centralized critic are the two heads of one `memory` policy (the critic sees the agent's
features plus a summary of the shared memory and the other agents in scope: agent-specific global state).
Recurrent training: each rollout is cut into chunks; the update unrolls every chunk from its stored memory
state with gradients through memory, and episode starts inside a chunk reset memory (reset masks).
Finished agents and padding are masked out of every loss term.

Checkpoints are clean cuts: after each one, all environments restart from a seed derived from
(seed, update) and memories start fresh, in an uninterrupted run as in a resumed one, so resuming from a
checkpoint continues the same run exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import memory
from marl.buffers import RolloutBuffer, gather_chunks, gather_states
from marl.config import TrainConfig
from marl.evaluate import mean_metrics
from marl.gae import compute_gae, next_state_values
from marl.losses import LossTerms, categorical_log_prob_entropy, mappo_loss, normalize_advantages
from marl.rollout import Policy, collect, start_rollouts
from marl.run_dir import (
    CheckpointError,
    append_metrics,
    load_checkpoint,
    plot_curves,
    save_checkpoint,
    truncate_metrics,
    write_yaml,
)
from marl.value_norm import ValueNorm

CURVE_KEYS = ("CSR", "ISR", "avg_throughput", "ep_length", "policy_loss", "value_loss", "entropy",
              "agent_steps_per_s")


def pick_device(requested: str) -> torch.device:
    """`auto`: CUDA when available, else CPU; `cuda` without a GPU is an error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def compute_advantages(buffer: RolloutBuffer, gamma: float, gae_lambda: float) -> None:
    """Write buffer.advantages and buffer.returns from the collected rollout (GAE, truncation-aware)."""
    next_values = next_state_values(buffer.values, buffer.last_values, buffer.terminated, buffer.truncated,
                                    buffer.final_values)
    buffer.advantages[:], buffer.returns[:] = compute_gae(
        buffer.rewards, buffer.values, next_values, buffer.terminated | buffer.truncated, buffer.active,
        gamma, gae_lambda)


def learning_rate(config: TrainConfig, progress: float, current: float) -> float:
    """The learning rate for the next update; progress in [0, 1] is the fraction of training done."""
    if config.lr_schedule == "linear":
        return config.lr * max(1.0 - progress, 0.0)
    return current


def _adapt_lr_to_kl(config: TrainConfig, optimizer: torch.optim.Optimizer, approx_kl: float) -> None:
    """Sample Factory's kl_adaptive_minibatch rule."""
    assert config.target_kl is not None
    for group in optimizer.param_groups:
        if approx_kl > 2.0 * config.target_kl:
            group["lr"] = max(group["lr"] / 1.5, 1e-6)
        elif approx_kl < 0.5 * config.target_kl:
            group["lr"] = min(group["lr"] * 1.5, 1e-2)


def _minibatch(arrays: dict[str, np.ndarray], chunk_length: int, chunk_index: np.ndarray,
               env_index: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    """The (L, B, N, ...) slices of B (chunk, env) pairs, on the device."""
    return {name: torch.from_numpy(gather_chunks(array, chunk_length, chunk_index, env_index)).to(device)
            for name, array in arrays.items()}


def minibatch_loss(policy: Policy, value_norm: ValueNorm, mb: dict[str, torch.Tensor], state0: Any,
                   config: TrainConfig) -> LossTerms:
    """Unroll the chunks from their stored memory (gradients through memory) and score them."""
    logits, values, _ = policy.unroll(mb["obs"], state0, mb["reset"], mb.get("neighbours"), mb["active"])
    log_probs, entropy = categorical_log_prob_entropy(logits, mb["actions"])
    return mappo_loss(log_probs, mb["old_log_probs"], entropy, mb["advantages"], values, mb["old_values"],
                      value_norm.normalize(mb["returns"]), mb["active"], clip=config.clip,
                      value_clip=config.value_clip, huber_delta=config.huber_delta,
                      value_coef=config.value_coef, entropy_coef=config.entropy_coef)


def update(policy: Policy, optimizer: torch.optim.Optimizer, value_norm: ValueNorm, buffer: RolloutBuffer,
           config: TrainConfig, shuffle: torch.Generator, device: torch.device) -> dict[str, float]:
    """Epochs of clipped-PPO minibatch steps over (chunk, env) pairs; returns mean loss statistics."""
    num_envs = buffer.shape[1]
    active = torch.from_numpy(buffer.active)
    value_norm.update(torch.from_numpy(buffer.returns), active)
    advantages = torch.from_numpy(buffer.advantages)
    if config.normalize_advantages:
        advantages = normalize_advantages(advantages, active)
    arrays = {"advantages": advantages.numpy(), "returns": buffer.returns, "old_log_probs": buffer.log_probs,
              "old_values": buffer.raw_values, "actions": buffer.actions, "obs": buffer.obs,
              "reset": buffer.reset_masks, "active": buffer.active}
    if buffer.neighbours is not None:
        arrays["neighbours"] = buffer.neighbours
    sums: dict[str, float] = {}
    steps = 0
    for _epoch in range(config.epochs):
        epoch_kl: list[float] = []
        for minibatch in torch.randperm(config.num_chunks, generator=shuffle).chunk(config.num_minibatches):
            chunk_index, env_index = minibatch // num_envs, minibatch % num_envs
            mb = _minibatch(arrays, config.chunk_length, chunk_index.numpy(), env_index.numpy(), device)
            state0 = gather_states(buffer.chunk_states, chunk_index.to(device), env_index.to(device))
            terms = minibatch_loss(policy, value_norm, mb, state0, config)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            if config.lr_schedule == "kl_adaptive":
                _adapt_lr_to_kl(config, optimizer, terms.approx_kl.item())
            epoch_kl.append(terms.approx_kl.item())
            for name, value in (("policy_loss", terms.policy.detach()), ("value_loss", terms.value),
                                ("entropy", terms.entropy), ("approx_kl", terms.approx_kl),
                                ("clip_fraction", terms.clip_fraction), ("grad_norm", grad_norm)):
                sums[name] = sums.get(name, 0.0) + value.item()
            steps += 1
        stop_early = config.lr_schedule != "kl_adaptive" and config.target_kl is not None
        if stop_early and float(np.mean(epoch_kl)) > config.target_kl:
            break  # KL early stop: the policy already moved far enough on this rollout
    return {name: total / steps for name, total in sums.items()} | {"minibatch_steps": float(steps)}


def segment_seed(seed: int, update_index: int) -> int:
    """The environments' base seed for the segment of training that starts at `update_index`."""
    return int(np.random.SeedSequence([seed, update_index]).generate_state(1)[0])


def build_policy(config: TrainConfig, obs_shape: tuple[int, int, int], num_actions: int,
                 device: torch.device) -> Any:
    """A fresh policy, initialized from config.seed."""
    torch.manual_seed(config.seed)
    policy = memory.make_policy(config.model, obs_shape, num_actions, preset=config.preset,
                                scope=config.scope)
    return policy.to(device)


def load_policy(checkpoint: Path, device: torch.device | str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The policy stored in a checkpoint and the checkpoint's metadata."""
    tensors, meta = load_checkpoint(checkpoint)
    try:
        policy = memory.policy_from_config(meta["policy_config"])
        policy.load_state_dict(tensors["policy"])
    except (KeyError, ValueError, RuntimeError) as error:
        reason = str(error).splitlines()[0][:200]
        raise CheckpointError(f"{checkpoint}: policy does not match its config ({reason})") from None
    return policy.to(device), meta


@dataclass
class Learner:
    """Everything a checkpoint saves and restores."""

    policy: Any
    optimizer: torch.optim.Optimizer
    value_norm: ValueNorm
    sampling: torch.Generator
    shuffle: torch.Generator

    def tensors(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "value_norm": self.value_norm.state_dict(), "sampling_rng": self.sampling.get_state(),
                "shuffle_rng": self.shuffle.get_state()}

    def restore(self, tensors: dict[str, Any]) -> None:
        self.policy.load_state_dict(tensors["policy"])
        self.optimizer.load_state_dict(tensors["optimizer"])
        self.value_norm.load_state_dict(tensors["value_norm"])
        self.sampling.set_state(tensors["sampling_rng"])
        self.shuffle.set_state(tensors["shuffle_rng"])


def make_learner(config: TrainConfig, obs_shape: tuple[int, int, int], num_actions: int,
                 device: torch.device) -> Learner:
    policy = build_policy(config, obs_shape, num_actions, device)
    return Learner(policy=policy,
                   optimizer=torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps),
                   value_norm=ValueNorm(enabled=config.value_norm).to(device),
                   sampling=torch.Generator(device).manual_seed(config.seed),
                   shuffle=torch.Generator().manual_seed(config.seed + 1))


def _restore_run(run_dir: Path, learner: Learner, config: TrainConfig) -> tuple[int, float]:
    """Load latest.pt into the learner; return the update to continue from and the best metric so far."""
    tensors, meta = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    if meta.get("train_config") != config.to_dict():
        changed = sorted(k for k, v in config.to_dict().items() if meta.get("train_config", {}).get(k) != v)
        raise CheckpointError(f"{run_dir}: cannot resume with a different config "
                              f"(changed: {', '.join(changed)})")
    learner.restore(tensors)
    truncate_metrics(run_dir / "metrics.jsonl", meta["update"])
    return meta["update"], meta["best"]


def _progress_line(update_index: int, num_updates: int, agent_steps: int, row: dict[str, Any],
                   seconds_left: float) -> str:
    episode_part = " ".join(f"{k} {row[k]:.3g}" for k in ("CSR", "ISR", "ep_length", "avg_throughput")
                            if row.get(k) is not None)
    return (f"update {update_index}/{num_updates} | {agent_steps:,} agent-steps | "
            f"{row['agent_steps_per_s']:,.0f} agent-steps/s | {episode_part or 'no finished episode'} | "
            f"loss pi {row['policy_loss']:.3f} v {row['value_loss']:.3f} H {row['entropy']:.2f} | "
            f"{seconds_left / 60:.1f} min left")


def train(env: Any, config: TrainConfig, run_dir: Path, *, resume: bool = False,
          echo: Callable[[str], None] = print, extra_meta: dict[str, Any] | None = None) -> Learner:
    """Train a policy with MAPPO on `env` (a GridEnv) and write the run directory; returns the learner."""
    device = pick_device(config.device)
    torch.set_num_threads(config.torch_threads)
    learner = make_learner(config, env.obs_shape, env.num_actions, device)
    checkpoints = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    start, best = 0, -float("inf")
    if resume:
        start, best = _restore_run(run_dir, learner, config)
    elif checkpoints.exists():
        raise CheckpointError(f"{run_dir}: already holds a run (resume it with --resume, or choose another "
                              "--out)")
    meta_base = {"train_config": config.to_dict(), "policy_config": learner.policy.config.to_dict(),
                 **(extra_meta or {})}
    write_yaml(run_dir / "config.yaml", meta_base)

    # allocate once
    T, E, N = config.rollout_length, env.num_envs, env.num_agents
    steps_per_update = T * E * N
    num_updates = -(-config.total_agent_steps // steps_per_update)
    obs = env.reset(seed=config.seed)
    num_neighbours = env.neighbours.shape[-1] if config.scope == "local" else 0
    buffer = RolloutBuffer.allocate(T, E, N, env.obs_shape, obs.dtype, config.chunk_length, num_neighbours)
    carry = start_rollouts(env, learner.policy, device, seed=segment_seed(config.seed, start))
    recent: list[dict[str, float]] = []
    started = time.perf_counter()
    for update_index in range(start, num_updates):
        for group in learner.optimizer.param_groups:
            group["lr"] = learning_rate(config, update_index / num_updates, group["lr"])
        tick = time.perf_counter()
        # collect
        carry, finished = collect(env, learner.policy, learner.value_norm, buffer, carry, learner.sampling,
                                  device)
        # advantages
        compute_advantages(buffer, config.gamma, config.gae_lambda)
        # update
        stats = update(learner.policy, learner.optimizer, learner.value_norm, buffer, config, learner.shuffle,
                       device)
        # log
        recent.extend(finished)
        done = update_index + 1
        row = {"update": done, "agent_steps": done * steps_per_update, "episodes": len(finished),
               "agent_steps_per_s": steps_per_update / (time.perf_counter() - tick),
               "lr": learner.optimizer.param_groups[0]["lr"], **stats, **mean_metrics(finished)}
        append_metrics(metrics_path, row)
        if done % config.log_every == 0 or done == num_updates:
            rate = (done - start) / (time.perf_counter() - started)
            echo(_progress_line(done, num_updates, row["agent_steps"], row, (num_updates - done) / rate))
        # checkpoint: a clean cut, then every environment and memory restarts
        if done % config.checkpoint_every == 0 or done == num_updates:
            score = mean_metrics(recent).get(config.best_metric, -float("inf"))
            meta = {**meta_base, "update": done, "agent_steps": done * steps_per_update,
                    "best": max(best, score)}
            save_checkpoint(checkpoints / "latest.pt", learner.tensors(), meta)
            if score > best:
                best = score
                save_checkpoint(checkpoints / "best.pt", learner.tensors(), meta)
            recent = []
            carry = start_rollouts(env, learner.policy, device, seed=segment_seed(config.seed, done))
    plot_curves(metrics_path, run_dir / "curves.png", CURVE_KEYS)
    return learner
