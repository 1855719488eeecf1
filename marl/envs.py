"""Curricula from scenario variants: one batch of environments spread over the variants.

`make_training_envs(scenario, num_envs, seed)` returns a plain `sim.GridEnv` when the scenario has no
variants; otherwise a `VariantEnvs` that runs one GridEnv per variant (environment e plays variant
e mod K, so every variant is trained on at once) and presents them as one batch with GridEnv's interface.
All variants must share the agent count and observation shape. Observations are uint8 (the same 0/1
values as POGEMA's float32, a quarter of the copying; the policy converts them on its device).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import scenarios
from scenarios import Scenario


class VariantEnvs:
    """K GridEnvs (one per variant) stepped as one batch of E environments."""

    num_actions = 5

    def __init__(self, scenario: Scenario, num_envs: int, seed: int | None) -> None:
        from sim.env import GridEnv

        variants = scenarios.expand_variants(scenario)
        if num_envs < len(variants):
            raise ValueError(f"num_envs {num_envs}: need at least one environment per variant "
                             f"({len(variants)} variants of {scenario.variants.key})")
        counts = [len(range(k, num_envs, len(variants))) for k in range(len(variants))]
        self.parts = [GridEnv(v, n, seed=s, num_threads=1, obs_dtype=np.uint8)
                      for v, n, s in zip(variants, counts, _part_seeds(seed, len(variants)), strict=True)]
        shapes = {(p.num_agents, p.obs_shape) for p in self.parts}
        if len(shapes) != 1:
            raise ValueError(f"scenario {scenario.name!r}: variants differ in agent count or observation "
                             "shape")
        self.scenario = scenario
        self.num_envs = num_envs
        self.num_agents, self.obs_shape = shapes.pop()
        self._slices = np.cumsum([0, *counts])

    def _join(self, arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays, axis=0)

    @property
    def active(self) -> np.ndarray:
        return self._join([p.active for p in self.parts])

    @property
    def neighbours(self) -> np.ndarray:
        return self._join([p.neighbours for p in self.parts])

    def reset(self, seed: int | None = None) -> np.ndarray:
        seeds = _part_seeds(seed, len(self.parts))
        return self._join([p.reset(seed=s) for p, s in zip(self.parts, seeds, strict=True)])

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        bounds = zip(self._slices[:-1], self._slices[1:], strict=True)
        results = [p.step(actions[a:b]) for p, (a, b) in zip(self.parts, bounds, strict=True)]
        obs, rewards, terminated, truncated = (self._join([r[i] for r in results]) for i in range(4))
        infos = [r[4] for r in results]
        info: dict[str, Any] = {"metrics": [m for i in infos for m in i["metrics"]],
                                "active": self._join([i["active"] for i in infos])}
        if any("final_obs" in i for i in infos):
            final = [i.get("final_obs", r[0]) for i, r in zip(infos, results, strict=True)]
            info["final_obs"] = self._join(final)
        return obs, rewards, terminated, truncated, info


def _part_seeds(seed: int | None, count: int) -> list[int | None]:
    if seed is None:
        return [None] * count
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count)]


def make_training_envs(scenario: Scenario, num_envs: int, seed: int | None) -> Any:
    """GridEnv for a plain scenario; VariantEnvs (all variants side by side) for a curriculum."""
    from sim.env import GridEnv

    if scenario.variants is None:
        return GridEnv(scenario, num_envs, seed=seed, obs_dtype=np.uint8)
    return VariantEnvs(scenario, num_envs, seed)
