"""A tiny batched environment with GridEnv's step contract, for testing the trainer without the simulator.

Each agent walks its own corridor of `length` cells from column 0 to the goal at the far end: action 4
(right) moves one cell, 3 (left) one back, anything else stays. Reaching the goal pays +1, terminates the
agent (on_target finish) and makes it inactive; the episode ends when every agent is done (all terminated)
or at `max_steps` (all truncated). The observation (3, 3, 3) shows walls, the agent, and the goal direction.
"""

from __future__ import annotations

import numpy as np

from sim.actions import NUM_ACTIONS


class CorridorEnv:
    num_actions = NUM_ACTIONS
    obs_shape = (3, 3, 3)

    def __init__(self, num_envs: int, num_agents: int = 1, length: int = 4, max_steps: int = 12) -> None:
        self.num_envs, self.num_agents, self.length, self.max_steps = num_envs, num_agents, length, max_steps
        self.columns = np.zeros((num_envs, num_agents), dtype=np.int64)
        self.active = np.ones((num_envs, num_agents), dtype=bool)
        self.elapsed = np.zeros(num_envs, dtype=np.int64)
        self.neighbours = np.tile(np.arange(num_agents, dtype=np.int32), (num_envs, num_agents, 1))
        self.seed = np.zeros((), dtype=np.int64)
        self.episodes = np.zeros(num_envs, dtype=np.int64)  # started so far, per env

    @property
    def episode_seeds(self) -> np.ndarray:
        """(E,) int64: an identity of each environment's current episode (what evaluation keys on)."""
        return (int(self.seed) * self.num_envs + np.arange(self.num_envs)) * 1_000_003 + self.episodes

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.seed[...] = 0 if seed is None else seed
        self.episodes[:] = 0
        self._restart(np.ones(self.num_envs, dtype=bool))
        return self._observe()

    def snapshot(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).copy() for name in self._STATE}

    def restore(self, snapshot: dict[str, np.ndarray]) -> np.ndarray:
        for name in self._STATE:
            setattr(self, name, np.array(snapshot[name], copy=True))
        return self._observe()

    _STATE = ("columns", "active", "elapsed", "seed", "episodes")

    def _restart(self, envs: np.ndarray) -> None:
        # random starts in the first half of the corridor, from (seed, env, episode): episodes differ
        for e in np.flatnonzero(envs):
            rng = np.random.default_rng([int(self.seed), int(e), int(self.episodes[e])])
            self.columns[e] = rng.integers(0, self.length // 2, size=self.num_agents)
            self.episodes[e] += 1
        self.active[envs] = True
        self.elapsed[envs] = 0

    def _observe(self) -> np.ndarray:
        obs = np.zeros((self.num_envs, self.num_agents, *self.obs_shape), dtype=np.float32)
        obs[:, :, 0, 1, 0] = self.columns == 0  # wall on the left
        obs[:, :, 1, 1, 1] = self.active
        obs[:, :, 2, 1, 2] = 1.0  # the goal lies to the right
        obs[:, :, 2, 0, 0] = self.columns / self.length  # how far along
        return obs

    def step(self, actions: np.ndarray):
        moves = np.where(actions == 4, 1, np.where(actions == 3, -1, 0)) * self.active
        self.columns = np.clip(self.columns + moves, 0, self.length - 1)
        arrived = self.active & (self.columns == self.length - 1)
        rewards = arrived.astype(np.float32)
        self.active &= ~arrived
        self.elapsed += 1
        terminated = ~self.active
        truncated = np.repeat((self.elapsed >= self.max_steps)[:, None], self.num_agents, axis=1)
        ended = terminated.all(axis=1) | truncated[:, 0]
        info = {"active": self.active.copy(), "metrics": [None] * self.num_envs}
        if ended.any():
            info["final_obs"] = self._observe()
            for e in np.flatnonzero(ended):
                info["metrics"][e] = {
                    "CSR": float(terminated[e].all()),
                    "ISR": float(terminated[e].mean()),
                    "ep_length": float(self.elapsed[e]),
                }
            self._restart(ended)
        return self._observe(), rewards, terminated, truncated & ~terminated, info
