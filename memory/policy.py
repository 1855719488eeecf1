"""`SwarmPolicy`: encoder -> core -> heads, batched over envs and agents, with the shared-memory plumbing.

Shapes: E envs, N agents, observation (C, F, F), D = config.width, A actions, M memory size (D or 0),
h history length, K neighbours per agent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from memory.config import PolicyConfig, resolve_config
from memory.cores import make_core
from memory.layers import HIDDEN_KEY_SCORE, ResnetEncoder
from memory.pool import Outside, Pool, agent_pool, global_pool, local_pool
from memory.state import PolicyState

ArrayLike = Tensor | np.ndarray
ENCODER_PIECE = 2048
"""Observations per encoder call in `step` and `unroll` (see `SwarmPolicy._encode`)."""


@dataclass(frozen=True)
class StepMessages:
    """What a step's agents offer the others, (E, N, ...) each: memory (M) before the step, wiped at a
    reset (srmt's message and the critic's memory summary); encoding (D): the encoder output
    (neighbour_attention's message; zero-sized for the other policies); features (D): the core output
    (the critic's features summary). `SwarmPolicy.message_sizes` gives the three sizes."""

    memory: Tensor
    encoding: Tensor
    features: Tensor


class SwarmPolicy(nn.Module):
    """A shared swarm policy: one set of weights acts for every agent.

    Actor: logits over A actions from the agent's own features (plus, for srmt and neighbour_attention,
    what it reads from the messages of the agents in its scope). Critic (MAPPO, centralized): the value
    reads the agent's features, the mean features of the agents in its scope and, for memory policies, the
    mean memory of the agents in its scope. Only the actor is needed for decentralized execution.
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.encoder = ResnetEncoder(config.obs_shape, config.filters, config.res_blocks, width)
        self.core = make_core(config)
        self.policy_head = nn.Linear(width, config.num_actions)
        value_inputs = 2 * width + self.memory_size
        self.value_head = nn.Sequential(nn.Linear(value_inputs, width), nn.ReLU(), nn.Linear(width, 1))
        self.apply(_init_weights)
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)  # near-uniform first policy (CleanRL)

    @property
    def memory_size(self) -> int:
        """M: the memory vector size (0 for policies without memory)."""
        return self.config.width if self.config.has_memory else 0

    @property
    def message_sizes(self) -> tuple[int, int, int]:
        """The last sizes of `StepMessages`' memory, encoding and features."""
        encoding = self.config.width if self.config.message_source == "encoding" else 0
        return self.memory_size, encoding, self.config.width

    @property
    def device(self) -> torch.device:
        return self.policy_head.weight.device

    def initial_state(self, num_envs: int, num_agents: int) -> PolicyState:
        """Zero state (E, N, ...) for the first step of an episode, whose reset mask must be all True."""
        return PolicyState.zeros(
            (num_envs, num_agents),
            self.memory_size,
            self.config.history_length,
            self.config.width,
            self.device,
        )

    def initial_agent_state(self, batch: int) -> PolicyState:
        """Zero state (B, ...) of `batch` independent agents for `agent_step`."""
        return PolicyState.zeros(
            (batch,), self.memory_size, self.config.history_length, self.config.width, self.device
        )

    def encode(self, obs: ArrayLike) -> Tensor:
        """Encoder output (B, D) of observations (B, C, F, F): neighbour_attention's broadcast message."""
        return self.encoder(self._observations(obs, leading_dims=1))

    def step(
        self,
        obs: ArrayLike,
        state: PolicyState,
        reset_mask: ArrayLike,
        neighbours: ArrayLike | None = None,
        active: ArrayLike | None = None,
        action_mask: ArrayLike | None = None,
    ) -> tuple[Tensor, Tensor, PolicyState]:
        """One step of all agents of E envs.

        obs (E, N, C, F, F) float32 or uint8; reset_mask (E, N) bool: the agent starts an episode (or
        restarts) at this observation: its memory and history are discarded and regenerated from it;
        it must be set on every agent's first step (from `initial_state`); neighbours (E, N, K) int, -1
        padded (needed for local scope); active (E, N) bool, default all: inactive agents leave the message
        pool and keep their state (wiped if reset); action_mask (E, N, A) bool, True = allowed.
        Returns logits (E, N, A), value (E, N), new state.
        """
        logits, value, new_state, _ = self.step_with_messages(
            obs, state, reset_mask, neighbours, active, action_mask
        )
        return logits, value, new_state

    def step_with_messages(
        self,
        obs: ArrayLike,
        state: PolicyState,
        reset_mask: ArrayLike,
        neighbours: ArrayLike | None = None,
        active: ArrayLike | None = None,
        action_mask: ArrayLike | None = None,
    ) -> tuple[Tensor, Tensor, PolicyState, StepMessages]:
        """`step`, and what this step's agents offer the others (the rollout stores it for a
        group-minibatched update, see `Outside`)."""
        obs = self._observations(obs, leading_dims=2)
        E, N = obs.shape[:2]
        encoding = self._encode(obs.flatten(0, 1))  # (E*N, C, F, F) -> (E*N, D)
        return self._step_encoded(encoding, state, reset_mask, neighbours, active, action_mask, E, N)

    def _step_encoded(
        self,
        encoding: Tensor,
        state: PolicyState,
        reset_mask: ArrayLike,
        neighbours: ArrayLike | None,
        active: ArrayLike | None,
        action_mask: ArrayLike | None,
        E: int,
        N: int,
        outside: Outside | None = None,
    ) -> tuple[Tensor, Tensor, PolicyState, StepMessages]:
        """`step` after the encoder: encoding (E*N, D) of this step's observations. With `outside`, the
        N agents are a group of each env's N_all (local scope only): what they read of the other agents
        comes from `outside`."""
        reset = self._mask("reset_mask", reset_mask, (E, N), default=False)
        active = self._mask("active", active, (E, N), default=True)
        scope = self._scope(neighbours, E, N, outside)
        self._check_state(state, (E, N))
        memory = state.memory.masked_fill(reset.unsqueeze(-1), 0.0)  # (E, N, M)
        history = state.history.masked_fill(reset.view(E, N, 1, 1), 0.0)  # (E, N, h, D)
        # who may be read by others (E, N_all): acting, and for memory also not reset (N_all = N without
        # `outside`; with it the flags of the whole env, the group's own among them)
        sending = active if outside is None else outside.active
        remembered = active & ~reset if outside is None else outside.active & ~outside.reset
        encoded = encoding.view(E, N, -1)  # (E, N, D)
        pool = None
        if self.config.message_source == "memory":
            pool = scope(_widen(outside, memory, "memory"), remembered)
        elif self.config.message_source == "encoding":
            pool = scope(_widen(outside, encoded, "encoding"), sending)  # (E, N_all, D)
        features, new_memory, new_history = self.core(
            encoding, memory.flatten(0, 1), history.flatten(0, 1), reset.flatten(), pool
        )
        logits = self._logits(features, action_mask, (E * N, self.config.num_actions))
        sent_encoding = encoded if self.config.message_source == "encoding" else encoded[..., :0]
        messages = StepMessages(memory, sent_encoding, features.view(E, N, -1))
        summaries = [features, scope(_widen(outside, messages.features, "features"), sending).mean()]
        if self.config.has_memory:
            summaries.append(scope(_widen(outside, memory, "memory"), remembered).mean())  # (E*N, M)
        value = self.value_head(torch.cat(summaries, dim=1))  # (E*N, 1)
        # inactive agents keep their state, wiped if they were reset
        keep = active.view(E, N, 1)
        new_state = PolicyState(
            torch.where(keep, new_memory.view(E, N, -1), memory),  # (E, N, M)
            torch.where(keep.unsqueeze(-1), new_history.view(history.shape), history),
        )  # (E, N, h, D)
        return logits.view(E, N, -1), value.view(E, N), new_state, messages

    def unroll(
        self,
        obs_seq: ArrayLike,
        state0: PolicyState,
        reset_masks: ArrayLike,
        neighbours_seq: ArrayLike | None = None,
        active_seq: ArrayLike | None = None,
        action_mask_seq: ArrayLike | None = None,
        outside_seq: Sequence[Outside] | None = None,
    ) -> tuple[Tensor, Tensor, PolicyState]:
        """T steps (T, E, N, ...) from state0, differentiable through memory and history (truncated BPTT).

        Equal to T calls of `step`. Returns logits (T, E, N, A), values (T, E, N), the final state.
        `outside_seq`: T `Outside`s when the N agents are a group of each env's agents (local scope).
        The encoder does not depend on the state, so it runs once over all T steps' observations; only the
        core steps one at a time.
        """
        obs_seq = self._observations(obs_seq, leading_dims=3)
        T, E, N = obs_seq.shape[:3]
        encodings = self._encode(obs_seq.flatten(0, 2)).view(T, E * N, -1)  # (T*E*N, ...) -> (T, E*N, D)
        state = state0
        logits, values = [], []
        for t in range(T):
            step_logits, step_value, state, _ = self._step_encoded(
                encodings[t],
                state,
                reset_masks[t],
                _at(neighbours_seq, t),
                _at(active_seq, t),
                _at(action_mask_seq, t),
                E,
                N,
                _at(outside_seq, t),
            )
            logits.append(step_logits)
            values.append(step_value)
        return torch.stack(logits), torch.stack(values), state

    def agent_step(
        self,
        obs: ArrayLike,
        own_state: PolicyState,
        neighbour_memories: ArrayLike | None = None,
        neighbour_mask: ArrayLike | None = None,
        reset: ArrayLike | None = None,
        action_mask: ArrayLike | None = None,
    ) -> tuple[Tensor, PolicyState]:
        """One decentralized step of B independent agents (a drone's view), the actor only.

        obs (B, C, F, F); own_state with memory (B, M) and history (B, h, D); neighbour_memories (B, K, D):
        the messages received from up to K neighbours (srmt: their memory before this step; for
        neighbour_attention: their `encode` of this step's observation; other policies ignore them);
        neighbour_mask (B, K) bool, True = received and valid (a neighbour that resets this step sends
        nothing valid); reset (B,) bool, default False. Same math as `step` with local scope.
        Returns logits (B, A) and the new own state.
        """
        obs = self._observations(obs, leading_dims=1)
        B = obs.shape[0]
        reset = self._mask("reset", reset, (B,), default=False)
        self._check_state(own_state, (B,))
        encoding = self.encoder(obs)  # (B, D)
        memory = own_state.memory.masked_fill(reset.unsqueeze(-1), 0.0)  # (B, M)
        history = own_state.history.masked_fill(reset.view(B, 1, 1), 0.0)  # (B, h, D)
        pool = None
        if self.config.message_source is not None:
            if neighbour_memories is None:  # nothing received
                neighbour_memories = torch.zeros(B, 0, self.config.width)
            received = self._tensor(neighbour_memories, torch.float32)
            _check_shape("neighbour_memories", received, (B, received.shape[1], self.config.width))
            received_mask = self._mask("neighbour_mask", neighbour_mask, received.shape[:2], default=True)
            if self.config.message_source == "memory":
                pool = agent_pool(memory, ~reset, received, received_mask)
            else:
                pool = agent_pool(encoding, torch.ones_like(reset), received, received_mask)
        features, new_memory, new_history = self.core(encoding, memory, history, reset, pool)
        logits = self._logits(features, action_mask, (B, self.config.num_actions))
        return logits, PolicyState(new_memory, new_history)

    def _encode(self, obs: Tensor) -> Tensor:
        """The encoder over observations (B, C, F, F) -> (B, D), in pieces of ENCODER_PIECE: the
        convolutions of a piece stay in cache (forward and backward), 2-2.5x faster per observation on
        CPU than one call over 10,000 windows (docs/results.md, swarm scale)."""
        if len(obs) <= ENCODER_PIECE:
            return self.encoder(obs)
        return torch.cat([self.encoder(piece) for piece in obs.split(ENCODER_PIECE)])

    def _logits(self, features: Tensor, action_mask: ArrayLike | None, shape: tuple[int, int]) -> Tensor:
        logits = self.policy_head(features)  # (B, A)
        if action_mask is None:
            return logits
        allowed = self._mask("action_mask", action_mask, shape, default=True, flatten=True)
        return logits.masked_fill(~allowed, HIDDEN_KEY_SCORE)

    def _scope(
        self, neighbours: ArrayLike | None, E: int, N: int, outside: Outside | None = None
    ) -> Callable[[Tensor, Tensor], Pool]:
        """The pool builder of the configured scope: (messages (E, N_all, M), visible (E, N_all)) -> Pool,
        N_all = N unless `outside` makes the N agents a group of a larger env."""
        if self.config.scope == "global":
            if outside is not None:
                raise ValueError("a group of an env's agents (outside) needs scope 'local'")
            return global_pool
        if neighbours is None:
            raise ValueError("scope 'local' needs neighbours: an (E, N, K) int array, -1 padded")
        index = self._tensor(neighbours, torch.long)
        if index.dim() != 3 or tuple(index.shape[:2]) != (E, N):
            raise ValueError(f"neighbours: expected shape ({E}, {N}, K), found {tuple(index.shape)}")
        everyone = N if outside is None else outside.active.shape[1]
        if index.numel() and (int(index.max()) >= everyone or int(index.min()) < -1):
            raise ValueError(
                f"neighbours: expected agent indices in [0, {everyone}) or -1, found "
                f"[{int(index.min())}, {int(index.max())}]"
            )
        members = None if outside is None else outside.members
        return functools.partial(local_pool, neighbours=index, members=members)

    def _check_state(self, state: PolicyState, batch: tuple[int, ...]) -> None:
        _check_shape("state.memory", state.memory, (*batch, self.memory_size))
        _check_shape("state.history", state.history, (*batch, self.config.history_length, self.config.width))

    def _observations(self, obs: ArrayLike, leading_dims: int) -> Tensor:
        """obs as float32 on the policy's device, checked to be (*leading, C, F, F)."""
        obs = self._tensor(obs, torch.float32)
        expected = (*obs.shape[:leading_dims], *self.config.obs_shape)
        if obs.dim() != leading_dims + 3 or tuple(obs.shape) != expected:
            dims = {1: "(B", 2: "(E, N", 3: "(T, E, N"}[leading_dims]
            raise ValueError(
                f"obs: expected shape {dims}, {', '.join(map(str, self.config.obs_shape))}), "
                f"found {tuple(obs.shape)}"
            )
        return obs

    def _tensor(self, value: ArrayLike, dtype: torch.dtype) -> Tensor:
        return torch.as_tensor(value, device=self.device).to(dtype)

    def _mask(
        self, name: str, value: ArrayLike | None, shape: tuple[int, ...], default: bool, flatten: bool = False
    ) -> Tensor:
        if value is None:
            fill = torch.ones if default else torch.zeros  # torch.full with a bool breaks ONNX tracing
            return fill(shape, dtype=torch.bool, device=self.device)
        mask = self._tensor(value, torch.bool)
        if flatten:
            mask = mask.reshape(-1, mask.shape[-1]) if mask.dim() > 1 else mask
        _check_shape(name, mask, tuple(shape))
        return mask


def _check_shape(name: str, tensor: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, found {tuple(tensor.shape)}")


def _at(sequence: Any, t: int) -> Any:
    return None if sequence is None else sequence[t]


def _widen(outside: Outside | None, live: Tensor, name: str) -> Tensor:
    """live (E, N, X) of the step's agents, widened to the env's N_all agents with `outside`'s `name`."""
    return live if outside is None else outside.widen(live, getattr(outside, name))


def _init_weights(module: nn.Module) -> None:
    """Orthogonal weights and zero biases for Linear and Conv2d (Sample Factory's init, as SRMT used);
    learned positions N(0, 0.02) as GPT-2; LayerNorm and GRU keep torch's defaults."""
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.orthogonal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif hasattr(module, "position"):
        nn.init.normal_(module.position, std=0.02)


def make_policy(
    name: str,
    obs_shape: tuple[int, int, int],
    num_actions: int = 5,
    preset: str = "bottleneck",
    scope: str = "global",
    seed: int | None = None,
    **overrides: Any,
) -> SwarmPolicy:
    """A freshly initialized policy `name` (one of POLICY_NAMES) with a preset's sizes and `overrides`
    (any PolicyConfig size field: width, heads, layers, history, filters, res_blocks, mlp_ratio).

    With `seed`, the initial weights depend only on it (the global torch RNG is left untouched).
    Unknown names, presets or override keys raise a ValueError naming the valid ones.
    """
    return policy_from_config(resolve_config(name, obs_shape, num_actions, preset, scope, overrides), seed)


def policy_from_config(config: PolicyConfig | dict[str, Any], seed: int | None = None) -> SwarmPolicy:
    """A freshly initialized policy of a saved config (`PolicyConfig.to_dict()` output or the dataclass)."""
    if not isinstance(config, PolicyConfig):
        config = PolicyConfig.from_dict(config)
    if seed is None:
        return SwarmPolicy(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SwarmPolicy(config)
