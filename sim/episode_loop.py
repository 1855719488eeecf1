"""One episode in every environment of a batched env: the batch of environments still playing, the reset
mask, and the loop that steps them until every episode has ended.

Whoever acts (a torch policy in `marl.rollout.PolicyLoop`, exported drone steps in `deploy.rollout`) keeps
its own memory; this module keeps what every actor shares: which environments are still in the batch, which
agents start an episode at their next observation, and when an episode's metrics arrive. Evaluation
(`marl.evaluate.run_episodes`) and deploy's closed loop play through `play_one_episode_each`; training's
collection, which never drops an environment, keeps its reset mask in the same `EpisodeBatch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# (E, N) int64 actions -> the env's (obs, rewards, terminated, truncated, info)
StepFunction = Callable[[np.ndarray], tuple[Any, Any, Any, Any, dict[str, Any]]]


class EpisodeBatch:
    """The environments of a batched env that are still in play, and the agents whose episode starts at
    their next observation.

    `rows` (B,) int64: the env's environments in the batch, all E of them until `drop` takes finished ones
    out. `reset_mask` (B, N) bool: every agent at the start; afterwards the agents of the environments whose
    episode ended at the last step. A subclass that keeps per-environment memory overrides `forget`.
    """

    def __init__(self, num_envs: int, num_agents: int) -> None:
        self.num_agents = num_agents
        self.rows = np.arange(num_envs)
        self.reset_mask = np.ones((num_envs, num_agents), dtype=bool)

    def episodes_ended(self, info: dict[str, Any]) -> np.ndarray:
        """(B,) bool: the batch's environments whose episode ended at the step that returned `info` (its
        metrics are there); their agents' next observation starts an episode (the reset mask)."""
        ended = np.array([info["metrics"][e] is not None for e in self.rows], dtype=bool)
        self.reset_mask = np.repeat(ended[:, None], self.num_agents, axis=1)
        return ended

    def drop(self, leaving: np.ndarray) -> None:
        """Take the environments `leaving` (B,) bool marks out of the batch (and `forget` their memory)."""
        staying = ~leaving
        self.rows, self.reset_mask = self.rows[staying], self.reset_mask[staying]
        self.forget(staying)

    def forget(self, staying: np.ndarray) -> None:
        """Keep only the memory of the environments `staying` (B,) bool marks; nothing to keep here."""


def play_one_episode_each(
    step: StepFunction,
    batch: EpisodeBatch,
    obs: np.ndarray,
    choose: Callable[[np.ndarray, int], np.ndarray],
    max_steps: int,
    after_step: Callable[[int, np.ndarray], None] | None = None,
) -> list[dict | None]:
    """Step a freshly reset env (auto-reset off; `obs` (E, N, ...) its first observation) until every
    episode has ended or `max_steps` steps have passed; the metrics of each environment's episode, in env
    order, None where it had not ended.

    `choose(obs[batch.rows], t)` gives the (B, N) actions of the environments still playing at step t; an
    environment whose episode ended drops out of the batch, and its agents stay put (action 0) while the
    others play on. `after_step(t, actions)` sees each step's (E, N) actions once the env has taken them
    and the batch has dropped the environments that ended.
    """
    shape = (len(batch.rows), batch.num_agents)
    results: list[dict | None] = [None] * shape[0]
    for t in range(max_steps):
        live = batch.rows
        actions = np.zeros(shape, dtype=np.int64)
        actions[live] = choose(obs[live], t)
        obs, _, _, _, info = step(actions)
        ended = batch.episodes_ended(info)  # (B,)
        for e in live[ended]:
            results[e] = dict(info["metrics"][e])
        if ended.any():
            batch.drop(ended)
        if after_step is not None:
            after_step(t, actions)
        if batch.rows.size == 0:
            break
    return results
