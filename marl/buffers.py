"""The rollout storage, allocated once per run and written in place.

Every per-step array is laid out (T, E, N, ...): rollout step, environment, agent. Memory states are kept
only at chunk starts (every `chunk_length` steps): the update unrolls each chunk from its stored state with
gradients through memory. A policy state is any tree of tensors whose leaves have the environment as their
leading axis (a tensor, tuple/list/dict of them, a dataclass of them, or None).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

State = Any
MESSAGE_NAMES = ("memory", "encoding", "features")
"""The fields of memory.StepMessages, in the order of `SwarmPolicy.message_sizes`."""


def map_state(fn: Callable[..., torch.Tensor], *states: State) -> State:
    """Apply fn leaf-wise to one or more policy states of the same structure."""
    first = states[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return fn(*states)
    if isinstance(first, tuple | list):
        return type(first)(map_state(fn, *parts) for parts in zip(*states, strict=True))
    if isinstance(first, dict):
        return {key: map_state(fn, *(s[key] for s in states)) for key in first}
    if dataclasses.is_dataclass(first):
        return dataclasses.replace(
            first,
            **{
                f.name: map_state(fn, *(getattr(s, f.name) for s in states))
                for f in dataclasses.fields(first)
                if f.init
            },
        )
    raise TypeError(f"policy state leaf of type {type(first).__name__}: expected tensors")


@dataclass
class RolloutBuffer:
    """One rollout of T steps of E environments with N agents each (numpy, CPU)."""

    obs: np.ndarray  # (T, E, N, C, F, F) the env's observation dtype
    actions: np.ndarray  # (T, E, N) int64
    log_probs: np.ndarray  # (T, E, N) float32, log pi_old(a_t | history)
    values: np.ndarray  # (T, E, N) float32, V(o_t) in return units (denormalized)
    raw_values: np.ndarray  # (T, E, N) float32, the critic's output (normalized units), for value clipping
    rewards: np.ndarray  # (T, E, N) float32
    terminated: np.ndarray  # (T, E, N) bool
    truncated: np.ndarray  # (T, E, N) bool
    final_values: np.ndarray  # (T, E, N) float32, V(final_obs) on steps that ended an episode
    active: np.ndarray  # (T, E, N) bool, the agent acted at step t (not finished, not padding)
    reset_masks: np.ndarray  # (T, E, N) bool, o_t is the first observation of an episode
    neighbours: np.ndarray | None  # (T, E, N, K) int32, -1 padded; None when the scenario has none
    last_values: np.ndarray  # (E, N) float32, V of the observation after the last step
    advantages: np.ndarray  # (T, E, N) float32
    returns: np.ndarray  # (T, E, N) float32, value targets in return units
    chunk_length: int
    chunk_states: list[State]  # num_chunks_per_env states, leaves (E, ...), detached
    # what each agent offered the others at each step (memory.StepMessages: "memory", "encoding",
    # "features", (T, E, N, X) float32 each), kept for an update over groups of agents; else None
    messages: dict[str, np.ndarray] | None = None
    # (K, E, N, 2) int32 (row, col) of every agent at each chunk start, kept with the messages: what
    # spatial agent groups are cut from (marl.minibatch); else None
    chunk_positions: np.ndarray | None = None

    @classmethod
    def allocate(
        cls,
        steps: int,
        num_envs: int,
        num_agents: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        chunk_length: int,
        num_neighbours: int = 0,
        message_sizes: tuple[int, int, int] | None = None,
    ) -> RolloutBuffer:
        """Storage filled with sentinels (NaN, -1) so that a slot never written shows up at once.
        `message_sizes` (the policy's `message_sizes`) also keeps every step's messages and the agents'
        positions at every chunk start."""
        shape = (steps, num_envs, num_agents)

        def floats() -> np.ndarray:
            return np.full(shape, np.nan, dtype=np.float32)

        def flags() -> np.ndarray:
            return np.zeros(shape, dtype=bool)

        neighbours = np.full((*shape, num_neighbours), -1, dtype=np.int32) if num_neighbours > 0 else None
        return cls(
            obs=np.zeros((*shape, *obs_shape), dtype=obs_dtype),
            actions=np.full(shape, -1, dtype=np.int64),
            log_probs=floats(),
            values=floats(),
            raw_values=floats(),
            rewards=floats(),
            terminated=flags(),
            truncated=flags(),
            final_values=floats(),
            active=flags(),
            reset_masks=flags(),
            neighbours=neighbours,
            last_values=np.full(shape[1:], np.nan, dtype=np.float32),
            advantages=floats(),
            returns=floats(),
            chunk_length=chunk_length,
            chunk_states=[None] * (steps // chunk_length),
            messages=None
            if message_sizes is None
            else {
                name: np.full((*shape, size), np.nan, dtype=np.float32)
                for name, size in zip(MESSAGE_NAMES, message_sizes, strict=True)
            },
            chunk_positions=None
            if message_sizes is None
            else np.full((steps // chunk_length, num_envs, num_agents, 2), -1, dtype=np.int32),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, E, N)."""
        return self.actions.shape


def chunk_view(array: np.ndarray, chunk_length: int) -> np.ndarray:
    """(T, E, ...) -> (K, L, E, ...) with T = K * L, a view (no copy)."""
    steps = array.shape[0]
    return array.reshape(steps // chunk_length, chunk_length, *array.shape[1:])  # (K, L, E, ...)
