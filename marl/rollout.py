"""Collection: step E environments for T steps with one batched policy call per step for all agents.

The policy sees every agent of every environment at once (no per-agent Python). Actions are sampled on the
policy's device, environments step on the CPU, and each step's arrays are written into the preallocated
`RolloutBuffer` in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from marl.buffers import RolloutBuffer, State, map_state
from marl.value_norm import ValueNorm


class Policy(Protocol):
    """What marl needs of a memory policy (memory.make_policy builds them)."""

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def initial_state(self, num_envs: int, num_agents: int) -> State: ...

    def step(
        self,
        obs: torch.Tensor,
        state: State,
        reset_mask: torch.Tensor,
        neighbours: torch.Tensor | None = None,
        active: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, State]: ...

    def unroll(
        self,
        obs_seq: torch.Tensor,
        state0: State,
        reset_masks: torch.Tensor,
        neighbours_seq: torch.Tensor | None = None,
        active_seq: torch.Tensor | None = None,
        action_mask_seq: torch.Tensor | None = None,
        outside_seq: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, State]: ...

    def step_with_messages(
        self,
        obs: torch.Tensor,
        state: State,
        reset_mask: torch.Tensor,
        neighbours: torch.Tensor | None = None,
        active: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, State, Any]: ...


@dataclass
class RolloutCarry:
    """What one rollout hands to the next: the live observation, the memory state and the masks."""

    obs: np.ndarray  # (E, N, C, F, F), the observation the agents act on next
    state: State  # the policy's memory before acting on obs
    reset_mask: np.ndarray  # (E, N) bool, obs starts an episode
    active: np.ndarray  # (E, N) bool, the agent acts on obs


def policy_device(policy: Policy) -> torch.device:
    """The device the policy's weights are on: where its inputs and memory state go."""
    return next(policy.parameters()).device


def start_rollouts(env: Any, policy: Policy, seed: int | None) -> RolloutCarry:
    """Reset every environment and start every agent's memory from scratch, on the policy's device."""
    obs = env.reset(seed=seed)
    device = policy_device(policy)
    state = map_state(lambda leaf: leaf.to(device), policy.initial_state(env.num_envs, env.num_agents))
    reset_mask = np.ones((env.num_envs, env.num_agents), dtype=bool)
    return RolloutCarry(obs=obs, state=state, reset_mask=reset_mask, active=np.array(env.active, dtype=bool))


def _state_leaves(state: Any) -> list[torch.Tensor]:
    """The tensors of a policy state in `map_state`'s order."""
    leaves: list[torch.Tensor] = []
    map_state(lambda leaf: leaves.append(leaf) or leaf, state)
    return leaves


def carry_tensors(carry: RolloutCarry) -> dict[str, Any]:
    """The carry as checkpoint tensors (CPU copies; the memory state as its list of leaves)."""
    leaves = [leaf.detach().cpu().clone() for leaf in _state_leaves(carry.state)]
    arrays = {"obs": carry.obs, "reset_mask": carry.reset_mask, "active": carry.active}
    return {"state": leaves, **{name: torch.from_numpy(array.copy()) for name, array in arrays.items()}}


def resume_rollouts(
    env: Any, policy: Policy, snapshot: dict[str, np.ndarray], saved: dict[str, Any]
) -> RolloutCarry:
    """Restore the environments from `snapshot` and the carry from `carry_tensors`: collection continues
    exactly where the checkpointed run stood. Raises ValueError when they belong to another set-up."""
    obs = env.restore(snapshot)
    leaves = list(saved["state"])
    template = policy.initial_state(env.num_envs, env.num_agents)
    if [leaf.shape for leaf in _state_leaves(template)] != [leaf.shape for leaf in leaves]:
        raise ValueError("the checkpoint's memory state does not fit this policy and batch")
    remaining, device = iter(leaves), policy_device(policy)
    state = map_state(lambda leaf: next(remaining).to(device=device, dtype=leaf.dtype), template)
    if not np.array_equal(obs, saved["obs"].numpy()):
        raise ValueError("the checkpoint's observation differs from its environments' snapshot")
    return RolloutCarry(
        obs=obs,
        state=state,
        reset_mask=saved["reset_mask"].numpy().copy(),
        active=saved["active"].numpy().copy(),
    )


