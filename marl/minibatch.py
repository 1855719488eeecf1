"""The minibatch layout of the update: units of (chunk, env, agent group), drawn in a shuffled order.

A rollout of E environments x N agents, cut into K chunks of L steps, is K * E * G units: one chunk of one
environment's agents g*S .. (g+1)*S - 1 (G groups of S = N / G agents, consecutive agent indices). Unit u
is chunk u // (E*G), env (u // G) % E, group u % G; with G = 1 (the default) a unit is a (chunk, env)
pair holding every agent of that env.

Every agent is unrolled over its whole chunk from its stored chunk-start memory, so its recurrence is
exact. With G > 1 (local scope only) what an agent reads from agents outside its group, their memories
(the SRMT messages and the critic's memory summary), their encodings (neighbour_attention's messages)
and their core features (the critic's features summary), is what the rollout stored for them at that
step (`memory.pool.Outside`): fixed inputs. Compared with the update of the whole env (G = 1) this
drops exactly the gradient paths that pass through an outside agent's computation: d loss_i / d theta
through the memory m_j(t) and features f_j(t) of an agent j of another group that agent i reads. The
paths through agent i's own computation and through the agents of its group are kept. The forward values
are those of the whole-env update on the first minibatch of an update (the stored values are what the
policy computed in collection, up to float rounding); later minibatches read outside values from the
policy before the update started rather than recomputed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from marl.buffers import MESSAGE_NAMES, RolloutBuffer, State, chunk_view, map_state
from marl.config import ConfigError, TrainConfig
from memory.pool import Outside


def kept_messages(config: TrainConfig, policy: Any) -> tuple[int, int, int] | None:
    """The `message_sizes` a rollout must keep for the update's agent groups (None with one group)."""
    return policy.message_sizes if config.agent_groups > 1 else None


def loss_inputs(buffer: RolloutBuffer, advantages: np.ndarray) -> dict[str, np.ndarray]:
    """The (T, E, N, ...) arrays a minibatch's loss reads, by the names `minibatch_loss` uses."""
    arrays = {
        "advantages": advantages,
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
    return arrays


@dataclass(frozen=True)
class MinibatchLayout:
    """How a rollout's units map to chunks, environments and agent groups."""

    chunk_length: int
    num_chunks_per_env: int
    num_envs: int
    num_agents: int
    groups: int

    @classmethod
    def of(cls, buffer: RolloutBuffer, groups: int) -> MinibatchLayout:
        """The layout of `buffer` with `groups` agent groups per env (ConfigError if they do not fit)."""
        steps, num_envs, num_agents = buffer.shape
        if num_agents % groups:
            raise ConfigError(
                f"agent_groups {groups}: expected a divisor of the scenario's {num_agents} agents"
            )
        if groups > 1 and buffer.messages is None:
            raise ValueError("an update over agent groups needs a rollout that kept its messages")
        return cls(buffer.chunk_length, steps // buffer.chunk_length, num_envs, num_agents, groups)

    @property
    def num_units(self) -> int:
        """K * E * G: the units the minibatches of an epoch partition."""
        return self.num_chunks_per_env * self.num_envs * self.groups

    @property
    def group_size(self) -> int:
        """S = N / G agents per unit."""
        return self.num_agents // self.groups

    def split(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chunk, env, group) indices (B,) each of units (B,)."""
        per_chunk = self.num_envs * self.groups
        return units // per_chunk, (units // self.groups) % self.num_envs, units % self.groups

    def members(self, group: np.ndarray) -> np.ndarray:
        """(B, S) int64: the agents of each unit's group."""
        return group[:, None] * self.group_size + np.arange(self.group_size)

    def gather(self, array: np.ndarray, units: np.ndarray) -> np.ndarray:
        """(T, E, N, ...) -> (L, B, S, ...): the units' steps and agents, time-major for policy.unroll."""
        chunk, env, group = self.split(units)
        grouped = chunk_view(array, self.chunk_length)  # (K, L, E, N, ...)
        grouped = grouped.reshape(*grouped.shape[:3], self.groups, self.group_size, *array.shape[3:])
        return np.swapaxes(grouped[chunk, :, env, group], 0, 1)  # (B, L, S, ...) -> (L, B, S, ...)

    def gather_states(self, chunk_states: list[State], units: np.ndarray, device: torch.device) -> State:
        """The stored states at the units' chunk starts: leaves (E, N, ...) -> (B, S, ...)."""
        chunk, env, group = (torch.from_numpy(index).to(device) for index in self.split(units))

        def pick(*leaves: torch.Tensor) -> torch.Tensor:
            stacked = torch.stack(leaves)  # (K, E, N, ...)
            grouped = stacked.reshape(*stacked.shape[:2], self.groups, self.group_size, *stacked.shape[3:])
            return grouped[chunk, env, group]

        return map_state(pick, *chunk_states)

    def outside(self, buffer: RolloutBuffer, units: np.ndarray, device: torch.device) -> list[Outside] | None:
        """The L per-step `Outside`s of the units' envs (leaves (B, N, ...)); None when the rollout kept
        no messages (one group: a unit then holds its whole env and reads nothing from outside)."""
        if buffer.messages is None:
            return None
        whole = MinibatchLayout(self.chunk_length, self.num_chunks_per_env, self.num_envs, self.num_agents, 1)
        env_units = units // self.groups  # the (chunk, env) unit of the whole env
        members = torch.from_numpy(self.members(self.split(units)[2])).to(device)

        def steps(array: np.ndarray) -> torch.Tensor:  # (L, B, N, ...)
            return torch.from_numpy(whole.gather(array, env_units)).to(device)

        memory, encoding, features = (steps(buffer.messages[name]) for name in MESSAGE_NAMES)
        reset, active = steps(buffer.reset_masks), steps(buffer.active)
        return [
            Outside(members, memory[t], encoding[t], features[t], reset[t], active[t])
            for t in range(self.chunk_length)
        ]

    def minibatch(
        self, arrays: dict[str, np.ndarray], units: np.ndarray, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """The (L, B, S, ...) slices of every array (T, E, N, ...) for the units, on the device."""
        return {name: torch.from_numpy(self.gather(a, units)).to(device) for name, a in arrays.items()}
