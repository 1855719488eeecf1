"""Evaluation: POGEMA's episode metrics of a policy, per scenario variant (e.g. per corridor length).

`run_episodes` plays exactly one episode in each of K environments side by side (one batched policy call
per step for all agents) and returns the K metric dicts; `evaluate_scenario` does this for every variant
of a scenario and returns one row per variant with the mean of each metric.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl.rollout import Policy, sample_actions, start_rollouts
from marl.run_dir import atomic_writer


@torch.no_grad()
def run_episodes(env: Any, policy: Policy, device: torch.device, seed: int | None,
                 generator: torch.Generator, greedy: bool = False, max_steps: int = 100_000) -> list[dict]:
    """Play one episode in each environment of `env` (auto-resetting); their metrics, in env order."""
    carry = start_rollouts(env, policy, device, seed=seed)
    results: list[dict | None] = [None] * env.num_envs
    for _ in range(max_steps):
        logits, _, state = policy.step(
            torch.from_numpy(carry.obs).to(device), carry.state,
            torch.from_numpy(carry.reset_mask).to(device),
            None if policy.config.scope != "local" else torch.from_numpy(env.neighbours).to(device),
            torch.from_numpy(carry.active).to(device))
        actions = logits.argmax(-1) if greedy else sample_actions(logits, generator)[0]
        obs, _, _, _, info = env.step(actions.cpu().numpy())
        ended = np.array([m is not None for m in info["metrics"]], dtype=bool)
        for e in np.flatnonzero(ended):
            if results[e] is None:
                results[e] = dict(info["metrics"][e])
        if all(r is not None for r in results):
            return results  # type: ignore[return-value]
        carry.obs, carry.state, carry.active = obs, state, np.array(env.active, dtype=bool)
        carry.reset_mask = np.repeat(ended[:, None], env.num_agents, axis=1)
    raise RuntimeError(f"evaluation did not finish within {max_steps} steps")


def mean_metrics(episodes: list[dict]) -> dict[str, float]:
    """The mean of every numeric metric over the episodes."""
    keys = sorted({k for e in episodes for k, v in e.items() if isinstance(v, int | float)})
    return {k: float(np.mean([e[k] for e in episodes if k in e])) for k in keys}


def evaluate_scenario(scenario: Any, policy: Policy, episodes: int, seed: int, device: torch.device,
                      make_env: Callable[[Any, int, int], Any], greedy: bool = False) -> list[dict[str, Any]]:
    """One row per variant of `scenario`: {"variant": label, "episodes": K, <metric means>}.

    `make_env(scenario, num_envs, seed)` builds the environments (e.g. sim.GridEnv).
    """
    import scenarios

    variants = scenarios.expand_variants(scenario) if scenario.variants is not None else [scenario]
    key = scenario.variants.key if scenario.variants is not None else None
    rows = []
    for index, variant in enumerate(variants):
        label = "all" if key is None else f"{key}={scenario.variants.values[index]}"
        generator = torch.Generator(device).manual_seed(seed + index)
        env = make_env(variant, episodes, seed + index)
        metrics = run_episodes(env, policy, device, seed + index, generator, greedy=greedy)
        rows.append({"variant": label, "episodes": episodes, **mean_metrics(metrics)})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table, one line per row, columns aligned."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_report(rows: list[dict[str, Any]], stem: Path) -> None:
    """stem.csv and stem.json, written atomically."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_writer(stem.with_suffix(".csv")) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    with atomic_writer(stem.with_suffix(".json")) as handle:
        json.dump(rows, handle, indent=1)
