"""MAPPO training of a shared swarm policy, read top to bottom:

    allocate buffers once -> collect a rollout -> advantages -> update -> log (-> checkpoint)

Shared actor and centralized critic are the two heads of one `memory` policy (the critic sees the agent's
features plus a summary of the shared memory and the other agents in scope: agent-specific global state).
Recurrent training: each rollout is cut into chunks; the update unrolls every chunk from its stored memory
state with gradients through memory, and episode starts inside a chunk reset memory (reset masks).
Finished agents and padding are masked out of every loss term.

A checkpoint holds the whole run: learner, RNGs, and every rank's environments (`snapshot`) and rollout
carry (live observation, memory state, masks). Resuming from any checkpoint, whether a periodic one or the
one written on a stop signal, continues the same run exactly.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import hpc
import memory
from marl.buffers import RolloutBuffer, gather_chunks, gather_states
from marl.config import TrainConfig
from marl.gae import compute_gae, next_state_values
from marl.losses import LossTerms, categorical_log_prob_entropy, mappo_loss
from marl.rollout import Policy, RolloutCarry, carry_tensors, collect, resume_rollouts, start_rollouts
from marl.run_dir import (
    CheckpointError,
    append_metrics,
    has_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    plot_curves,
    resolve_checkpoint,
    save_run_checkpoint,
    truncate_metrics,
    write_yaml,
)
from marl.threads import use_torch_threads
from marl.value_norm import ValueNorm
from marl.watch import MetricSink

CURVE_KEYS = (
    "CSR",
    "ISR",
    "avg_throughput",
    "ep_length",
    "policy_loss",
    "value_loss",
    "entropy",
    "agent_steps_per_s",
)


def pick_device(requested: str) -> torch.device:
    """`auto`: CUDA when available, else CPU; `cuda` without a GPU is an error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def compute_advantages(buffer: RolloutBuffer, gamma: float, gae_lambda: float) -> None:
    """Write buffer.advantages and buffer.returns from the collected rollout (GAE, truncation-aware)."""
    # values that overflowed (a diverging run) become NaN quietly here: the update's loss check reports them
    with np.errstate(invalid="ignore", over="ignore"):
        next_values = next_state_values(
            buffer.values, buffer.last_values, buffer.terminated, buffer.truncated, buffer.final_values
        )
        buffer.advantages[:], buffer.returns[:] = compute_gae(
            buffer.rewards,
            buffer.values,
            next_values,
            buffer.terminated | buffer.truncated,
            buffer.active,
            gamma,
            gae_lambda,
        )


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