def step_keeping_torch_threads(env: Any, actions: np.ndarray, torch_threads: int) -> tuple[Any, ...]:
    """`env.step(actions)`, then torch's thread count set back to `torch_threads`. numba's OpenMP threading
    layer sets the process-wide OpenMP thread count on every parallel simulator step and torch reads that
    count: without this, torch silently ran on numba's thread count after the first step (slower beside
    the simulator, and with float results that depended on when the simulator first ran in the process)."""
    result = env.step(actions)
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return result


def sample_actions(logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one action per agent from softmax(logits): (E, N, A) -> actions (E, N) int64, log-probs (E, N)."""
    log_pi = torch.log_softmax(logits, dim=-1)
    flat = log_pi.exp().reshape(-1, logits.shape[-1])  # (E*N, A)
    actions = torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1])  # (E, N)
    return actions, log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer over a uint64 array: a bijection spreading every input bit over the output."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def episode_keys(sampling_seed: int, episode_seeds: np.ndarray) -> np.ndarray:
    """(E,) uint64: the sampling key of each episode, from the sampling seed and the episode's own seed."""
    seed = _mix64(np.array([int(sampling_seed) % 2**64], dtype=np.uint64) * _GOLDEN)
    return _mix64(np.asarray(episode_seeds).astype(np.uint64) ^ seed)


def keyed_uniforms(keys: np.ndarray, step: int | np.ndarray, num_agents: int) -> np.ndarray:
    """(E, N) float64 in (0, 1): agent i's random number at `step` of the episode with key keys[e]; `step`
    is one step for all episodes or each episode's own (E,).

    A counter-based stream (a hash of key, step and agent): an episode draws the same numbers whatever
    batch it is played in and whenever the others finish, so batched evaluation equals episode-by-episode
    evaluation exactly."""
    steps = np.asarray(step, dtype=np.uint64).reshape(-1, 1)  # (1|E, 1)
    first = steps * np.uint64(num_agents) + np.uint64(1)
    counter = np.arange(num_agents, dtype=np.uint64)[None, :] + first  # (1|E, N)
    bits = _mix64(keys[:, None] + _mix64(counter * _GOLDEN))  # (E, N)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def keyed_actions(logits: torch.Tensor, uniforms: np.ndarray) -> np.ndarray:
    """Actions (E, N) int64 drawn from softmax(logits) (E, N, A) by inverse CDF of `uniforms` (E, N)."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(dim=-1).cpu().numpy()  # (E, N, A)
    actions = (uniforms[..., None] >= cdf).sum(axis=-1)  # how many bins lie wholly below u
    return np.minimum(actions, logits.shape[-1] - 1)  # u above a cdf that rounds to just under 1


def _on(device: torch.device, array: np.ndarray | None) -> torch.Tensor | None:
    return None if array is None else torch.from_numpy(array).to(device, non_blocking=True)


def policy_step(
    policy: Policy,
    device: torch.device,
    obs: np.ndarray,
    state: State,
    reset_mask: np.ndarray,
    neighbours: np.ndarray | None,
    active: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor, State]:
    """One batched policy call on the environments' arrays (obs (B, N, C, F, F), reset_mask and active
    (B, N) bool, neighbours (B, N, K) or None), moved to `device`: (logits (B, N, A), raw value (B, N),
    new state). Training, evaluation and `PolicyActor` all act through it."""
    return policy.step(
        _on(device, obs), state, _on(device, reset_mask), _on(device, neighbours), _on(device, active)
    )


def _live_neighbours(env: Any, buffer: RolloutBuffer) -> np.ndarray | None:
    return None if buffer.neighbours is None else env.neighbours


def _final_values(
    policy: Policy,
    state: State,
    info: dict[str, Any],
    neighbours: np.ndarray | None,
    ended: np.ndarray,
    device: torch.device,
) -> torch.Tensor:
    """V(final_obs), (B, N), of the B environments that `ended` (E,) bool marks, from the memory that saw
    the whole episode (truncated agents bootstrap on it). Only those environments are computed: late in
    training episodes end at almost every step, and a whole-batch call there doubled collection's cost."""
    rows = np.flatnonzero(ended)
    index = torch.from_numpy(rows).to(device)
    active = np.asarray(info["active"], dtype=bool)[rows]
    _, final_raw, _ = policy_step(
        policy,
        device,
        info["final_obs"][rows],
        map_state(lambda leaf: leaf[index], state),
        np.zeros_like(active),
        None if neighbours is None else neighbours[rows],
        active,
    )
    return final_raw


