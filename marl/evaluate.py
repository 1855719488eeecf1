"""Evaluation: POGEMA's episode metrics of a policy, per scenario variant (e.g. per corridor length).

`run_episodes` plays exactly one episode in each of K environments side by side (one batched policy call
per step for the agents of every episode still running) and returns the K metric dicts; `play_scenario`
runs every variant x episode of a scenario in one such batch (optionally recording every episode to a
Zarr episode store) and `evaluate_scenario` turns it into one row per variant with the mean of each
metric. Each episode samples from its own counter-based stream, so its result does not depend on what
else is in the batch. `evaluate_in_pogema` plays the same policy on the same tasks in GridSwarm and inside
real POGEMA environments and reports both side by side.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch

from marl.envs import PogemaEnv, StackedEnvs
from marl.rollout import Policy, PolicyLoop, episode_keys, keyed_actions, keyed_uniforms
from marl.seeds import evaluation_episode_seeds, pogema_seeds
from scenarios.variants import expand_variants, variant_blocks, variant_labels
from sim.episode_loop import play_one_episode_each

if TYPE_CHECKING:
    from sim.episodes import Recorder


class Progress:
    """One progress line on stderr for a batch of episodes: steps, episodes done, time, and a bound on the
    time left (the longest remaining episode limit at the current cost per step, from the second step on;
    the cost only falls as episodes finish). Rewritten in place on a terminal, a new line every `every_s`
    seconds otherwise."""

    def __init__(self, what: str, total: int, stream: TextIO | None = None, every_s: float = 10.0) -> None:
        self.what, self.total = what, total
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.every_s = 0.5 if self.tty else every_s
        self.started = self.last_step_at = self.last_shown = time.perf_counter()
        self.step_seconds = 0.0
        self.shown = False

    def update(self, step: int, done: int, steps_left: int) -> None:
        """After `step` steps, `done` of `total` episodes have ended; no live one has more than
        `steps_left` steps to go."""
        now = time.perf_counter()
        self.step_seconds = (
            now - self.last_step_at
            if step <= 1
            else 0.8 * self.step_seconds + 0.2 * (now - self.last_step_at)
        )
        self.last_step_at = now
        if now - self.last_shown < self.every_s and done < self.total:
            return
        self.last_shown = now
        if done == self.total:
            left = "done"
        elif step <= 1:  # the first step's time includes setting up (and compiling, on a first run)
            left = "time left known after the next step"
        else:
            left = f"at most {steps_left * self.step_seconds:.0f} s left"
        line = (
            f"{self.what}: step {step}, {done}/{self.total} episodes done, {now - self.started:.0f} s, {left}"
        )
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def progress_line(what: str | None, total: int) -> contextlib.AbstractContextManager[Progress | None]:
    """A `Progress` for `what` over `total` episodes, or no line (None) when `what` is None."""
    return contextlib.nullcontext() if what is None else Progress(what, total)


class PolicyActor:
    """A trained policy acting for every agent of a batched env: `act(obs, reset_mask)` gives the (E, N)
    actions of one step and keeps the memory state between steps.

    Called with no arguments it reads the env's current observation (`GridEnv.observation`) and treats an
    environment whose episode has just started (`elapsed == 0`) as reset: the same contract as the
    baselines of `sim.baselines`, so a trained policy plays wherever they do (`gridswarm run --policy`).
    Greedy play takes the most probable action; otherwise each episode draws its actions from the
    counter-based stream `run_episodes` uses (keyed by `sampling_seed`, the episode's seed and its step),
    so an episode plays here as it does in evaluation.
    """

    def __init__(
        self,
        policy: Policy,
        env: Any,
        sampling_seed: int = 0,
        greedy: bool = False,
        device: torch.device | None = None,
    ) -> None:
        self.policy, self.env, self.greedy = policy, env, greedy
        self.sampling_seed = sampling_seed
        self.loop = PolicyLoop(policy, env, device=device or torch.device("cpu"))

    @torch.no_grad()
    def logits(self, obs: np.ndarray, reset_mask: np.ndarray) -> torch.Tensor:
        """The policy's action logits (E, N, A) for observation (E, N, C, F, F), advancing its memory state;
        reset_mask (E, N) bool marks agents whose episode starts at this observation (every agent on the
        first call)."""
        self.loop.keep_threads()  # the caller stepped the simulator since the last call
        self.loop.reset_mask = np.asarray(reset_mask, dtype=bool)
        return self.loop.act(np.asarray(obs)).logits

    def act(self, obs: np.ndarray, reset_mask: np.ndarray) -> np.ndarray:
        """Actions (E, N) int64 for observation (E, N, C, F, F) (`logits`)."""
        env = self.env
        logits = self.logits(obs, reset_mask)
        if self.greedy:
            return logits.argmax(-1).cpu().numpy()
        keys = episode_keys(self.sampling_seed, env.episode_seeds)
        return keyed_actions(logits, keyed_uniforms(keys, np.asarray(env.elapsed), env.num_agents))

    def __call__(self) -> np.ndarray:
        """Actions (E, N) int64 for the env's current state (GridEnv: `observation` and `elapsed`)."""
        return self.act(self.env.observation, self.starting())

    def starting(self) -> np.ndarray:
        """(E, N) bool: the agents of every environment whose episode has just started (`elapsed == 0`)."""
        starting = np.asarray(self.env.elapsed) == 0  # (E,)
        return np.repeat(starting[:, None], self.env.num_agents, axis=1)


@torch.no_grad()
def run_episodes(
    env: Any,
    policy: Policy,
    device: torch.device,
    sampling_seed: int,
    *,
    seed: int | None = None,
    episode_seeds: np.ndarray | None = None,
    greedy: bool = False,
    max_steps: int = 100_000,
    recorder: Recorder | None = None,
    limits: np.ndarray | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Play one episode in each environment of `env`; their metrics, in env order.

    `env` is GridEnv-like without auto-reset (each environment plays exactly one episode), reset here with
    `seed` or the exact `episode_seeds` (E,); `recorder` (a `sim.episodes.Recorder` around `env`) is
    stepped in its place and writes the episodes. One policy call per step covers every environment whose
    episode still runs; a finished one drops out of the batch (its agents stay put). Greedy play takes the
    most probable action; otherwise each episode draws its actions from its own counter-based stream
    (`keyed_uniforms`, keyed by `sampling_seed` and the episode's seed), so an episode plays the same
    whatever else is in the batch. `limits` (E,): episode step limits, for `progress`'s time bound.
    """
    io = env if recorder is None else recorder
    loop = PolicyLoop(policy, env, device=device)
    obs = (
        loop.sim(io.reset, episode_seeds=episode_seeds)
        if episode_seeds is not None
        else loop.sim(io.reset, seed=seed)
    )
    keys = episode_keys(sampling_seed, env.episode_seeds)

    def choose(live_obs: np.ndarray, step: int) -> np.ndarray:
        logits = loop.act(live_obs).logits
        if greedy:
            return logits.argmax(-1).cpu().numpy()
        return keyed_actions(logits, keyed_uniforms(keys[loop.rows], step, env.num_agents))

    def report(step: int, _: np.ndarray) -> None:
        if progress is not None:
            steps_left = int((limits[loop.rows] - step - 1).max(initial=0)) if limits is not None else 0
            progress.update(step + 1, env.num_envs - loop.rows.size, steps_left)

    results = play_one_episode_each(lambda a: loop.sim(io.step, a), loop, obs, choose, max_steps, report)
    if loop.rows.size:
        raise RuntimeError(f"evaluation did not finish within {max_steps} steps")
    return results  # type: ignore[return-value]


def mean_metrics(episodes: list[dict]) -> dict[str, float]:
    """The mean of every numeric metric over the episodes."""
    keys = sorted({k for e in episodes for k, v in e.items() if isinstance(v, int | float)})
    return {k: float(np.mean([e[k] for e in episodes if k in e])) for k in keys}


def play_scenario(
    scenario: Any,
    policy: Policy,
    device: torch.device,
    episode_seeds: np.ndarray,
    sampling_seed: int,
    greedy: bool = False,
    record: Path | None = None,
    policy_name: str = "",
    progress: str | None = None,
) -> list[list[dict]]:
    """The per-episode metrics of the policy on every variant of `scenario` (a scenario without variants
    is one variant): episode k of variant v starts from episode_seeds[v, k] (V, K).

    All V x K episodes run side by side in one GridEnv, one policy call per step. `record`: every episode
    is also written to that episode store (writer 0, its concrete variant as its scenario) with
    `policy_name` as the policy identity. `progress`: the name a progress line on stderr shows.
    """
    from sim.env import GridEnv
    from sim.episodes import Recorder

    variants = expand_variants(scenario)
    num_variants, episodes = episode_seeds.shape
    if num_variants != len(variants):
        raise ValueError(f"episode_seeds: {num_variants} rows for {len(variants)} variants")
    pinned = variant_blocks(scenario, num_variants * episodes)  # episode k of variant v: env v * K + k
    env = GridEnv(scenario, num_variants * episodes, seed=0, auto_reset=False, env_variants=pinned)
    limits = np.array([variants[v].dynamics.max_episode_steps for v in pinned])
    play = functools.partial(
        run_episodes,
        env,
        policy,
        device,
        sampling_seed,
        episode_seeds=episode_seeds.reshape(-1),
        greedy=greedy,
        limits=limits,
    )
    with progress_line(progress, num_variants * episodes) as tracker:
        if record is None:
            metrics = play(progress=tracker)
        else:
            with Recorder(env, record, policy=policy_name) as recorder:
                metrics = play(recorder=recorder, progress=tracker)
    return [metrics[v * episodes : (v + 1) * episodes] for v in range(num_variants)]


def evaluate_scenario(
    scenario: Any,
    policy: Policy,
    episodes: int,
    seed: int,
    device: torch.device,
    greedy: bool = False,
    record: Path | None = None,
    policy_name: str = "",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per variant of `scenario`: {"variant": label, "episodes": K, <metric means>}.

    K episodes per variant (seeds `marl.seeds.evaluation_episode_seeds(seed, V, K)`, sampling seed
    `seed`), all variants played at once (`play_scenario`). `progress`: a progress line on stderr.
    """
    labels = variant_labels(scenario)
    per_variant = play_scenario(
        scenario,
        policy,
        device,
        evaluation_episode_seeds(seed, len(labels), episodes),
        seed,
        greedy=greedy,
        record=record,
        policy_name=policy_name,
        progress=f"eval {scenario.name}" if progress else None,
    )
    return [
        {"variant": label, "episodes": episodes, **mean_metrics(metrics)}
        for label, metrics in zip(labels, per_variant, strict=True)
    ]


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
    per-episode sampling streams. Raises ValueError for a scenario POGEMA cannot express, or a local-scope
    policy (POGEMA has no neighbour lists).
    """
    return _play_in_both([(scenario, s) for s in seeds], policy, device, sampling_seed, greedy)


def _play_in_both(
    tasks: list[tuple[Any, int]],
    policy: Policy,
    device: torch.device,
    sampling_seed: int,
    greedy: bool,
    progress: str | None = None,
) -> tuple[list[dict], list[dict]]:
    """`play_in_both` for (concrete scenario, POGEMA seed) tasks of possibly different scenarios: every
    task side by side in one batch per engine."""
    from sim.env import GridEnv
    from sim.pogema_adapter import grid_config_from_scenario

    if policy.config.scope == "local":
        raise ValueError("local memory scope needs the simulator's neighbour lists, which POGEMA lacks")
    configs = [grid_config_from_scenario(scenario, seed=s) for scenario, s in tasks]
    ours = []
    for config in configs:
        env = GridEnv.from_pogema(config)
        env.auto_reset = False  # one episode per environment, as POGEMA plays it
        ours.append(env)
    limits = np.array([c.max_episode_steps for c in configs])
    results = []
    for engine, envs in (
        ("gridswarm", StackedEnvs(ours)),
        ("pogema", StackedEnvs([PogemaEnv(c) for c in configs])),
    ):
        if tuple(envs.obs_shape) != tuple(policy.config.obs_shape):
            raise ValueError(
                f"POGEMA's observation is {envs.obs_shape}, the policy's {tuple(policy.config.obs_shape)}"
            )
        what = None if progress is None else f"{progress} in {engine}"
        with progress_line(what, len(configs)) as tracker:
            results.append(
                run_episodes(
                    envs, policy, device, sampling_seed, greedy=greedy, limits=limits, progress=tracker
                )
            )
    return results[0], results[1]


def evaluate_in_pogema(
    scenario: Any,
    policy: Policy,
    episodes: int,
    seed: int,
    device: torch.device,
    greedy: bool = False,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per variant: GridSwarm's metric means, POGEMA's ("pogema <metric>") on the same tasks, and
    how many of the K episodes had exactly equal metrics in both ("equal_episodes"). Every variant's
    episodes run side by side, in one batch per engine."""
    variants = list(zip(variant_labels(scenario), expand_variants(scenario), strict=True))
    tasks = [
        (variant, s)
        for index, (_, variant) in enumerate(variants)
        for s in pogema_seeds(seed, index, episodes)
    ]
    ours, theirs = _play_in_both(
        tasks, policy, device, seed, greedy, progress=f"eval {scenario.name}" if progress else None
    )
    rows = []
    for index, (label, _) in enumerate(variants):
        part = slice(index * episodes, (index + 1) * episodes)
        equal = sum(a == b for a, b in zip(ours[part], theirs[part], strict=True))
        rows.append(
            {
                "variant": label,
                "episodes": episodes,
                **mean_metrics(ours[part]),
                **{f"pogema {k}": v for k, v in mean_metrics(theirs[part]).items()},
                "equal_episodes": equal,
            }
        )
    return rows