def _minibatch(
    arrays: dict[str, np.ndarray],
    chunk_length: int,
    chunk_index: np.ndarray,
    env_index: np.ndarray,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """The (L, B, N, ...) slices of B (chunk, env) pairs, on the device."""
    return {
        name: torch.from_numpy(gather_chunks(array, chunk_length, chunk_index, env_index)).to(device)
        for name, array in arrays.items()
    }


def minibatch_loss(
    policy: Policy, value_norm: ValueNorm, mb: dict[str, torch.Tensor], state0: Any, config: TrainConfig
) -> LossTerms:
    """Unroll the chunks from their stored memory (gradients through memory) and score them."""
    logits, values, _ = policy.unroll(mb["obs"], state0, mb["reset"], mb.get("neighbours"), mb["active"])
    log_probs, entropy = categorical_log_prob_entropy(logits, mb["actions"])
    return mappo_loss(
        log_probs,
        mb["old_log_probs"],
        entropy,
        mb["advantages"],
        values,
        mb["old_values"],
        value_norm.normalize(mb["returns"]),
        mb["active"],
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
    device: torch.device,
    ranks: Ranks = SINGLE_PROCESS,
    critic_only: bool = False,
) -> dict[str, float]:
    """Epochs of clipped-PPO minibatch steps over (chunk, env) pairs; returns mean loss statistics.

    `critic_only`: only the value head's parameters are stepped (the critic warm-up of a fine-tuned
    policy); the gradients of every other parameter are dropped after averaging.
    Across ranks every minibatch is the union of the ranks' minibatches: each rank's loss is weighted by
    its share of the active steps and the gradients are averaged, so the step equals one process's step
    on all ranks' data (to float tolerance), and the statistics and early stops agree on every rank.
    """
    comm = ranks.comm
    num_envs = buffer.shape[1]
    active = torch.from_numpy(buffer.active)
    update_value_norm_across(comm, value_norm, torch.from_numpy(buffer.returns), active)
    advantages = torch.from_numpy(buffer.advantages)
    if config.normalize_advantages:
        advantages = normalize_advantages_across(comm, advantages, active)
    arrays = {
        "advantages": advantages.numpy(),
        "returns": buffer.returns,
        "old_log_probs": buffer.log_probs,
        "old_values": buffer.raw_values,
        "actions": buffer.actions,
        "obs": buffer.obs,
        "reset": buffer.reset_masks,
        "active": buffer.active,
    }
    if buffer.neighbours is not None:
        arrays["neighbours"] = buffer.neighbours
    frozen = _actor_parameters(policy) if critic_only else []
    sums = dict.fromkeys((*LOSS_STATS, "grad_norm"), 0.0)
    steps = 0
    for _epoch in range(config.epochs):
        epoch_kl: list[float] = []
        for minibatch in torch.randperm(config.num_chunks, generator=shuffle).chunk(config.num_minibatches):
            chunk_index, env_index = minibatch // num_envs, minibatch % num_envs
            mb = _minibatch(arrays, config.chunk_length, chunk_index.numpy(), env_index.numpy(), device)
            state0 = gather_states(buffer.chunk_states, chunk_index.to(device), env_index.to(device))
            terms = minibatch_loss(policy, value_norm, mb, state0, config)
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


def env_seed(seed: int, rank: int = 0) -> int:
    """The base seed of `rank`'s environments (rank 0's: a one-process run's; each rank's its own stream)."""
    # the 0 keeps the seeds of the runs reported in docs/results.md
    key = [seed, 0] if rank == 0 else [seed, 0, rank]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def sampling_seed(seed: int, rank: int = 0) -> int:
    """The seed of `rank`'s action-sampling generator (rank 0: `seed`, as in a one-process run)."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def build_policy(
    config: TrainConfig, obs_shape: tuple[int, int, int], num_actions: int, device: torch.device
) -> Any:
    """A fresh policy, initialized from config.seed."""
    torch.manual_seed(config.seed)
    policy = memory.make_policy(
        config.model, obs_shape, num_actions, preset=config.preset, scope=config.scope
    )
    return policy.to(device)


def load_policy(checkpoint: Path, device: torch.device | str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The policy stored in a checkpoint file (or a run directory's best, else latest, checkpoint) and the
    checkpoint's metadata."""
    path = resolve_checkpoint(checkpoint)
    tensors, meta = load_checkpoint(path)
    try:
        policy = memory.policy_from_config(meta["policy_config"])
        policy.load_state_dict(tensors["policy"])
    except (KeyError, ValueError, RuntimeError) as error:
        reason = str(error).splitlines()[0][:200]
        raise CheckpointError(f"{path}: policy does not match its config ({reason})") from None
    return policy.to(device), {**meta, "checkpoint": str(path)}


def load_init_weights(policy: Any, init: Path | str) -> Path:
    """Copy the policy weights of checkpoint `init` (a file, a run directory or `pretrained:NAME`) into
    `policy` and return the checkpoint's path. Only the weights are read (weights_only loading); a
    checkpoint of another architecture or observation shape is a one-line CheckpointError."""
    path = resolve_checkpoint(init)
    tensors, meta = load_checkpoint(path)
    theirs, mine = meta.get("policy_config") or {}, policy.config.to_dict()
    if list(theirs.get("obs_shape", [])) != list(mine["obs_shape"]):
        raise CheckpointError(
            f"{path}: the policy reads observations of shape {tuple(theirs.get('obs_shape', ()))}, the "
            f"scenario gives {tuple(mine['obs_shape'])} (its observation channels and radius must match)"
        )
    differing = [key for key in mine if theirs.get(key) != mine[key]]
    if differing:
        changes = ", ".join(f"{key} {theirs.get(key)!r} vs {mine[key]!r}" for key in differing)
        raise CheckpointError(f"{path}: its policy differs from the configured one ({changes})")
    try:
        policy.load_state_dict(tensors["policy"])
    except (KeyError, RuntimeError) as error:
        reason = str(error).splitlines()[0][:200]
        raise CheckpointError(f"{path}: policy weights do not match its config ({reason})") from None
    return path


@dataclass
class Learner:
    """Everything a checkpoint saves and restores."""

    policy: Any
    optimizer: torch.optim.Optimizer
    value_norm: ValueNorm
    sampling: torch.Generator  # this rank's action sampling
    shuffle: torch.Generator  # minibatch order, the same on every rank

    def tensors(self, comm: hpc.Comm) -> dict[str, Any]:
        """The checkpoint tensors, with every rank's sampling state (a collective call)."""
        sampling = comm.allgather_numpy(self.sampling.get_state().numpy())  # (ranks, state bytes) uint8
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "value_norm": self.value_norm.state_dict(),
            "sampling_rng": torch.from_numpy(sampling),
            "shuffle_rng": self.shuffle.get_state(),
        }

    def restore(self, tensors: dict[str, Any], rank: int) -> None:
        self.policy.load_state_dict(tensors["policy"])
        self.optimizer.load_state_dict(tensors["optimizer"])
        self.value_norm.load_state_dict(tensors["value_norm"])
        # a copy, not the row view: set_state ignores a view's storage offset (rank >= 1 segfaulted)
        self.sampling.set_state(tensors["sampling_rng"][rank].clone())
        self.shuffle.set_state(tensors["shuffle_rng"])


