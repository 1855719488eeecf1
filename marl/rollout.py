"""Collection: step E environments for T steps with one batched policy call per step for all agents.

The policy sees every agent of every environment at once (no per-agent Python). Actions are sampled on the
policy's device, environments step on the CPU, and each step's arrays are written into the preallocated
`RolloutBuffer` in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
import torch

from marl.buffers import RolloutBuffer, State, map_state
from marl.value_norm import ValueNorm
from sim.episode_loop import EpisodeBatch

Result = TypeVar("Result")


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
    new state). `PolicyLoop.act` and the value bootstraps of `collect` call it."""
    return policy.step(
        _on(device, obs), state, _on(device, reset_mask), _on(device, neighbours), _on(device, active)
    )


class PolicyOutput(NamedTuple):
    """What one batched policy call of a `PolicyLoop` gives, for the B environments of its batch."""

    logits: torch.Tensor  # (B, N, A)
    raw_value: torch.Tensor  # (B, N), normalized
    messages: Any  # what each agent offered the others (`step_with_messages`); None unless asked for


class PolicyLoop(EpisodeBatch):
    """A memory policy acting for every agent of a batched env, step after step: the one mechanism that
    carries the memory state (beside the reset mask and the batch's rows of `sim.episode_loop.EpisodeBatch`),
    hands a local-scope policy the env's neighbour lists and keeps torch's thread count across simulator
    calls. Training (`collect`), evaluation (`marl.evaluate.run_episodes`, and with it
    DAgger's labelled rollouts and the benchmark tables) and `marl.evaluate.PolicyActor` (`gridswarm run
    --policy`, policy-guided PIBT) all act through one.

    Per step a caller calls `act` with the batch's observation, steps the env through `sim`, and marks the
    environments whose episode ended (`episodes_ended`). `rows` are the env's environments in the batch,
    all of them unless `drop` took finished ones out (evaluation plays one episode per environment).
    `carry`: continue where a `RolloutCarry` stood (its memory state and reset mask).
    """

    def __init__(
        self, policy: Policy, env: Any, carry: RolloutCarry | None = None, device: torch.device | None = None
    ) -> None:
        super().__init__(env.num_envs, env.num_agents)
        self.policy, self.env = policy, env
        self.device = policy_device(policy) if device is None else device
        self.local = policy.config.scope == "local"
        self.torch_threads = torch.get_num_threads()  # before the simulator's next (possibly threaded) call
        if carry is None:
            self.state = map_state(
                lambda leaf: leaf.to(self.device), policy.initial_state(env.num_envs, env.num_agents)
            )
        else:
            self.state, self.reset_mask = carry.state, carry.reset_mask

    def keep_threads(self) -> None:
        """Set torch's thread count back to the loop's. numba's OpenMP threading layer sets the process-wide
        OpenMP thread count on every parallel simulator step and torch reads that count: without this,
        torch silently ran on numba's thread count after the first step (slower beside the simulator, and
        with float results that depended on when the simulator first ran in the process)."""
        if torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)

    def sim(self, call: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        """`call(*args, **kwargs)`, a simulator call (the env's or its recorder's `reset` or `step`), then
        torch's thread count kept (`keep_threads`)."""
        result = call(*args, **kwargs)
        self.keep_threads()
        return result

    def neighbours(self, lists: np.ndarray | None = None) -> np.ndarray | None:
        """(B, N, K) the batch's neighbour lists for a local-scope policy, from `lists` (E, N, K) where
        the caller read the env's already; None for a global one (its pool is every agent of the
        environment, whatever the lists say)."""
        if not self.local:
            return None
        lists = self.env.neighbours if lists is None else lists
        return lists if self.rows.size == self.env.num_envs else lists[self.rows]

    def act(
        self,
        obs: np.ndarray,
        active: np.ndarray | None = None,
        neighbours: np.ndarray | None = None,
        with_messages: bool = False,
    ) -> PolicyOutput:
        """One batched policy call on the batch's observation obs (B, N, C, F, F), under the reset mask,
        for the agents `active` (B, N) bool (default: the env's), with the env's neighbour lists (or
        `neighbours` (E, N, K), the caller's read of them); the memory state advances. `with_messages`:
        also what each agent offered the others."""
        if active is None:
            active = np.array(self.env.active[self.rows], dtype=bool)
        lists = self.neighbours(neighbours)
        if not with_messages:
            logits, raw_value, self.state = policy_step(
                self.policy, self.device, obs, self.state, self.reset_mask, lists, active
            )
            return PolicyOutput(logits, raw_value, None)
        obs_t, reset_t, neighbours_t, active_t = (
            _on(self.device, value) for value in (obs, self.reset_mask, lists, active)
        )
        logits, raw_value, self.state, messages = self.policy.step_with_messages(
            obs_t, self.state, reset_t, neighbours_t, active_t
        )
        return PolicyOutput(logits, raw_value, messages)

    def forget(self, staying: np.ndarray) -> None:
        """Keep the memory state of the environments `staying` (B,) bool marks."""
        keep = torch.from_numpy(staying).to(self.device)
        self.state = map_state(lambda leaf: leaf[keep], self.state)


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
    loop = PolicyLoop(policy, env, carry)
    obs, active = carry.obs, carry.active
    for t in range(buffer.shape[0]):
        if t % buffer.chunk_length == 0:
            buffer.chunk_states[t // buffer.chunk_length] = map_state(torch.Tensor.detach, loop.state)
            if buffer.chunk_positions is not None:
                buffer.chunk_positions[t // buffer.chunk_length] = env.positions
        buffer.obs[t] = obs
        buffer.reset_masks[t] = loop.reset_mask
        buffer.active[t] = active
        neighbours = None if buffer.neighbours is None else env.neighbours
        if neighbours is not None:
            buffer.neighbours[t] = neighbours
        # an update over agent groups reads what each agent offered the others
        out = loop.act(buffer.obs[t], buffer.active[t], neighbours, with_messages=buffer.messages is not None)
        if buffer.messages is not None:
            for name, stored in buffer.messages.items():
                stored[t] = getattr(out.messages, name).cpu().numpy()
        actions, log_probs = sample_actions(out.logits, generator)
        actions_np = actions.cpu().numpy()
        obs, rewards, terminated, truncated, info = loop.sim(env.step, actions_np)
        buffer.actions[t] = actions_np
        buffer.log_probs[t] = log_probs.cpu().numpy()
        buffer.raw_values[t] = out.raw_value.cpu().numpy()
        buffer.values[t] = value_norm.denormalize(out.raw_value).cpu().numpy()
        buffer.rewards[t] = rewards
        buffer.terminated[t] = terminated
        buffer.truncated[t] = truncated
        ended = loop.episodes_ended(info)  # (E,)
        buffer.final_values[t] = 0.0
        if ended.any():
            finished.extend(m for m in info["metrics"] if m is not None)
            final_raw = _final_values(policy, loop.state, info, neighbours, ended, loop.device)
            buffer.final_values[t][ended] = value_norm.denormalize(final_raw).cpu().numpy()
        active = np.array(env.active, dtype=bool)
    carry = RolloutCarry(obs=obs, state=loop.state, reset_mask=loop.reset_mask, active=active)
    _, last_raw, _ = policy_step(
        policy, loop.device, obs, loop.state, loop.reset_mask, loop.neighbours(), active
    )
    buffer.last_values[:] = value_norm.denormalize(last_raw).cpu().numpy()
    return carry, finished