@torch.no_grad()
def collect(
    env: Any,
    policy: Policy,
    value_norm: ValueNorm,
    buffer: RolloutBuffer,
    carry: RolloutCarry,
    generator: torch.Generator,
) -> tuple[RolloutCarry, list[dict[str, float]]]:
    """Fill `buffer` with T steps; return the next rollout's carry and the finished episodes' metrics."""
    finished: list[dict[str, float]] = []
    device = policy_device(policy)
    torch_threads = torch.get_num_threads()
    for t in range(buffer.shape[0]):
        if t % buffer.chunk_length == 0:
            buffer.chunk_states[t // buffer.chunk_length] = map_state(torch.Tensor.detach, carry.state)
        buffer.obs[t] = carry.obs
        buffer.reset_masks[t] = carry.reset_mask
        buffer.active[t] = carry.active
        neighbours = _live_neighbours(env, buffer)
        if neighbours is not None:
            buffer.neighbours[t] = neighbours
        if buffer.messages is None:
            logits, raw_value, state = policy_step(
                policy,
                device,
                buffer.obs[t],
                carry.state,
                buffer.reset_masks[t],
                neighbours,
                buffer.active[t],
            )
        else:  # an update over agent groups reads what each agent offered the others
            logits, raw_value, state, messages = policy.step_with_messages(
                _on(device, buffer.obs[t]),
                carry.state,
                _on(device, buffer.reset_masks[t]),
                _on(device, neighbours),
                _on(device, buffer.active[t]),
            )
            for name, stored in buffer.messages.items():
                stored[t] = getattr(messages, name).cpu().numpy()
        actions, log_probs = sample_actions(logits, generator)
        actions_np = actions.cpu().numpy()
        obs, rewards, terminated, truncated, info = step_keeping_torch_threads(env, actions_np, torch_threads)
        buffer.actions[t] = actions_np
        buffer.log_probs[t] = log_probs.cpu().numpy()
        buffer.raw_values[t] = raw_value.cpu().numpy()
        buffer.values[t] = value_norm.denormalize(raw_value).cpu().numpy()
        buffer.rewards[t] = rewards
        buffer.terminated[t] = terminated
        buffer.truncated[t] = truncated
        ended = np.array([m is not None for m in info["metrics"]], dtype=bool)  # (E,)
        buffer.final_values[t] = 0.0
        if ended.any():
            finished.extend(m for m in info["metrics"] if m is not None)
            final_raw = _final_values(policy, state, info, neighbours, ended, device)
            buffer.final_values[t][ended] = value_norm.denormalize(final_raw).cpu().numpy()
        carry = RolloutCarry(
            obs=obs,
            state=state,
            reset_mask=np.repeat(ended[:, None], env.num_agents, axis=1),
            active=np.array(env.active, dtype=bool),
        )
    _, last_raw, _ = policy_step(
        policy, device, carry.obs, carry.state, carry.reset_mask, _live_neighbours(env, buffer), carry.active
    )
    buffer.last_values[:] = value_norm.denormalize(last_raw).cpu().numpy()
    return carry, finished
