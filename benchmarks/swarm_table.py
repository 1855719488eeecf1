"""Policies at swarm scale: trained policies beside PIBT and greedy on swarm-10k and on a 256x256 random map
with thousands of agents; throughput and time per step.

Usage: .venv/bin/python benchmarks/swarm_table.py [--policies greedy pibt RUN_DIR|CKPT|pretrained:NAME ...]
       [--scenarios swarm-10k ...] [--agents 2000 5000] [--side 256] [--steps S] [--seed 0]

Cells: every policy on every scenario (default: the built-in swarm-10k; each of --scenarios is a built-in
name or a YAML file) and on a --side x --side random map of density 0.2 with each --agents count (swarm-10k's
setting at that size: lifelong goals, soft collisions, 256 steps, radius 5, 8 neighbours within 5 cells).
One episode per cell, environment seed --seed: every policy of a row plays the very same task (map, starts,
goals, lifelong goal streams). --steps S plays S steps instead of the scenario's episode length (for cells
too slow to play whole). A scripted policy (sim.policy_names.LIFELONG_POLICIES) is seeded with --seed; a
trained policy (a run directory, a .ckpt or pretrained:NAME) reads the observation of the scenario it was
trained on (its channels, neighbours and neighbour radius, at the played scenario's radius), samples its
actions with sampling seed --seed and is decentralized; the planners are not. Observations are uint8.

Per cell: avg_throughput (goals reached per step over the episode, POGEMA's metric); the episode's reset and
its first step (distance windows, first torch call) on their own; then the mean over the remaining steps of
one step (the policy's call plus `env.step`) in wall-clock and process CPU time, the policy's share, and
agent-steps per second of wall-clock. One numba thread (NUMBA_NUM_THREADS, unless set) and one torch thread
(--torch-threads) by default: on a loaded host the CPU time is what the code costs, the wall clock what the
run got.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one thread, before numba is imported

import argparse
import dataclasses
import platform
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
from lmapf_protocol import TrainedPolicy, load_trained

import scenarios
from scenarios.errors import ScenarioError
from scenarios.schema import AgentsSpec, Scenario
from sim import GridEnv
from sim.baselines import make_baseline
from sim.maps import build_layout
from sim.policy_names import LIFELONG_POLICIES

Player = str | TrainedPolicy


@dataclasses.dataclass(frozen=True)
class Cell:
    """One policy's episode on one scenario: its throughput and where the time went."""

    avg_throughput: float
    steps: int
    reset_s: float
    first_step_s: float
    step_ms: float  # wall clock, mean over the steps after the first
    step_cpu_ms: float  # process CPU time, the same steps
    policy_ms: float  # the policy's call alone (wall clock), the same steps
    agent_steps_per_s: float


def random_map_scenario(agents: int, side: int) -> Scenario:
    """swarm-10k's setting (random map of density 0.2, lifelong, soft collisions, 256 steps, its observation)
    on a side x side map with `agents` agents."""
    swarm = scenarios.load("swarm-10k")
    return dataclasses.replace(
        swarm,
        name=f"random-{side}x{side}-{agents}",
        description=f"{agents} agents on a {side}x{side} random map (density {swarm.map.density})",
        map=dataclasses.replace(swarm.map, width=side, height=side),
        agents=AgentsSpec(count=agents),
        source=None,  # errors name this scenario, not swarm-10k's file
    )


def lifelong(scenario: Scenario) -> Scenario:
    """`scenario` itself if one episode of it runs its whole length and ends with an avg_throughput (lifelong
    goals, no variants); otherwise a ScenarioError."""
    if scenario.dynamics.on_target != "restart":
        raise ScenarioError(
            f"{scenario.name}: expected a lifelong scenario (dynamics.on_target restart), found "
            f"{scenario.dynamics.on_target}"
        )
    if scenario.variants is not None:
        raise ScenarioError(f"{scenario.name}: expected a scenario without variants (one map, one length)")
    return scenario


def with_steps(scenario: Scenario, steps: int | None) -> Scenario:
    """`scenario` whose episodes last `steps` steps (None: as they are)."""
    if steps is None:
        return scenario
    return dataclasses.replace(
        scenario, dynamics=dataclasses.replace(scenario.dynamics, max_episode_steps=steps)
    )


def make_env(scenario: Scenario, player: Player, seed: int) -> GridEnv:
    """The one-episode env `player` plays `scenario` in: the scenario's own observation for a scripted
    policy, for a trained one the observation it was trained on at the scenario's radius (the task does not
    depend on the observation, so both play the same one). A trained policy whose observation shape differs
    from what the scenario gives is a ScenarioError."""
    if isinstance(player, TrainedPolicy):
        observation = dataclasses.replace(player.observation, radius=scenario.observation.radius)
        scenario = dataclasses.replace(scenario, observation=observation)
    env = GridEnv(scenario, 1, seed=seed, auto_reset=False, obs_dtype=np.uint8)
    if isinstance(player, TrainedPolicy):
        wanted, given = tuple(player.policy.config.obs_shape), tuple(env.obs_shape)
        if wanted != given:
            raise ScenarioError(
                f"{player.label} reads observations of shape {wanted}, scenario '{scenario.name}' at radius "
                f"{scenario.observation.radius} gives {given} (the policy's training radius must match)"
            )
    return env


