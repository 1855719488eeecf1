"""The minibatch layout of the update: units of (chunk, env, agent group), drawn in a shuffled order.

A rollout of E environments x N agents, cut into K chunks of L steps, is K * E * G units: one chunk of
one group of S = N / G of one environment's agents. Unit u is chunk u // (E*G), env (u // G) % E, group
u % G; with G = 1 (the default) a unit is a (chunk, env) pair holding every agent of that env, in index
order. With G > 1 the groups of a (chunk, env) cut an ordering of its agents into G runs of S:
"spatial" (the default) orders them by the Hilbert index of their cell at the chunk's start
(`spatial_order`, from the rollout's `chunk_positions`), so a group holds agents that are near each other
and most neighbour links stay inside it; "consecutive" keeps index order (agents g*S .. (g+1)*S - 1).

Every agent is unrolled over its whole chunk from its stored chunk-start memory, so its recurrence is
exact. With G > 1 (local scope only) what an agent reads from agents outside its group, their memories
(the SRMT messages and the critic's memory summary), their encodings (neighbour_attention's messages)
and their core features (the critic's features summary), is what the rollout stored for them at that
step (`memory.pool.Outside`): fixed inputs. Compared with the update of the whole env (G = 1) this
drops exactly the gradient paths that pass through an outside agent's computation: d loss_i / d theta
through the memory m_j(t) and features f_j(t) of an agent j of another group that agent i reads. The
paths through agent i's own computation and through the agents of its group are kept (spatial groups
keep most of them: agents move at most L cells in a chunk, so its neighbour links stay mostly local).
The forward values are those of the whole-env update on the first minibatch of an update (the stored
values are what the policy computed in collection, up to float rounding); later minibatches read
outside values from the policy before the update started rather than recomputed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from marl.buffers import MESSAGE_NAMES, RolloutBuffer, State, chunk_view, map_state
from marl.config import AgentGrouping, ConfigError, TrainConfig
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


def hilbert_index(rows: np.ndarray, cols: np.ndarray, bits: int) -> np.ndarray:
    """The position along the Hilbert curve of order `bits` (a walk through every cell of the 2**bits
    square whose consecutive cells share a side) of the cells (rows, cols), int arrays of one shape in
    [0, 2**bits); int64 of that shape. Cells close along the curve are close on the grid. The standard
    "xy2d" conversion (Wikipedia, "Hilbert curve"), one quadrant level per pass over all cells."""
    x, y = rows.astype(np.int64), cols.astype(np.int64)
    index = np.zeros_like(x)
    for level in range(bits - 1, -1, -1):
        side = 1 << level
        high_x, high_y = (x & side) > 0, (y & side) > 0
        index += side * side * ((3 * high_x) ^ high_y)  # the quadrant's place along the curve
        # the quadrant's cells in the frame its sub-curve runs in: mirrored, then transposed
        mirror = high_x & ~high_y
        x, y = np.where(mirror, side - 1 - x, x), np.where(mirror, side - 1 - y, y)
        x, y = np.where(high_y, x, y), np.where(high_y, y, x)
        x, y = x & (side - 1), y & (side - 1)
    return index


def spatial_order(positions: np.ndarray) -> np.ndarray:
    """(..., N, 2) int (row, col) -> (..., N) int64: each row's agents in Hilbert order of their cells
    (ties, agents on one cell, in index order)."""
    bits = max(int(positions.max(initial=0)).bit_length(), 1)
    keys = hilbert_index(positions[..., 0], positions[..., 1], bits)
    return np.argsort(keys, axis=-1, kind="stable")


class Units(NamedTuple):
    """Where a minibatch's B units lie in the rollout (`MinibatchLayout.index`)."""

    chunk: np.ndarray  # (B,) int64
    env: np.ndarray  # (B,) int64
    members: np.ndarray  # (B, S) int64, the unit's agents (indices among its env's N agents)