def make_learner(
    config: TrainConfig,
    obs_shape: tuple[int, int, int],
    num_actions: int,
    device: torch.device,
    rank: int = 0,
) -> Learner:
    policy = build_policy(config, obs_shape, num_actions, device)
    return Learner(
        policy=policy,
        optimizer=torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps),
        value_norm=ValueNorm(enabled=config.value_norm).to(device),
        sampling=torch.Generator(device).manual_seed(sampling_seed(config.seed, rank)),
        shuffle=torch.Generator().manual_seed(config.seed + 1),
    )


class TrainingStopped(Exception):
    """A stop signal (SLURM preemption, SIGTERM, SIGUSR1) ended training early; the run resumes from its
    latest checkpoint. `requeued` tells whether SLURM was asked to requeue the job."""

    def __init__(self, message: str, requeued: bool) -> None:
        super().__init__(message)
        self.requeued = requeued


def _restore_run(
    run_dir: Path, learner: Learner, config: TrainConfig, comm: hpc.Comm
) -> tuple[int, float, dict[str, Any]]:
    """Load the newest intact checkpoint into the learner; return the update to continue from, the best
    metric so far and the checkpoint's tensors (environments, carries, episode sums)."""
    tensors, meta, path = latest_checkpoint(run_dir)
    saved = {**meta.get("train_config", {}), "total_agent_steps": config.total_agent_steps}
    if saved != config.to_dict():  # the length may change: a finished run is extended with more steps
        changed = sorted(k for k, v in config.to_dict().items() if saved.get(k) != v)
        raise CheckpointError(
            f"{run_dir}: cannot resume with a different config (changed: {', '.join(changed)})"
        )
    if meta.get("world_size") != comm.size:
        raise CheckpointError(
            f"{path}: written by {meta.get('world_size')} rank(s), resumed with "
            f"{comm.size}; resume with as many ranks (each rank has its own environments)"
        )
    if comm.ranks_differing_from_root(hashlib.sha256(path.name.encode()).digest()):
        raise CheckpointError(
            f"{run_dir}: ranks found different latest checkpoints (is the run directory on "
            "a file system that every node sees?)"
        )
    try:
        learner.restore(tensors, comm.rank)
    except (KeyError, RuntimeError, ValueError) as error:  # another model or scenario's observations
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: does not fit this run's policy ({reason})") from None
    hpc.restore_rng(tensors["rng"], meta["rng"])
    if comm.is_root:
        truncate_metrics(run_dir / "metrics.jsonl", meta["update"])
    return meta["update"], meta["best"], tensors


