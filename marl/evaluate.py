"""Evaluation: POGEMA's episode metrics of a policy, per scenario variant (e.g. per corridor length).

`run_episodes` plays exactly one episode in each of K environments side by side (one batched policy call
per step for all agents) and returns the K metric dicts; `evaluate_scenario` does this for every variant
of a scenario (optionally recording every episode to a Zarr episode store) and returns one row per variant
with the mean of each metric. `evaluate_in_pogema` plays the same policy on the same tasks in GridSwarm and
inside real POGEMA environments and reports both side by side.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fsio import atomic_writer
from marl.buffers import map_state
from marl.envs import PogemaEnv, StackedEnvs
from marl.rollout import Policy, sample_actions, step_keeping_torch_threads

if TYPE_CHECKING:
    from sim.episodes import Recorder


class PolicyActor:
    """A trained policy acting for every agent of a batched env: `act(obs, reset_mask)` gives the (E, N)
    actions of one step and keeps the memory state between steps.

    Called with no arguments it reads the env's current observation (`GridEnv.observation`) and treats an
    environment whose episode has just started (`elapsed == 0`) as reset: the same contract as the
    baselines of `sim.baselines`, so a trained policy plays wherever they do (`gridswarm run --policy`).
    Greedy play takes the most probable action; otherwise actions are drawn with `generator`.
    `last_logits` (E, N, A) holds the action preferences of the last step.
    """

    def __init__(
        self,
        policy: Policy,
        env: Any,
        generator: torch.Generator | None = None,
        greedy: bool = False,
        device: torch.device | None = None,
    ) -> None:
        self.policy, self.env, self.greedy = policy, env, greedy
        self.device = device or torch.device("cpu")
        self.generator = generator or torch.Generator(self.device).manual_seed(0)
        self.local = policy.config.scope == "local"
        self.state = map_state(
            lambda leaf: leaf.to(self.device), policy.initial_state(env.num_envs, env.num_agents)
        )
        self.last_logits: torch.Tensor | None = None
        self._torch_threads = torch.get_num_threads()

    @torch.no_grad()
    def act(self, obs: np.ndarray, reset_mask: np.ndarray) -> np.ndarray:
        """Actions (E, N) int64 for observation (E, N, C, F, F); reset_mask (E, N) bool marks agents whose
        episode starts at this observation (every agent on the first call)."""
        env, device = self.env, self.device
        if torch.get_num_threads() != self._torch_threads:  # numba's OpenMP layer resets it: see
            torch.set_num_threads(self._torch_threads)  # marl.rollout.step_keeping_torch_threads
        logits, _, self.state = self.policy.step(
            torch.from_numpy(np.asarray(obs)).to(device),
            self.state,
            torch.from_numpy(np.asarray(reset_mask, dtype=bool)).to(device),
            torch.from_numpy(env.neighbours).to(device) if self.local else None,
            torch.from_numpy(np.array(env.active, dtype=bool)).to(device),
        )
        self.last_logits = logits
        actions = logits.argmax(-1) if self.greedy else sample_actions(logits, self.generator)[0]
        return actions.cpu().numpy()

    def __call__(self) -> np.ndarray:
        """Actions (E, N) int64 for the env's current state (GridEnv: `observation` and `elapsed`)."""
        starting = np.asarray(self.env.elapsed) == 0  # (E,)
        return self.act(self.env.observation, np.repeat(starting[:, None], self.env.num_agents, axis=1))


@torch.no_grad()
def run_episodes(
    env: Any,
    policy: Policy,
    device: torch.device,
    seed: int | None,
    generator: torch.Generator,
    greedy: bool = False,
    max_steps: int = 100_000,
    recorder: Recorder | None = None,
) -> list[dict]:
    """Play one episode in each environment of `env`; their metrics, in env order.

    `env` is GridEnv-like (best without auto-reset, so that each environment plays exactly one episode);
    `recorder` (a `sim.episodes.Recorder` around `env`) is stepped in its place and writes the episodes.
    Greedy play takes the most probable action; otherwise actions are drawn with `generator`.
    """
    io = env if recorder is None else recorder
    obs = io.reset(seed=seed)
    actor = PolicyActor(policy, env, generator, greedy, device)
    reset_mask = np.ones((env.num_envs, env.num_agents), dtype=bool)
    results: list[dict | None] = [None] * env.num_envs
    torch_threads = torch.get_num_threads()
    for _ in range(max_steps):
        obs, _, _, _, info = step_keeping_torch_threads(io, actor.act(obs, reset_mask), torch_threads)
        ended = np.array([m is not None for m in info["metrics"]], dtype=bool)  # (E,)
        for e in np.flatnonzero(ended):
            if results[e] is None:
                results[e] = dict(info["metrics"][e])
        if all(r is not None for r in results):
            return results  # type: ignore[return-value]
        reset_mask = np.repeat(ended[:, None], env.num_agents, axis=1)
    raise RuntimeError(f"evaluation did not finish within {max_steps} steps")


