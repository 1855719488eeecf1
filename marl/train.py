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
from marl.buffers import RolloutBuffer
from marl.config import TrainConfig, stored_train_config
from marl.gae import compute_advantages
from marl.learner import Learner, load_init_weights, make_learner
from marl.minibatch import kept_messages
from marl.rollout import Policy, RolloutCarry, carry_tensors, collect, resume_rollouts, start_rollouts
from marl.run_dir import (
    CheckpointError,
    append_metrics,
    has_checkpoints,
    latest_checkpoint,
    plot_curves,
    resolve_checkpoint,
    save_run_checkpoint,
    truncate_metrics,
    write_yaml,
)
from marl.seeds import env_seed
from marl.threads import use_torch_threads
from marl.update import Ranks, TrainingDiverged, explained_variance_across, set_learning_rate, update
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
    saved = {
        **stored_train_config(meta.get("train_config", {})),
        "total_agent_steps": config.total_agent_steps,
    }
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
    env: Any, policy: Policy, tensors: dict[str, Any], rank: int, run_dir: Path
) -> RolloutCarry:
    snapshot = {name: tensor.numpy() for name, tensor in tensors["envs"][rank].items()}
    try:
        return resume_rollouts(env, policy, snapshot, tensors["carries"][rank])
    except ValueError as error:
        raise CheckpointError(f"{run_dir}: cannot continue the checkpoint's environments ({error})") from None


def _progress_line(
    update_index: int,
    num_updates: int,
    agent_steps: int,
    row: dict[str, Any],
    seconds_left: float,
    closing_episodes: int,
) -> str:
    episode_part = " ".join(
        f"{k} {row[k]:.3g}" for k in ("CSR", "ISR", "ep_length", "avg_throughput") if row.get(k) is not None
    )
    closing = f", then a closing evaluation of {closing_episodes} episodes" if closing_episodes else ""
    return (
        f"update {update_index}/{num_updates} | {agent_steps:,} agent-steps | "
        f"{row['agent_steps_per_s']:,.0f} agent-steps/s | {episode_part or 'no finished episode'} | "
        f"loss pi {row['policy_loss']:.3f} v {row['value_loss']:.3f} H {row['entropy']:.2f} | "
        f"{seconds_left / 60:.1f} min of training left{closing}"
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
    closing_episodes: int = 0,
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
    `closing_episodes`: the episodes of the evaluation the caller runs after training (0 for none), which
    the progress line announces (the evaluation shows its own progress).
    """
    comm = hpc.get_comm() if comm is None else comm
    device = hpc.device_for_rank(config.device, comm.local_rank)
    use_torch_threads(config.torch_threads)
    learner = make_learner(config, env.obs_shape, env.num_actions, device, comm.rank)
    run = _start_run(run_dir, learner, config, comm, resume, init, extra_meta or {}, echo)
    ranks = Ranks.of(comm, learner.policy)

    # allocate once
    plan = TrainingPlan.of(config, env.num_envs, env.num_agents, comm.size)
    if run.saved is None:
        carry = start_rollouts(env, learner.policy, seed=env_seed(config.seed, comm.rank))
    else:
        carry = _resume_rollouts(env, learner.policy, run.saved, comm.rank, run_dir)
    buffer = allocate_buffer(env, config, carry.obs.dtype, kept_messages(config, learner.policy))
    log = _Log(run_dir / "metrics.jsonl", plan, echo, sinks, config.log_every, closing_episodes)
    with hpc.PreemptionHandler() as preemption:
        for update_index in range(run.start, plan.num_updates):
            set_learning_rate(learner.optimizer, config, update_index / plan.num_updates)
            log.start()
            # collect
            carry, finished = collect(
                env, learner.policy, learner.value_norm, buffer, carry, learner.sampling
            )
            log.collected()
            # advantages
            compute_advantages(buffer, config.gamma, config.gae_lambda)
            explained = explained_variance_across(comm, buffer)
            # update
            stats = _update_or_stop(learner, buffer, config, ranks, update_index)
            # log
            done = update_index + 1
            episodes = run.recent.add_across(comm, finished)
            if comm.is_root:
                log.row(done, learner, explained, stats, episodes)
            # checkpoint: periodically, and on a stop signal before stopping
            stopping = done < plan.num_updates and preemption.stop_requested(comm)
            _checkpoint_if_due(run, run_dir, config, comm, learner, env, carry, done, plan, stopping)
            if stopping:
                _stop(comm, preemption, done, echo)
    if comm.is_root:
        plot_curves(run_dir / "metrics.jsonl", run_dir / "curves.png", CURVE_KEYS)
    comm.barrier()
    return learner


def allocate_buffer(
    env: Any, config: TrainConfig, obs_dtype: np.dtype, message_sizes: tuple[int, int, int] | None = None
) -> RolloutBuffer:
    """The rollout storage of `config.rollout_length` steps of `env`'s E environments x N agents (with the
    neighbour lists a local memory scope reads, and each step's messages for agent groups: `message_sizes`
    from `marl.minibatch.kept_messages`), allocated once and written in place by `collect`."""
    num_neighbours = env.neighbours.shape[-1] if config.scope == "local" else 0
    T, E, N = config.rollout_length, env.num_envs, env.num_agents
    return RolloutBuffer.allocate(
        T, E, N, env.obs_shape, obs_dtype, config.chunk_length, num_neighbours, message_sizes
    )


@dataclass
class _Run:
    """Where a run stands between updates: its first update, the best score of best/ so far, the
    episodes since the last periodic checkpoint (for best/), the metadata every checkpoint carries, and
    the resumed checkpoint's tensors (None for a new run)."""

    start: int
    best: float
    recent: EpisodeMeans
    meta: dict[str, Any]
    saved: dict[str, Any] | None


