"""Decentralized rollouts in sim.GridEnv: every agent runs its own copy of the exported step.

Each agent sees only its observation, its own state and the messages its K nearest neighbours within radio
range (the simulator's neighbour lists) broadcast at the end of the previous step; a message can be dropped
with a given probability and goes through the radio's int8 encoding. Actions are drawn from each agent's
policy distribution (as training and `marl.evaluate` play) with one seeded uniform number per agent and
step, so runners whose logits agree to rounding pick the same actions; `greedy` takes the argmax instead.
The same loop drives the torch policy and the compiled C policy, so their closed-loop behaviour can be
compared on the same seeds, and it records the observations and positions the exporter verifies on and
plans waypoints from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deploy.agent import AgentStep
from deploy.errors import ExportError
from deploy.radio import quantize_each
from scenarios.schema import Scenario
from sim.env import GridEnv
from sim.episode_loop import EpisodeBatch, play_one_episode_each

BatchRunner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class RolloutResult:
    """What one rollout of E environments (one episode each) produced."""

    observations: np.ndarray  # (S, C, F, F) float32: every active agent's observation at every step
    positions: np.ndarray  # (T+1, N, 2) int64: environment 0's agents, before each step and at the end
    actions: np.ndarray  # (T, E, N) int64
    metrics: list[dict]  # POGEMA's metrics of each environment's episode

    @property
    def success_rate(self) -> float:
        """Fraction of episodes in which every agent reached its goal (CSR = 1)."""
        return float(np.mean([m["CSR"] >= 1.0 for m in self.metrics]))


# Environments of the rollout whose observations the exporter verifies on (each plays one episode).
ROLLOUT_ENVS = 8


# A Chebyshev radius beyond any map: every agent of the environment is in radio range.
WHOLE_MAP = float(np.iinfo(np.int32).max)


def with_neighbours(scenario: Scenario, count: int, radius: float | None = None) -> Scenario:
    """The scenario with neighbour lists of `count` agents within `radius` cells switched on (what a drone
    hears by radio); radius None keeps the scenario's `neighbour_radius`."""
    observation = dataclasses.replace(scenario.observation, neighbours=count)
    if radius is not None:
        observation = dataclasses.replace(observation, neighbour_radius=radius)
    return dataclasses.replace(scenario, observation=observation)


def radio_range(step: AgentStep, scenario: Scenario) -> float:
    """The radius in which a drone hears others, as its policy was trained: a global-scope policy pooled every
    agent of the environment, a local-scope one the scenario's neighbour lists."""
    return WHOLE_MAP if step.policy.config.scope == "global" else scenario.observation.neighbour_radius


