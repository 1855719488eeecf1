"""Learning from an expert: expert episodes -> behaviour cloning -> DAgger -> MAPPO fine-tuning, one run.

The expert is a scripted centralized policy of `sim.baselines.POLICIES`, a planner such as PIBT
(`sim.planners`, the default) or a baseline, made with the env and called with no arguments for the (E, N)
actions of the env's current state, keeping its own state (PIBT's priorities). It sees the whole state;
the learner is the decentralized policy MAPPO trains (`marl.learner.build_policy`), reading only the
scenario's observation (and, for SRMT, the memories in its scope).

1. Expert episodes: the expert plays the scenario and every episode goes to an episode store (a few bytes
   per agent-step; `gridswarm run SCENARIO --policy EXPERT --record STORE` writes the same).
2. Behaviour cloning: cross-entropy on the expert's actions (active agents only) over recurrent chunks of
   the stored episodes, replayed by `marl.offline.ExpertChunks` with the scenario's full observation.
   A batch's chunks are unrolled in time order and the memory is carried from one chunk into the next
   (truncated BPTT over `chunk_length` steps, as MAPPO's update), starting fresh at each batch.
3. DAgger (Ross, Gordon and Bagnell, AISTATS 2011): the learner plays (in iteration i an environment
   follows the expert at a step with probability beta_i, the learner otherwise), the expert labels every
   state visited along that trajectory (keeping its own state, e.g. priorities, along it), the labelled
   episodes go to an episode store of the iteration, and the learner is retrained on the expert episodes
   (or a share of them) plus the last `dagger_keep` iterations' episodes.
4. MAPPO fine-tuning from the cloned weights (`marl.train.train(init=...)`) in RUN_DIR/mappo.

```
RUN_DIR/config.yaml         imitation config, train config, policy config, scenario (name and spec)
RUN_DIR/metrics.jsonl       one row per stage: phase expert | bc | dagger, losses, accuracy, rollout metrics,
                            wall and CPU seconds
RUN_DIR/experts.zarr        the expert episodes (unless `expert_data` names a store)
RUN_DIR/dagger/iteration-I.zarr  DAgger's labelled learner episodes of iteration I
RUN_DIR/checkpoints/        one checkpoint per stage (step 0: expert data, then one per cloning epoch and
                            per DAgger iteration): policy, optimizer, RNG states; `load_policy` reads them
RUN_DIR/mappo/              the fine-tuning run (a `gridswarm train` run directory)
```
Every stage ends with a checkpoint; a run killed at any moment resumes from the last one and continues
exactly as if it had not stopped. A stage's episode store appears complete or not at all
(`fsio.atomic_directory`); one left by a stage that did not reach its checkpoint is deleted and the stage
redone.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import hpc
from fsio import abandoned_temporaries, atomic_directory
from marl.buffers import map_state
from marl.config import ConfigError, ImitationConfig, TrainConfig, stored_train_config
from marl.evaluate import mean_metrics, run_episodes
from marl.learner import build_policy, load_init_weights, pick_device
from marl.losses import masked_mean
from marl.offline import ChunkConfig, ExpertChunks
from marl.rollout import Policy
from marl.run_dir import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    append_metrics,
    has_checkpoints,
    latest_checkpoint,
    read_run_config,
    save_run_checkpoint,
    scenario_meta,
    truncate_metrics,
    write_yaml,
)
from marl.seeds import dagger_seeds, expert_data_seed
from marl.train import train

EXPERT_STORE = "experts.zarr"
DAGGER_DIR = "dagger"
MAPPO_DIR = "mappo"


# ---- the pieces ----------------------------------------------------------------------------------------


def clone_epoch(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    chunks: Iterable[dict[str, torch.Tensor]],
    device: torch.device,
    max_grad_norm: float,
) -> dict[str, float]:
    """One pass of behaviour cloning over `chunks` (ExpertChunks items, in their order): one gradient step
    per chunk on the cross-entropy of the labels of the active agents, the memory carried from chunk to
    chunk within a batch (detached: truncated BPTT). Returns the mean loss and accuracy (argmax = label)
    weighted by active agent-steps, and the counts."""
    state = None
    loss_sum = correct = samples = 0.0
    steps = 0
    for chunk in chunks:
        L, E, N = chunk["labels"].shape
        if bool(chunk["first"]) or state is None:
            state = map_state(lambda leaf: leaf.to(device), policy.initial_state(E, N))
        active = chunk["active"].to(device)
        neighbours = chunk.get("neighbours")
        logits, _, state = policy.unroll(
            chunk["obs"].to(device),
            state,
            chunk["reset"].to(device),
            None if neighbours is None else neighbours.to(device),
            active,
        )
        state = map_state(torch.Tensor.detach, state)
        count = int(active.sum())
        if count == 0:
            continue
        labels = chunk["labels"].to(device)
        losses = torch.nn.functional.cross_entropy(logits.flatten(0, 2), labels.flatten(), reduction="none")
        loss = masked_mean(losses.view(L, E, N), active)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
        optimizer.step()
        loss_sum += loss.item() * count
        correct += float(((logits.argmax(-1) == labels) & active).sum())
        samples += count
        steps += 1
    return {
        "loss": loss_sum / max(samples, 1.0),
        "accuracy": correct / max(samples, 1.0),
        "samples": samples,
        "gradient_steps": float(steps),
    }


class ExpertLabelling:
    """What a DAgger rollout steps in place of its Recorder: before every step the expert labels the state
    (all agents), each environment follows the expert's actions with probability `beta` (drawn per
    environment and step) and the learner's otherwise, and the Recorder stores the executed actions with
    the expert's labels. `agreement` counts how often the learner's action equals the label."""

    def __init__(
        self, recorder: Any, expert: Callable[[], np.ndarray], beta: float, rng: np.random.Generator
    ) -> None:
        self.recorder, self.expert, self.beta, self.rng = recorder, expert, beta, rng
        self.agreed = 0
        self.labelled = 0

    def reset(self, seed: int | None = None) -> Any:
        return self.recorder.reset(seed=seed)

    def step(self, actions: np.ndarray) -> Any:
        labels = np.array(self.expert(), dtype=np.int64)  # (E, N), the expert's view of this state
        active = np.asarray(self.recorder.env.active)
        self.agreed += int(((labels == actions) & active).sum())
        self.labelled += int(active.sum())
        follow_expert = self.rng.random(labels.shape[0]) < self.beta  # (E,)
        executed = np.where(follow_expert[:, None], labels, actions)
        return self.recorder.step(executed, expert_actions=labels)

    @property
    def agreement(self) -> float:
        return self.agreed / max(self.labelled, 1)


def record_expert(
    scenario: Any, expert: str, episodes: int, num_envs: int, seed: int, store: Path
) -> list[dict[str, float]]:
    """The expert plays at least `episodes` episodes of `scenario` (num_envs side by side; every episode
    that ends is written to `store`, so a store may hold a few more); the metrics of the first `episodes`."""
    from sim.baselines import make_baseline, play_episodes
    from sim.env import GridEnv
    from sim.episodes import Recorder

    # one thread: numba's OpenMP layer would also reset torch's thread count (marl.rollout)
    env = GridEnv(scenario, num_envs, seed=seed, obs_dtype=np.uint8, num_threads=1)
    policy = make_baseline(expert, env, seed)
    # not fsynced episode by episode (a quarter of a second each on a slow disk): the recipe records into
    # a staging directory that is fsynced once, as a whole, before it is renamed into place
    with Recorder(env, store, policy=f"{expert} expert (seed {seed})", durable=False) as recorder:
        return play_episodes(env, policy, episodes, recorder)


def dagger_rollout(
    scenario: Any,
    policy: Policy,
    expert: str,
    episodes: int,
    beta: float,
    seed: int,
    store: Path,
    sampling_seed: int,
    device: torch.device,
) -> tuple[list[dict[str, float]], float]:
    """One DAgger rollout: `episodes` episodes side by side, the learner (sampling) mixed with the expert
    at rate `beta`, every state labelled by the expert, written to `store`. Returns the episodes' metrics
    and the learner's agreement with the expert's labels."""
    from sim.baselines import make_baseline
    from sim.env import GridEnv
    from sim.episodes import Recorder

    env = GridEnv(scenario, episodes, seed=seed, auto_reset=False, obs_dtype=np.uint8, num_threads=1)
    expert_policy = make_baseline(expert, env, seed)
    mixture = np.random.default_rng(seed)
    identity = f"DAgger learner with {expert} expert, beta {beta:.4g} (seed {seed})"
    with Recorder(env, store, policy=identity, expert_labels=True, durable=False) as recorder:
        labelling = ExpertLabelling(recorder, expert_policy, beta, mixture)
        metrics = run_episodes(env, policy, device, sampling_seed, seed=seed, recorder=labelling)
    return metrics, labelling.agreement


# ---- the recipe ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Clock:
    """Wall and CPU seconds of one stage."""

    wall: float = dataclasses.field(default_factory=time.perf_counter)
    cpu: float = dataclasses.field(default_factory=time.process_time)

    def row(self) -> dict[str, float]:
        return {"seconds": time.perf_counter() - self.wall, "cpu_seconds": time.process_time() - self.cpu}


class Imitation:
    """One run of the recipe (module docstring) in `run_dir`; `run()` carries it out or continues it."""

    def __init__(
        self,
        scenario: Any,
        imitation: ImitationConfig,
        config: TrainConfig,
        run_dir: Path,
        scenario_name: str,
        echo: Callable[[str], None] = print,
    ) -> None:
        from sim.baselines import POLICIES
        from sim.env import GridEnv

        plays = imitation.expert_data is None or imitation.dagger_iterations > 0
        if plays and imitation.expert not in POLICIES:  # a given store needs no expert, unless for DAgger
            raise ConfigError(f"expert {imitation.expert!r}: expected one of {', '.join(POLICIES)}")
        self.scenario, self.imitation, self.config = scenario, imitation, config
        self.run_dir, self.echo = Path(run_dir), echo
        self.device = pick_device(config.device)
        probe = GridEnv(scenario, 1, seed=0)
        self.policy = build_policy(config, probe.obs_shape, probe.num_actions, self.device)
        if imitation.init is not None:  # a resumed run's checkpoint overrides these weights
            load_init_weights(self.policy, imitation.init)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=imitation.bc_lr, eps=config.adam_eps)
        self.meta = {
            "format": CHECKPOINT_FORMAT,
            **scenario_meta(scenario, scenario_name),
            "imitation_config": imitation.to_dict(),
            "train_config": config.to_dict(),
            "policy_config": self.policy.config.to_dict(),
        }

    # stages: 0 = expert data, 1..B = cloning epochs, B+1..B+D = DAgger iterations
    @property
    def num_stages(self) -> int:
        return 1 + self.imitation.bc_epochs + self.imitation.dagger_iterations

    @property
    def expert_store(self) -> Path:
        given = self.imitation.expert_data
        return Path(given) if given is not None else self.run_dir / EXPERT_STORE

    def run(self, resume: bool | Literal["auto"] = False) -> Path:
        """Carry out (or continue) every stage and the fine-tuning; returns the final policy's checkpoint."""
        torch.set_num_threads(self.config.torch_threads)
        start = self._start(resume)
        for stage in range(start, self.num_stages):
            clock = _Clock()
            row = self._stage(stage)
            append_metrics(self.run_dir / "metrics.jsonl", {"update": stage, **row, **clock.row()})
            self._checkpoint(stage, row)
            self.echo(_progress_line(stage, self.num_stages, row))
        cloned = latest_checkpoint(self.run_dir)[2]
        if self.imitation.finetune_agent_steps == 0:
            return cloned
        return self._finetune(cloned)

    def _start(self, resume: bool | Literal["auto"]) -> int:
        """The first stage to run: 0 for a new run, one past the newest checkpoint's when resuming."""
        config_path = self.run_dir / "config.yaml"
        if resume == "auto":
            resume = config_path.exists()
        if not resume:
            if config_path.exists() or has_checkpoints(self.run_dir):
                raise CheckpointError(
                    f"{self.run_dir}: already holds a run (resume it with --resume, or choose another --out)"
                )
            write_yaml(config_path, {k: v for k, v in self.meta.items() if k != "format"})
            return 0
        saved = read_run_config(self.run_dir)
        if "imitation_config" not in saved:
            raise CheckpointError(f"{config_path}: not the config of an imitation run (no imitation_config)")
        saved["train_config"] = stored_train_config(saved.get("train_config") or {})
        for key in ("imitation_config", "train_config"):
            if saved.get(key) != self.meta[key]:
                changed = sorted(k for k, v in self.meta[key].items() if (saved.get(key) or {}).get(k) != v)
                raise CheckpointError(
                    f"{self.run_dir}: cannot resume with a different config (changed: {', '.join(changed)})"
                )
        if not has_checkpoints(self.run_dir):
            truncate_metrics(self.run_dir / "metrics.jsonl", -1)
            return 0
        tensors, meta, _ = latest_checkpoint(self.run_dir)
        self.policy.load_state_dict(tensors["policy"])
        self.optimizer.load_state_dict(tensors["optimizer"])
        hpc.restore_rng(tensors["rng"], meta["rng"])
        truncate_metrics(self.run_dir / "metrics.jsonl", meta["update"])
        self.echo(f"resuming {self.run_dir} after stage {meta['update']} ({meta['phase']})")
        return meta["update"] + 1

    def _stage(self, stage: int) -> dict[str, Any]:
        bc_epochs = self.imitation.bc_epochs
        if stage == 0:
            return self._expert_data()
        if stage <= bc_epochs:
            stats = self._clone(self._expert_chunks(), stage)
            return {"phase": "bc", "epoch": stage, **stats}
        return self._dagger(stage - bc_epochs, stage)

    def _expert_data(self) -> dict[str, Any]:
        """Record the expert episodes (unless given); the row describes every stored episode."""
        imitation = self.imitation
        if imitation.expert_data is None:
            _clear(self.expert_store)
            with atomic_directory(self.expert_store) as staging:
                record_expert(
                    self.scenario,
                    imitation.expert,
                    imitation.expert_episodes,
                    imitation.expert_envs,
                    expert_data_seed(self.config.seed),
                    staging,
                )
        chunks = self._expert_chunks()
        expert = mean_metrics([dict(episode.info.metrics) for episode in chunks.episodes])
        return {
            "phase": "expert",
            "episodes": len(chunks.episodes),
            "agent_steps": chunks.agent_steps,
            **expert,
        }

    def _expert_chunks(self) -> ExpertChunks:
        return ExpertChunks([self.expert_store], self._chunk_config())

    def _chunk_config(self) -> ChunkConfig:
        return ChunkConfig(self.config.chunk_length, self.imitation.lanes, seed=self.config.seed)

    def _clone(self, chunks: ExpertChunks, stage: int) -> dict[str, float]:
        chunks.set_epoch(stage)
        tick = time.perf_counter()
        stats = clone_epoch(self.policy, self.optimizer, chunks, self.device, self.config.max_grad_norm)
        stats["agent_steps_per_s"] = chunks.agent_steps / (time.perf_counter() - tick)
        return stats

    def _dagger(self, iteration: int, stage: int) -> dict[str, Any]:
        imitation = self.imitation
        store = self._dagger_store(iteration)
        _clear(store)
        beta = imitation.beta(iteration)
        rollout_seed, sampling, choice = dagger_seeds(self.config.seed, iteration)
        with atomic_directory(store) as staging:
            metrics, agreement = dagger_rollout(
                self.scenario,
                self.policy,
                imitation.expert,
                imitation.dagger_episodes,
                beta,
                rollout_seed,
                staging,
                sampling,
                self.device,
            )
        experts = [episode.info.id for episode in self._expert_chunks().episodes]
        count = round(imitation.dagger_expert_fraction * len(experts))
        chosen = np.random.default_rng(choice).permutation(experts)
        kept = [
            self._dagger_store(i) for i in range(max(1, iteration - imitation.dagger_keep + 1), iteration)
        ]
        aggregate = ExpertChunks(
            [self.expert_store, *kept, store],
            self._chunk_config(),
            keep=_expert_share(self.expert_store, set(chosen[:count].tolist())),
        )
        stats: dict[str, float] = {}
        for epoch in range(imitation.dagger_epochs):
            stats = self._clone(aggregate, stage * imitation.dagger_epochs + epoch)
        rollout = {f"rollout_{key}": value for key, value in mean_metrics(metrics).items()}
        return {
            "phase": "dagger",
            "iteration": iteration,
            "beta": beta,
            "label_agreement": agreement,
            "aggregate_episodes": len(aggregate.episodes),
            **rollout,
            **stats,
        }

    def _dagger_store(self, iteration: int) -> Path:
        return self.run_dir / DAGGER_DIR / f"iteration-{iteration:03d}.zarr"

    def _checkpoint(self, stage: int, row: dict[str, Any]) -> None:
        rng_tensors, rng_meta = hpc.capture_rng()
        tensors = {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_tensors,
        }
        meta = {**self.meta, "update": stage, "phase": row["phase"], "best": None, "rng": rng_meta}
        save_run_checkpoint(self.run_dir, stage, tensors, meta, best=False)

    def _scenario_meta(self) -> dict[str, Any]:
        return {key: self.meta[key] for key in ("scenario", "scenario_spec")}

    def _finetune(self, cloned: Path) -> Path:
        config = dataclasses.replace(self.config, total_agent_steps=self.imitation.finetune_agent_steps)
        if self.imitation.finetune_lr is not None:
            config = dataclasses.replace(config, lr=self.imitation.finetune_lr)
        from marl.envs import make_training_envs

        env = make_training_envs(self.scenario, config.num_envs, config.seed)
        out = self.run_dir / MAPPO_DIR
        self.echo(f"MAPPO fine-tuning from {cloned} -> {out}")
        train(env, config, out, resume="auto", echo=self.echo, extra_meta=self._scenario_meta(),
              init=cloned)  # fmt: skip
        return latest_checkpoint(out)[2]


def _expert_share(expert_store: Path, chosen: set[str]) -> Callable[[Any, Any], bool]:
    """Keep the expert episodes of `chosen` (ids) and every episode of the other stores."""
    expert_root = expert_store.resolve()

    def keep(store: Any, info: Any) -> bool:
        return Path(store.path).resolve() != expert_root or info.id in chosen

    return keep


def _clear(store: Path) -> None:
    """Delete an episode store of the run whose stage did not reach its checkpoint, and the staging
    directories of stages killed while recording (this host's, of processes no longer running)."""
    shutil.rmtree(store, ignore_errors=True)
    if store.parent.is_dir():
        for leftover in abandoned_temporaries(store.parent):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _progress_line(stage: int, num_stages: int, row: dict[str, Any]) -> str:
    shown = ("episodes", "avg_throughput", "loss", "accuracy", "beta", "rollout_avg_throughput",
             "label_agreement", "seconds")  # fmt: skip
    parts = " | ".join(f"{k} {row[k]:.4g}" for k in shown if isinstance(row.get(k), int | float))
    return f"stage {stage}/{num_stages - 1} {row['phase']} | {parts}"