@dataclass(frozen=True)
class TrainingPlan:
    """How long a run is: whole updates of `steps_per_update` agent-steps over every rank."""

    num_updates: int
    steps_per_update: int

    @classmethod
    def of(cls, config: TrainConfig, num_envs: int, num_agents: int, world_size: int = 1) -> TrainingPlan:
        """`config.total_agent_steps` (the total over all ranks, as Sample Factory counts) rounded to the
        nearest whole number of updates, at least one."""
        steps_per_update = config.rollout_length * num_envs * num_agents * world_size
        return cls(max(1, round(config.total_agent_steps / steps_per_update)), steps_per_update)

    @property
    def agent_steps(self) -> int:
        return self.num_updates * self.steps_per_update

    def describe(self, asked: int) -> str:
        """e.g. "183 updates x 32,768 = 5,996,544 agent-steps (6,000,000 asked, rounded to whole updates)"."""
        rounded = "" if asked == self.agent_steps else f" ({asked:,} asked, rounded to whole updates)"
        updates = f"{self.num_updates} update{'s' if self.num_updates > 1 else ''}"
        return f"{updates} x {self.steps_per_update:,} = {self.agent_steps:,} agent-steps{rounded}"


def _resume_rollouts(
    env: Any, policy: Policy, device: torch.device, tensors: dict[str, Any], rank: int, run_dir: Path
) -> RolloutCarry:
    snapshot = {name: tensor.numpy() for name, tensor in tensors["envs"][rank].items()}
    try:
        return resume_rollouts(env, policy, device, snapshot, tensors["carries"][rank])
    except ValueError as error:
        raise CheckpointError(f"{run_dir}: cannot continue the checkpoint's environments ({error})") from None


def _progress_line(
    update_index: int, num_updates: int, agent_steps: int, row: dict[str, Any], seconds_left: float
) -> str:
    episode_part = " ".join(
        f"{k} {row[k]:.3g}" for k in ("CSR", "ISR", "ep_length", "avg_throughput") if row.get(k) is not None
    )
    return (
        f"update {update_index}/{num_updates} | {agent_steps:,} agent-steps | "
        f"{row['agent_steps_per_s']:,.0f} agent-steps/s | {episode_part or 'no finished episode'} | "
        f"loss pi {row['policy_loss']:.3f} v {row['value_loss']:.3f} H {row['entropy']:.2f} | "
        f"{seconds_left / 60:.1f} min left"
    )


