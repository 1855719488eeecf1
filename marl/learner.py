"""The learner: the policy MAPPO trains, its optimizer, value normalizer and random generators, made fresh
(`make_learner`), from a checkpoint's weights (`load_init_weights`) or restored from a checkpoint
(`Learner.restore`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import hpc
import memory
from marl.config import TrainConfig
from marl.run_dir import CheckpointError, read_checkpoint
from marl.seeds import sampling_seed, shuffle_seed
from marl.value_norm import ValueNorm


def pick_device(requested: str) -> torch.device:
    """`auto`: CUDA when available, else CPU; `cuda` without a GPU is an error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def build_policy(
    config: TrainConfig, obs_shape: tuple[int, int, int], num_actions: int, device: torch.device
) -> Any:
    """A fresh policy of config's model, preset and sizes, initialized from config.seed."""
    torch.manual_seed(config.seed)
    policy = memory.make_policy(
        config.model, obs_shape, num_actions, preset=config.preset, scope=config.scope, **config.policy_sizes
    )
    return policy.to(device)


def load_init_weights(policy: Any, init: Path | str) -> Path:
    """Copy the policy weights of checkpoint `init` (a file, a run directory or `pretrained:NAME`) into
    `policy` and return the checkpoint's path. Only the weights are read (weights_only loading); a
    checkpoint of another architecture or observation shape is a one-line CheckpointError."""
    tensors, meta, path = read_checkpoint(init)
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
        shuffle=torch.Generator().manual_seed(shuffle_seed(config.seed)),
    )