def mean_metrics(episodes: list[dict]) -> dict[str, float]:
    """The mean of every numeric metric over the episodes."""
    keys = sorted({k for e in episodes for k, v in e.items() if isinstance(v, int | float)})
    return {k: float(np.mean([e[k] for e in episodes if k in e])) for k in keys}


def _variants(scenario: Any) -> list[tuple[str, Any]]:
    """(label, concrete scenario) per variant; a scenario without variants is its own single row "all"."""
    import scenarios

    if scenario.variants is None:
        return [("all", scenario)]
    key, values = scenario.variants.key, scenario.variants.values
    return [
        (f"{key}={value}", variant)
        for value, variant in zip(values, scenarios.expand_variants(scenario), strict=True)
    ]


def evaluate_scenario(
    scenario: Any,
    policy: Policy,
    episodes: int,
    seed: int,
    device: torch.device,
    greedy: bool = False,
    record: Path | None = None,
    policy_name: str = "",
) -> list[dict[str, Any]]:
    """One row per variant of `scenario`: {"variant": label, "episodes": K, <metric means>}.

    Each variant plays K episodes in K GridEnvs side by side (seed + variant index). `record`: every
    episode is also written to that episode store (writer 0) with `policy_name` as the policy identity.
    """
    from sim.env import GridEnv
    from sim.episodes import Recorder

    rows = []
    for index, (label, variant) in enumerate(_variants(scenario)):
        generator = torch.Generator(device).manual_seed(seed + index)
        env = GridEnv(variant, episodes, seed=seed + index, auto_reset=False)
        if record is None:
            metrics = run_episodes(env, policy, device, seed + index, generator, greedy=greedy)
        else:
            with Recorder(env, record, policy=policy_name) as recorder:
                metrics = run_episodes(
                    env, policy, device, seed + index, generator, greedy=greedy, recorder=recorder
                )
        rows.append({"variant": label, "episodes": episodes, **mean_metrics(metrics)})
    return rows


def pogema_seeds(seed: int, variant_index: int, episodes: int) -> list[int]:
    """The POGEMA GridConfig seeds of a variant's K evaluation episodes."""
    return [int(s) for s in np.random.SeedSequence([seed, variant_index]).generate_state(episodes)]


def play_in_both(
    scenario: Any,
    policy: Policy,
    seeds: list[int],
    device: torch.device,
    sampling_seed: int,
    greedy: bool = False,
) -> tuple[list[dict], list[dict]]:
    """The per-episode metrics of the policy in GridSwarm and in real POGEMA on the same tasks.

    Episode k is POGEMA's GridConfig of `scenario` with seeds[k] (sim.pogema_adapter), played by
    GridEnv.from_pogema and by pogema_v0, the policy fed each engine's own observations and the same
    sampling stream. Raises ValueError for a scenario POGEMA cannot express, or a local-scope policy (POGEMA
    has no neighbour lists).
    """
    from sim.env import GridEnv
    from sim.pogema_adapter import grid_config_from_scenario

    if policy.config.scope == "local":
        raise ValueError("local memory scope needs the simulator's neighbour lists, which POGEMA lacks")
    configs = [grid_config_from_scenario(scenario, seed=s) for s in seeds]
    ours = []
    for config in configs:
        env = GridEnv.from_pogema(config)
        env.auto_reset = False  # one episode per environment, as POGEMA plays it
        ours.append(env)
    results = []
    for envs in (StackedEnvs(ours), StackedEnvs([PogemaEnv(c) for c in configs])):
        if tuple(envs.obs_shape) != tuple(policy.config.obs_shape):
            raise ValueError(
                f"POGEMA's observation is {envs.obs_shape}, the policy's {tuple(policy.config.obs_shape)}"
            )
        generator = torch.Generator(device).manual_seed(sampling_seed)
        results.append(run_episodes(envs, policy, device, None, generator, greedy=greedy))
    return results[0], results[1]


def evaluate_in_pogema(
    scenario: Any, policy: Policy, episodes: int, seed: int, device: torch.device, greedy: bool = False
) -> list[dict[str, Any]]:
    """One row per variant: GridSwarm's metric means, POGEMA's ("pogema <metric>") on the same tasks, and
    how many of the K episodes had exactly equal metrics in both ("equal_episodes")."""
    rows = []
    for index, (label, variant) in enumerate(_variants(scenario)):
        ours, theirs = play_in_both(
            variant, policy, pogema_seeds(seed, index, episodes), device, seed + index, greedy=greedy
        )
        equal = sum(a == b for a, b in zip(ours, theirs, strict=True))
        rows.append(
            {
                "variant": label,
                "episodes": episodes,
                **mean_metrics(ours),
                **{f"pogema {k}": v for k, v in mean_metrics(theirs).items()},
                "equal_episodes": equal,
            }
        )
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