class EpisodeMeans:
    """Episode metrics summed over ranks: every rank reports the same keys, so the sums reduce as one
    array, and the means weigh every finished episode equally whatever rank ran it."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.sums = np.zeros(2 * len(keys) + 1)  # [sum per key, episodes per key, episodes]

    def add_across(self, comm: hpc.Comm, finished: list[dict[str, float]]) -> EpisodeMeans:
        """Add this update's finished episodes of every rank (a collective call); return the update's."""
        local = np.zeros_like(self.sums)
        for episode in finished:
            for index, key in enumerate(self.keys):
                if key in episode:
                    local[index] += episode[key]
                    local[len(self.keys) + index] += 1
        local[-1] = len(finished)
        comm.allreduce_sum_numpy(local)
        self.sums += local
        this_update = EpisodeMeans(self.keys)
        this_update.sums = local
        return this_update

    @property
    def episodes(self) -> int:
        return int(self.sums[-1])

    def means(self) -> dict[str, float]:
        counts = self.sums[len(self.keys) : -1]
        return {key: float(self.sums[i] / counts[i]) for i, key in enumerate(self.keys) if counts[i] > 0}


EPISODE_KEYS = ("CSR", "ISR", "ep_length", "SoC", "makespan", "avg_throughput")


def train(
    env: Any,
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool | Literal["auto"] = False,
    echo: Callable[[str], None] = print,
    extra_meta: dict[str, Any] | None = None,
    comm: hpc.Comm | None = None,
    sinks: Sequence[MetricSink] = (),
    init: Path | str | None = None,
) -> Learner:
    """Train a policy with MAPPO on `env` (this rank's GridEnv) and write the run directory (rank 0).

    `resume`: True continues the run in `run_dir` from its newest intact checkpoint; "auto" does so when
    `run_dir` holds checkpoints and starts a new run otherwise (a requeued SLURM job); False refuses a
    directory that already holds a run. `comm` defaults to `hpc.get_comm()`: under mpiexec or srun every
    rank calls `train` with its own environments. Raises `TrainingStopped` when a stop signal ended the run
    early (every rank at the same update); the run's latest checkpoint then resumes it exactly. `sinks`
    (rank 0's, e.g. `marl.watch.TensorBoardSink`) receive every metrics row as it is logged.
    `init` (a checkpoint, run directory or `pretrained:NAME`) starts a new run from that policy's weights
    (`load_init_weights`; the optimizer and value normalizer start fresh); a resumed run ignores it.
    """
    comm = hpc.get_comm() if comm is None else comm
    device = hpc.device_for_rank(config.device, comm.local_rank)
    use_torch_threads(config.torch_threads)
    learner = make_learner(config, env.obs_shape, env.num_actions, device, comm.rank)
    metrics_path = run_dir / "metrics.jsonl"
    start, best, saved = 0, -float("inf"), None
    if resume == "auto":
        resume = has_checkpoints(run_dir)
    if resume:
        start, best, saved = _restore_run(run_dir, learner, config, comm)
        if comm.is_root:
            echo(f"resuming {run_dir} from update {start}")
    elif has_checkpoints(run_dir):
        raise CheckpointError(
            f"{run_dir}: already holds a run (resume it with --resume, or choose another --out)"
        )
    elif comm.is_root and metrics_path.exists():
        truncate_metrics(metrics_path, 0)  # the lines of a run killed before its first checkpoint
    init_meta = {}
    if init is not None:
        init_path = resolve_checkpoint(init)
        if not resume:
            load_init_weights(learner.policy, init_path)
        init_meta = {"init": str(init_path)}
    hpc.broadcast_params(comm, learner.policy)
    hpc.check_params_equal(comm, learner.value_norm)
    ranks = Ranks.of(comm, learner.policy)
    meta_base = {
        "train_config": config.to_dict(),
        "policy_config": learner.policy.config.to_dict(),
        "world_size": comm.size,
        **init_meta,
        **(extra_meta or {}),
    }
    if comm.is_root:
        write_yaml(run_dir / "config.yaml", meta_base)

    # allocate once
    T, E, N = config.rollout_length, env.num_envs, env.num_agents
    plan = TrainingPlan.of(config, E, N, comm.size)
    num_updates, steps_per_update = plan.num_updates, plan.steps_per_update
    if saved is None:
        carry = start_rollouts(env, learner.policy, device, seed=env_seed(config.seed, comm.rank))
    else:
        carry = _resume_rollouts(env, learner.policy, device, saved, comm.rank, run_dir)
    num_neighbours = env.neighbours.shape[-1] if config.scope == "local" else 0
    buffer = RolloutBuffer.allocate(
        T, E, N, env.obs_shape, carry.obs.dtype, config.chunk_length, num_neighbours
    )
    keys = EPISODE_KEYS if config.best_metric in EPISODE_KEYS else (*EPISODE_KEYS, config.best_metric)
    recent = EpisodeMeans(keys)  # the episodes since the last periodic checkpoint, for best/
    if saved is not None:
        recent.sums[:] = saved["recent_episodes"].numpy()
    recent_seconds: deque[float] = deque(maxlen=10)
    with hpc.PreemptionHandler() as preemption:
        for update_index in range(start, num_updates):
            for group in learner.optimizer.param_groups:
                group["lr"] = learning_rate(config, update_index / num_updates, group["lr"])
            tick = time.perf_counter()
            # collect
            carry, finished = collect(
                env, learner.policy, learner.value_norm, buffer, carry, learner.sampling, device
            )
            collected = time.perf_counter()
            # advantages
            compute_advantages(buffer, config.gamma, config.gae_lambda)
            explained = explained_variance_across(comm, buffer)
            # update
            try:
                stats = update(
                    learner.policy,
                    learner.optimizer,
                    learner.value_norm,
                    buffer,
                    config,
                    learner.shuffle,
                    device,
                    ranks,
                    critic_only=update_index < config.critic_warmup_updates,
                )
                if hpc.first_non_finite(learner.policy.state_dict()) is not None:
                    raise TrainingDiverged("non-finite weights after the optimizer step")
            except TrainingDiverged as error:
                raise TrainingDiverged(
                    f"update {update_index + 1}: {error}; training stopped, the newest checkpoint holds the "
                    "last finite weights (try a lower lr or max_grad_norm)"
                ) from None
            # log
            episodes = recent.add_across(comm, finished)
            done = update_index + 1
            if comm.is_root:
                finished_at = time.perf_counter()
                recent_seconds.append(finished_at - tick)
                row = {
                    "update": done,
                    "agent_steps": done * steps_per_update,
                    "episodes": episodes.episodes,
                    "agent_steps_per_s": steps_per_update / (finished_at - tick),
                    "collect_seconds": collected - tick,
                    "update_seconds": finished_at - collected,
                    "lr": learner.optimizer.param_groups[0]["lr"],
                    "explained_variance": explained,
                    **stats,
                    **episodes.means(),
                }
                append_metrics(metrics_path, row)
                for sink in sinks:
                    sink.log(row, row["agent_steps"])
                if done % config.log_every == 0 or done == num_updates:
                    # the recent updates' pace: an update's cost changes as episodes get shorter
                    seconds_left = (num_updates - done) * float(np.mean(recent_seconds))
                    echo(_progress_line(done, num_updates, row["agent_steps"], row, seconds_left))
            # checkpoint: periodically, and on a stop signal before stopping
            periodic = done % config.checkpoint_every == 0 or done == num_updates
            stopping = done < num_updates and preemption.stop_requested(comm)
            is_best = False
            if periodic:
                score = recent.means().get(config.best_metric, -float("inf"))
                is_best, best = score > best, max(best, score)
                recent = EpisodeMeans(keys)
            if periodic or stopping:
                tensors, rng_meta = _checkpoint_tensors(comm, learner, env, carry, recent)
                if comm.is_root:
                    meta = {
                        **meta_base,
                        "update": done,
                        "agent_steps": done * steps_per_update,
                        "best": best,
                        "rng": rng_meta,
                    }
                    save_run_checkpoint(run_dir, done, tensors, meta, best=is_best)
            if stopping:
                _stop(comm, preemption, done, echo)
    if comm.is_root:
        plot_curves(metrics_path, run_dir / "curves.png", CURVE_KEYS)
    comm.barrier()
    return learner


def _checkpoint_tensors(
    comm: hpc.Comm, learner: Learner, env: Any, carry: RolloutCarry, recent: EpisodeMeans
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint's tensors, every rank's environments and carry included, and the RNG metadata (a
    collective call; the tensors are complete on rank 0 only)."""
    hpc.check_params_equal(comm, learner.policy)
    hpc.check_params_equal(comm, learner.value_norm)
    rng_tensors, rng_meta = hpc.capture_rng()
    per_rank = comm.gather_to_root((env.snapshot(), carry_tensors(carry)))  # [(snapshot, carry)] on rank 0
    tensors = {
        **learner.tensors(comm),
        "rng": rng_tensors,
        "recent_episodes": torch.from_numpy(recent.sums.copy()),
    }
    if comm.is_root:
        tensors["envs"] = [{name: torch.from_numpy(a) for name, a in envs.items()} for envs, _ in per_rank]
        tensors["carries"] = [rank_carry for _, rank_carry in per_rank]
    return tensors, rng_meta


def _stop(comm: hpc.Comm, preemption: hpc.PreemptionHandler, done: int, echo: Callable[[str], None]) -> None:
    """End training on every rank together after a stop signal; requeue under SLURM (rank 0)."""
    comm.barrier()
    requeued = hpc.requeue_job() if comm.is_root else False
    signal_name = preemption.received.name if preemption.received else "a signal on another rank"
    message = f"stopped by {signal_name} after update {done}, checkpointed; the run resumes from there" + (
        " (SLURM job requeued)" if requeued else " (--resume)"
    )
    if comm.is_root:
        echo(message)
    raise TrainingStopped(message, requeued)