def _start_run(
    run_dir: Path,
    learner: Learner,
    config: TrainConfig,
    comm: hpc.Comm,
    resume: bool | Literal["auto"],
    init: Path | str | None,
    extra_meta: dict[str, Any],
    echo: Callable[[str], None],
) -> _Run:
    """Start a new run in `run_dir` (from `init`'s weights when given) or resume its newest checkpoint;
    write config.yaml (rank 0) and make every rank's learner equal."""
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
    meta = {
        "train_config": config.to_dict(),
        "policy_config": learner.policy.config.to_dict(),
        "world_size": comm.size,
        **init_meta,
        **extra_meta,
    }
    if comm.is_root:
        write_yaml(run_dir / "config.yaml", meta)
    keys = EPISODE_KEYS if config.best_metric in EPISODE_KEYS else (*EPISODE_KEYS, config.best_metric)
    recent = EpisodeMeans(keys)
    if saved is not None:
        recent.sums[:] = saved["recent_episodes"].numpy()
    return _Run(start, best, recent, meta, saved)


def _update_or_stop(
    learner: Learner,
    buffer: RolloutBuffer,
    config: TrainConfig,
    ranks: Ranks,
    update_index: int,
) -> dict[str, float]:
    """`update` on the collected rollout; TrainingDiverged naming the update when anything became
    non-finite (the newest checkpoint then holds the last finite weights)."""
    try:
        stats = update(
            learner.policy,
            learner.optimizer,
            learner.value_norm,
            buffer,
            config,
            learner.shuffle,
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
    return stats


class _Log:
    """Rank 0's record of each update: a metrics.jsonl row, the sinks, and every `log_every` updates a
    progress line whose time left follows the pace of the last 10 updates and which announces the closing
    evaluation of `closing_episodes` episodes (0: none) that follows training."""

    def __init__(
        self,
        path: Path,
        plan: TrainingPlan,
        echo: Callable[[str], None],
        sinks: Sequence[MetricSink],
        log_every: int,
        closing_episodes: int,
    ) -> None:
        self.path, self.plan, self.echo, self.sinks, self.log_every = path, plan, echo, sinks, log_every
        self.closing_episodes = closing_episodes
        self.recent_seconds: deque[float] = deque(maxlen=10)
        self.tick = self.collected_at = 0.0

    def start(self) -> None:
        self.tick = time.perf_counter()

    def collected(self) -> None:
        self.collected_at = time.perf_counter()

    def row(
        self, done: int, learner: Learner, explained: float, stats: dict[str, float], episodes: EpisodeMeans
    ) -> None:
        finished_at = time.perf_counter()
        self.recent_seconds.append(finished_at - self.tick)
        steps_per_update = self.plan.steps_per_update
        row = {
            "update": done,
            "agent_steps": done * steps_per_update,
            "episodes": episodes.episodes,
            "agent_steps_per_s": steps_per_update / (finished_at - self.tick),
            "collect_seconds": self.collected_at - self.tick,
            "update_seconds": finished_at - self.collected_at,
            "lr": learner.optimizer.param_groups[0]["lr"],
            "explained_variance": explained,
            **stats,
            **episodes.means(),
        }
        append_metrics(self.path, row)
        for sink in self.sinks:
            sink.log(row, row["agent_steps"])
        if done % self.log_every == 0 or done == self.plan.num_updates:
            # the recent updates' pace: an update's cost changes as episodes get shorter
            seconds_left = (self.plan.num_updates - done) * float(np.mean(self.recent_seconds))
            line = _progress_line(
                done, self.plan.num_updates, row["agent_steps"], row, seconds_left, self.closing_episodes
            )
            self.echo(line)


def _checkpoint_if_due(
    run: _Run,
    run_dir: Path,
    config: TrainConfig,
    comm: hpc.Comm,
    learner: Learner,
    env: Any,
    carry: RolloutCarry,
    done: int,
    plan: TrainingPlan,
    stopping: bool,
) -> None:
    """Checkpoint every `checkpoint_every` updates, at the last one, and on a stop signal; a periodic
    checkpoint whose recent episodes score above every earlier one's also goes to best/."""
    periodic = done % config.checkpoint_every == 0 or done == plan.num_updates
    is_best = False
    if periodic:
        score = run.recent.means().get(config.best_metric, -float("inf"))
        is_best, run.best = score > run.best, max(run.best, score)
        run.recent = EpisodeMeans(run.recent.keys)
    if periodic or stopping:
        tensors, rng_meta = _checkpoint_tensors(comm, learner, env, carry, run.recent)
        if comm.is_root:
            meta = {
                **run.meta,
                "update": done,
                "agent_steps": done * plan.steps_per_update,
                "best": run.best,
                "rng": rng_meta,
            }
            save_run_checkpoint(run_dir, done, tensors, meta, best=is_best)


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