def make_actor(player: Player, env: GridEnv, seed: int) -> Callable[[], np.ndarray]:
    """The (E, N) actions of `player` for `env`'s current state, one call per step."""
    if isinstance(player, TrainedPolicy):
        from marl.evaluate import PolicyActor

        return PolicyActor(player.policy, env, sampling_seed=seed)
    return make_baseline(player, env, seed)


def play(scenario: Scenario, player: Player, seed: int) -> Cell:
    """One episode of `player` on `scenario` (environment seed `seed`), timed step by step."""
    env = make_env(scenario, player, seed)
    steps = scenario.dynamics.max_episode_steps
    start = time.perf_counter()
    env.reset(seed=seed)
    actor = make_actor(player, env, seed)
    reset_s = time.perf_counter() - start
    wall, cpu, in_policy = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    metrics = None
    for step in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        actions = actor()
        in_policy[step] = time.perf_counter() - start
        metrics = env.step(actions)[4]["metrics"][0]
        wall[step], cpu[step] = time.perf_counter() - start, time.process_time() - start_cpu
    assert metrics is not None, "the episode ends at its last step"
    rest = slice(1, None) if steps > 1 else slice(None)
    return Cell(
        avg_throughput=float(metrics["avg_throughput"]),
        steps=steps,
        reset_s=reset_s,
        first_step_s=float(wall[0]),
        step_ms=1e3 * float(wall[rest].mean()),
        step_cpu_ms=1e3 * float(cpu[rest].mean()),
        policy_ms=1e3 * float(in_policy[rest].mean()),
        agent_steps_per_s=env.num_agents / float(wall[rest].mean()),
    )


def machine() -> str:
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h"], capture_output=True, text=True, cwd=os.path.dirname(__file__)
    ).stdout.strip()
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, load average "
        f"{load}, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit or 'unknown'}, NUMBA_NUM_THREADS="
        f"{os.environ['NUMBA_NUM_THREADS']}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from gridswarm.arguments import integer, seed
    from gridswarm.cli import OneLineParser

    parser = OneLineParser(prog="swarm_table", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["greedy", "pibt"],
        help=f"scripted policies ({', '.join(LIFELONG_POLICIES)}) and trained ones (run directory, .ckpt or "
        "pretrained:NAME); default greedy pibt",
    )
    parser.add_argument(
        "--scenarios",
        nargs="*",
        default=["swarm-10k"],
        help="built-in names or YAML files (default swarm-10k)",
    )
    parser.add_argument(
        "--agents",
        type=integer(1, 1 << 20),
        nargs="*",
        default=[2000, 5000],
        help="agent counts on the generated random map (default 2000 5000; none: no such rows)",
    )
    parser.add_argument("--side", type=integer(8, 4096), default=256, help="its side (default 256)")
    parser.add_argument(
        "--steps", type=integer(1, 1 << 20), help="steps per episode (default: the scenario's own)"
    )
    parser.add_argument("--seed", type=seed, default=0, help="environment and policy seed (default 0)")
    parser.add_argument("--torch-threads", type=integer(1, 256), default=1, help="default 1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from marl.run_dir import CheckpointError
    from marl.threads import use_torch_threads

    use_torch_threads(args.torch_threads)
    players: list[Player] = []
    try:
        for name in args.policies:
            players.append(name if name in LIFELONG_POLICIES else load_trained(name))
    except CheckpointError as error:
        print(f"swarm_table: --policies {name}: {error}", file=sys.stderr)
        return 2
    try:
        rows = [with_steps(lifelong(scenarios.load(name)), args.steps) for name in args.scenarios]
    except ScenarioError as error:
        print(f"swarm_table: --scenarios: {error}", file=sys.stderr)
        return 2
    generated = [with_steps(random_map_scenario(agents, args.side), args.steps) for agents in args.agents]
    try:
        for scenario in generated:
            build_layout(scenario, args.seed)  # refuses more agents than the map holds, before any play
    except ScenarioError as error:
        print(f"swarm_table: --agents: {error}", file=sys.stderr)
        return 2
    rows += generated
    print(machine() + "\n")
    print(
        "| scenario | agents | policy | avg_throughput | steps | reset s | first step s | ms/step wall / CPU "
        "| policy ms/step | agent-steps/s |"
    )
    print("|---" * 10 + "|")
    for scenario in rows:
        for name, player in zip(args.policies, players, strict=True):
            try:
                cell = play(scenario, player, args.seed)
            except ScenarioError as error:
                print(f"swarm_table: {scenario.name}, {name}: {error}", file=sys.stderr)
                return 2
            print(
                f"| {scenario.name} | {scenario.agents.count:,} | {name} | {cell.avg_throughput:.3f} | "
                f"{cell.steps} | {cell.reset_s:.2f} | {cell.first_step_s:.2f} | {cell.step_ms:.1f} / "
                f"{cell.step_cpu_ms:.1f} | {cell.policy_ms:.1f} | {cell.agent_steps_per_s:,.0f} |",
                flush=True,
            )
    print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
