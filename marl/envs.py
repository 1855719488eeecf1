"""Batches of environments for training and evaluation, all with `sim.GridEnv`'s batched interface.

`make_training_envs(scenario, num_envs, seed)` returns one `sim.GridEnv` with uint8 observations (the same
0/1 values as POGEMA's float32, a quarter of the copying; the policy converts them on its device). For a
curriculum its environments are pinned to the variants in blocks (`scenarios.variants.variant_blocks`, the
rule evaluation uses too), so every variant is trained on in every rollout.

`PogemaEnv` presents one real `pogema_v0` environment through the same interface, and `StackedEnvs` steps
several such environments (or GridEnvs of different POGEMA configs) as one batch, so that a policy can be
evaluated inside POGEMA itself (`marl.evaluate.play_in_both`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from marl.config import ConfigError
from scenarios import Scenario


class StackedEnvs:
    """Batched environments (GridEnv-like parts) stepped as one batch of E = sum of their envs."""

    def __init__(self, parts: Sequence[Any]) -> None:
        shapes = {(p.num_agents, p.obs_shape, p.num_actions) for p in parts}
        if len(shapes) != 1:
            raise ValueError("stacked environments differ in agent count, observation shape or action count")
        self.parts = list(parts)
        self.num_agents, self.obs_shape, self.num_actions = shapes.pop()
        counts = [p.num_envs for p in self.parts]
        self.num_envs = sum(counts)
        self._slices = np.cumsum([0, *counts])

    def _join(self, arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays, axis=0)

    @property
    def active(self) -> np.ndarray:
        """(E, N) bool."""
        return self._join([p.active for p in self.parts])

    @property
    def neighbours(self) -> np.ndarray:
        """(E, N, K) int32, -1 padded."""
        return self._join([p.neighbours for p in self.parts])

    @property
    def episode_seeds(self) -> np.ndarray:
        """(E,) int64: the seed of each environment's current episode."""
        return self._join([p.episode_seeds for p in self.parts])

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every part; part k gets the k-th seed derived from `seed` (None: each part's own)."""
        from sim.seeds import variant_seeds

        seeds = [None] * len(self.parts) if seed is None else variant_seeds(seed, len(self.parts))
        return self._join([p.reset(seed=s) for p, s in zip(self.parts, seeds, strict=True)])

    def snapshot(self) -> dict[str, np.ndarray]:
        """Every part's `GridEnv.snapshot`, its names prefixed with the part's index ("3/_positions")."""
        parts = enumerate(self.parts)
        return {f"{k}/{name}": array for k, part in parts for name, array in part.snapshot().items()}

    def restore(self, snapshot: dict[str, np.ndarray]) -> np.ndarray:
        """Restore every part from a `snapshot` of equal stacked environments; returns the observation."""
        by_part: list[dict[str, np.ndarray]] = [{} for _ in self.parts]
        for key, array in snapshot.items():
            index, _, name = key.partition("/")
            if not index.isdigit() or int(index) >= len(by_part):
                raise ValueError(f"snapshot entry {key!r}: expected '<part>/<name>', {len(by_part)} parts")
            by_part[int(index)][name] = array
        return self._join([part.restore(own) for part, own in zip(self.parts, by_part, strict=True)])

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every part with its rows of `actions` (E, N); the parts' results joined along E."""
        bounds = zip(self._slices[:-1], self._slices[1:], strict=True)
        results = [p.step(actions[a:b]) for p, (a, b) in zip(self.parts, bounds, strict=True)]
        obs, rewards, terminated, truncated = (self._join([r[i] for r in results]) for i in range(4))
        infos = [r[4] for r in results]
        info: dict[str, Any] = {
            "metrics": [m for i in infos for m in i["metrics"]],
            "active": self._join([i["active"] for i in infos]),
        }
        if any("final_obs" in i for i in infos):
            final = [i.get("final_obs", r[0]) for i, r in zip(infos, results, strict=True)]
            info["final_obs"] = self._join(final)
        return obs, rewards, terminated, truncated, info


def require_window_observation(scenario: Scenario) -> None:
    """Training reads the (C, F, F) window observation; a one-line ConfigError otherwise."""
    if scenario.observation.type != "default":
        raise ConfigError(
            f"scenario {scenario.name!r}: observation.type {scenario.observation.type!r}; "
            "training needs 'default'"
        )


def make_training_envs(scenario: Scenario, num_envs: int, seed: int | None) -> Any:
    """One GridEnv of `num_envs` environments, pinned to the variants in blocks for a curriculum.

    A curriculum's batch steps on the calling thread (`num_threads=1`), as its variants played as separate
    GridEnvs did: on batches of few agents numba's thread pool costs more than it gains, most of all on a
    busy host."""
    from scenarios.variants import variant_blocks
    from sim.env import GridEnv

    if scenario.variants is None:
        return GridEnv(scenario, num_envs, seed=seed, obs_dtype=np.uint8)
    pinned = variant_blocks(scenario, num_envs)
    return GridEnv(scenario, num_envs, seed=seed, num_threads=1, obs_dtype=np.uint8, env_variants=pinned)


class PogemaEnv:
    """One `pogema_v0(grid_config)` environment behind GridEnv's batched interface (E = 1).

    Observations are POGEMA's per-agent (3, F, F) windows stacked to (1, N, 3, F, F) float32; `active` is
    POGEMA's is_active; info["metrics"] holds POGEMA's own metrics once the episode has ended (and again at
    every later step, as POGEMA reports them). POGEMA does not reset itself: `reset` starts the episode of
    the config's seed again. POGEMA has no neighbour lists, so local-scope policies cannot run here.
    """

    num_envs = 1

    def __init__(self, grid_config: Any) -> None:
        from pogema import pogema_v0

        from sim.actions import NUM_ACTIONS

        if grid_config.observation_type != "default":
            raise ValueError(f"observation_type {grid_config.observation_type!r}: expected 'default'")
        self._env = pogema_v0(grid_config=copy.deepcopy(grid_config))
        self.num_actions = NUM_ACTIONS
        self.num_agents = int(grid_config.num_agents)
        size = 2 * int(grid_config.obs_radius) + 1
        self.obs_shape = (3, size, size)
        self.active = np.ones((1, self.num_agents), dtype=bool)
        self.episode_seeds = np.array([grid_config.seed or 0], dtype=np.int64)  # the task's seed

    def reset(self, seed: int | None = None) -> np.ndarray:
        """The first observation (1, N, 3, F, F); `seed` is ignored (the config's seed fixes the task)."""
        obs, _ = self._env.reset()
        self.active[:] = True
        return np.stack(obs)[None].astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One POGEMA step with actions (1, N)."""
        obs, rewards, terminated, truncated, infos = self._env.step([int(a) for a in actions[0]])
        self.active[0] = [bool(i["is_active"]) for i in infos]
        info = {"metrics": [infos[0].get("metrics")], "active": self.active.copy()}
        return (
            np.stack(obs)[None].astype(np.float32),
            np.array(rewards, dtype=np.float32)[None],
            np.array(terminated)[None],
            np.array(truncated)[None],
            info,
        )