def sample_actions(logits: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Actions (B,) int64 drawn from softmax(logits (B, A)) at the CDF's `uniform` (B,) in [0, 1) quantile."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    cdf = np.cumsum(np.exp(shifted), axis=1)  # (B, A), unnormalized
    chosen = (cdf < uniform[:, None] * cdf[:, -1:]).sum(axis=1)
    return np.minimum(chosen, logits.shape[1] - 1).astype(np.int64)


def _messages(
    step: AgentStep,
    neighbours: np.ndarray,
    sent: np.ndarray,
    sending: np.ndarray,
    drop_rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Received messages (B*N, K, D) and their mask (B*N, K): what the listed `neighbours` (B, N, >= K)
    among the agents `sending` (B*N,) bool broadcast, `sent` (B*N, D)."""
    neighbours = neighbours[:, :, : step.max_neighbours]  # (B, N, K) int32, -1 padded
    B, N = neighbours.shape[:2]
    index = np.clip(neighbours, 0, None) + (np.arange(B) * N)[:, None, None]  # (B, N, K) flat agent index
    received = (neighbours >= 0) & sending[index] & (rng.random(neighbours.shape) >= drop_rate)
    scales, q = quantize_each(sent)  # what the radio delivers: int8 values and a float scale per message
    decoded = q.astype(np.float32) * scales[:, None]  # (B*N, D)
    return decoded[index].reshape(B * N, step.max_neighbours, -1), received.reshape(B * N, -1)


class _Drones(EpisodeBatch):
    """Every drone of the environments still playing, each with its own exported step's state: `state[i]`
    (B*N, *shape) float32 per state input of the step."""

    def __init__(self, step: AgentStep, num_envs: int, num_agents: int) -> None:
        super().__init__(num_envs, num_agents)
        self.state = [np.zeros((num_envs * num_agents, *s), np.float32) for s in _state_shapes(step)]

    def forget(self, staying: np.ndarray) -> None:
        keep = np.repeat(staying, self.num_agents)  # (B*N,)
        self.state = [value[keep] for value in self.state]


def decentralized_rollout(
    step: AgentStep,
    run: BatchRunner,
    scenario: Scenario,
    num_envs: int,
    seed: int,
    drop_rate: float = 0.0,
    max_steps: int | None = None,
    encode: BatchRunner | None = None,
    greedy: bool = False,
    radius: float | None = None,
) -> RolloutResult:
    """One episode in each of `num_envs` environments, each agent acting on its own step's logits.

    Actions are sampled (one uniform number per agent of every environment and step from a stream of
    `seed`, drawn for inactive agents and finished environments too so that every runner consumes the same
    numbers) or, with `greedy`, the argmax. Drones hear the K nearest agents within `radius` cells (default
    `radio_range`). SRMT-style drones send their memory before the step (nothing valid when inactive or
    restarting); neighbour_attention drones send `encode({"obs": ...})[0]` of this step's observation while
    active. An environment whose episode ended leaves the batch (`sim.episode_loop`).
    """
    if step.message_source == "encoding" and encode is None:
        raise ExportError("neighbour_attention rollouts need the message encoder (encode=...)")
    radius = radio_range(step, scenario) if radius is None else radius
    hearing = with_neighbours(scenario, step.max_neighbours, radius)
    env = GridEnv(hearing, num_envs, seed, auto_reset=False)
    if tuple(env.obs_shape) != tuple(step.policy.config.obs_shape):
        raise ExportError(
            f"scenario {scenario.name!r} gives observations of shape {tuple(env.obs_shape)}, the "
            f"policy reads {tuple(step.policy.config.obs_shape)}"
        )
    obs = env.reset()
    E, N = env.num_envs, env.num_agents
    drop_rng, action_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    drones = _Drones(step, E, N)
    observations, positions, actions = [], [env.positions[0].astype(np.int64)], []

    def choose(live_obs: np.ndarray, _: int) -> np.ndarray:
        rows = drones.rows
        active = env.active[rows].reshape(-1)  # (B*N,)
        reset = drones.reset_mask.reshape(-1)
        batch = {"obs": live_obs.reshape(-1, *live_obs.shape[2:])}
        for (name, _), value in zip(step.state_names, drones.state, strict=True):
            batch[name] = value
        if step.message_source == "memory":  # an inactive or restarting sender sends nothing
            sent, sending = drones.state[0], active & ~reset
        elif step.message_source == "encoding":
            sent, sending = encode({"obs": batch["obs"]})[0], active
        if step.message_source is not None:
            batch["messages"], batch["message_mask"] = _messages(
                step, env.neighbours[rows], sent, sending, drop_rate, drop_rng
            )
        batch["reset"] = reset
        outputs = run(batch)
        uniform = action_rng.random((E, N))[rows].reshape(-1)
        chosen = np.argmax(outputs[0], axis=1) if greedy else sample_actions(outputs[0], uniform)
        for position, new_value in enumerate(outputs[1:]):
            drones.state[position][active] = new_value[active]  # inactive agents keep their state
        observations.append(batch["obs"][active])
        return np.where(active, chosen, 0).reshape(len(rows), N)

    def record(_: int, taken: np.ndarray) -> None:
        actions.append(taken)
        positions.append(env.positions[0].astype(np.int64))

    limit = max_steps or scenario.dynamics.max_episode_steps
    metrics = play_one_episode_each(env.step, drones, obs, choose, limit, record)
    finished = [m for m in metrics if m is not None]
    return RolloutResult(np.concatenate(observations), np.stack(positions), np.stack(actions), finished)


def _state_shapes(step: AgentStep) -> list[tuple[int, ...]]:
    shapes = {"memory": (step.memory_size,), "history": step.history_shape}
    return [shapes[name] for name, _ in step.state_names]


def per_sample(run: Callable[..., list[np.ndarray]], names: list[str]) -> BatchRunner:
    """A batch runner from a batch-1 function (the compiled C): one call per agent."""

    def run_batch(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        size = len(batch["obs"])
        results = [run(*[np.asarray(batch[n][i : i + 1]) for n in names]) for i in range(size)]
        return [
            np.concatenate([r[k].reshape(1, -1) for r in results]).reshape(size, *results[0][k].shape[1:])
            for k in range(len(results[0]))
        ]

    return run_batch