@dataclass(frozen=True)
class MinibatchLayout:
    """How a rollout's units map to chunks, environments and the agents of each group.

    `order` (K, E, N) int64: each (chunk, env)'s agents in the order its groups cut (group g holds
    order[k, e, g*S : (g+1)*S])."""

    chunk_length: int
    groups: int
    order: np.ndarray

    @classmethod
    def of(cls, buffer: RolloutBuffer, groups: int, grouping: AgentGrouping = "spatial") -> MinibatchLayout:
        """The layout of `buffer` with `groups` agent groups per env (ConfigError if they do not fit)."""
        steps, num_envs, num_agents = buffer.shape
        if num_agents % groups:
            raise ConfigError(
                f"agent_groups {groups}: expected a divisor of the scenario's {num_agents} agents"
            )
        if groups > 1 and buffer.messages is None:
            raise ValueError("an update over agent groups needs a rollout that kept its messages")
        num_chunks = steps // buffer.chunk_length
        if groups > 1 and grouping == "spatial":
            order = spatial_order(buffer.chunk_positions)  # (K, E, N)
        else:
            order = np.broadcast_to(np.arange(num_agents), (num_chunks, num_envs, num_agents))
        return cls(buffer.chunk_length, groups, order)

    @property
    def num_envs(self) -> int:
        """E, the rollout's environments."""
        return self.order.shape[1]

    @property
    def num_units(self) -> int:
        """K * E * G: the units the minibatches of an epoch partition."""
        return self.order.shape[0] * self.num_envs * self.groups

    @property
    def group_size(self) -> int:
        """S = N / G agents per unit."""
        return self.order.shape[2] // self.groups

    def index(self, units: np.ndarray) -> Units:
        """The chunk, env and agents of each of the units (B,)."""
        per_chunk = self.num_envs * self.groups
        chunk, env, group = units // per_chunk, (units // self.groups) % self.num_envs, units % self.groups
        slots = group[:, None] * self.group_size + np.arange(self.group_size)  # (B, S)
        return Units(chunk, env, self.order[chunk[:, None], env[:, None], slots])

    def crossing_links(self, neighbours: np.ndarray) -> np.ndarray:
        """(T, E, N, K) bool: the neighbour links (T, E, N, K) int, -1 padded, that join agents of two
        different groups at their step: the links whose gradient path the update drops."""
        groups = np.empty(self.order.shape, dtype=np.int64)  # (K, E, N): each agent's group
        slots = np.arange(self.order.shape[2]) // self.group_size
        np.put_along_axis(groups, self.order, np.broadcast_to(slots, self.order.shape), axis=-1)
        at_step = np.repeat(groups, self.chunk_length, axis=0)  # (T, E, N)
        flat = neighbours.clip(min=0).reshape(*at_step.shape[:2], -1)  # (T, E, N*K)
        of_neighbour = np.take_along_axis(at_step, flat, axis=2).reshape(neighbours.shape)
        return (neighbours >= 0) & (of_neighbour != at_step[..., None])

    def gather(self, array: np.ndarray, units: Units) -> np.ndarray:
        """(T, E, N, ...) -> (L, B, S, ...): the units' steps and agents, time-major for policy.unroll."""
        grouped = chunk_view(array, self.chunk_length)  # (K, L, E, N, ...)
        picked = grouped[units.chunk[:, None], :, units.env[:, None], units.members]  # (B, S, L, ...)
        return np.moveaxis(picked, 2, 0)

    def gather_states(self, chunk_states: list[State], units: Units, device: torch.device) -> State:
        """The stored states at the units' chunk starts: leaves (E, N, ...) -> (B, S, ...)."""
        chunk, env, members = (torch.from_numpy(index).to(device) for index in units)
        chunk, env = chunk[:, None], env[:, None]

        def pick(*leaves: torch.Tensor) -> torch.Tensor:
            return torch.stack(leaves)[chunk, env, members]  # (K, E, N, ...) -> (B, S, ...)

        return map_state(pick, *chunk_states)

    def outside(self, buffer: RolloutBuffer, units: Units, device: torch.device) -> list[Outside] | None:
        """The L per-step `Outside`s of the units' envs (leaves (B, N, ...)); None when the rollout kept
        no messages (one group: a unit then holds its whole env and reads nothing from outside)."""
        if buffer.messages is None:
            return None
        members = torch.from_numpy(units.members).to(device)

        def steps(array: np.ndarray) -> torch.Tensor:  # (T, E, N, ...) -> (L, B, N, ...)
            every_agent = chunk_view(array, self.chunk_length)[units.chunk, :, units.env]  # (B, L, N, ...)
            return torch.from_numpy(np.swapaxes(every_agent, 0, 1)).to(device)

        memory, encoding, features = (steps(buffer.messages[name]) for name in MESSAGE_NAMES)
        reset, active = steps(buffer.reset_masks), steps(buffer.active)
        return [
            Outside(members, memory[t], encoding[t], features[t], reset[t], active[t])
            for t in range(self.chunk_length)
        ]

    def minibatch(
        self, arrays: dict[str, np.ndarray], units: Units, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """The (L, B, S, ...) slices of every array (T, E, N, ...) for the units, on the device."""
        return {name: torch.from_numpy(self.gather(a, units)).to(device) for name, a in arrays.items()}
