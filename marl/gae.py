"""Generalized advantage estimation with time-limit truncation and inactive agents.

Arrays are laid out (T, E, N): rollout step, environment, agent. At step t an agent acts on observation
o_t, with value V_t, and receives r_t; then its episode may end:
- terminated (the agent reached its goal under `finish`, or the episode was solved): the return ends,
  the next value is 0;
- truncated (the time limit, not terminated): the return continues beyond the horizon we saw, so we
  bootstrap from the value of the final observation (GridEnv's info["final_obs"]);
- neither: the next value is V_{t+1} (or the value after the rollout's last step).
Steps where the agent was inactive (finished earlier, or padding) get zero advantage and are masked out of
the losses.
"""

from __future__ import annotations

import numpy as np

from marl.buffers import RolloutBuffer


def next_state_values(
    values: np.ndarray,  # (T, E, N) float32, V(o_t) in return units (denormalized)
    last_values: np.ndarray,  # (E, N) float32, V of the observation after the rollout's last step
    terminated: np.ndarray,  # (T, E, N) bool
    truncated: np.ndarray,  # (T, E, N) bool
    final_values: np.ndarray,  # (T, E, N) float32, V(final_obs) where an episode ended, else anything
) -> np.ndarray:
    """The value that step t bootstraps from, (T, E, N) float32."""
    following = np.concatenate([values[1:], last_values[None]], axis=0)
    bootstrap = np.where(truncated, final_values, following)
    return np.where(terminated, np.float32(0.0), bootstrap).astype(np.float32, copy=False)


def compute_gae(
    rewards: np.ndarray,  # (T, E, N) float32
    values: np.ndarray,  # (T, E, N) float32, denormalized
    next_values: np.ndarray,  # (T, E, N) float32, from next_state_values
    episode_ended: np.ndarray,  # (T, E, N) bool, terminated | truncated: the advantage chain stops here
    active: np.ndarray,  # (T, E, N) bool, the agent acted at step t
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and value targets (returns), both (T, E, N) float32; zero advantage on inactive steps."""
    deltas = rewards + np.float32(gamma) * next_values - values
    carry_on = np.float32(gamma * gae_lambda) * ~episode_ended
    advantages = np.zeros_like(values, dtype=np.float32)
    running = np.zeros(values.shape[1:], dtype=np.float32)
    for t in range(values.shape[0] - 1, -1, -1):
        running = deltas[t] + carry_on[t] * running
        running *= active[t]
        advantages[t] = running
    return advantages, advantages + values


def compute_advantages(buffer: RolloutBuffer, gamma: float, gae_lambda: float) -> None:
    """Write buffer.advantages and buffer.returns from the collected rollout (GAE, truncation-aware)."""
    # values that overflowed (a diverging run) become NaN quietly here: the update's loss check reports them
    with np.errstate(invalid="ignore", over="ignore"):
        next_values = next_state_values(
            buffer.values, buffer.last_values, buffer.terminated, buffer.truncated, buffer.final_values
        )
        buffer.advantages[:], buffer.returns[:] = compute_gae(
            buffer.rewards,
            buffer.values,
            next_values,
            buffer.terminated | buffer.truncated,
            buffer.active,
            gamma,
            gae_lambda,
        )
