"""The lifelong table of docs/results.md: a trained policy against scripted baselines (greedy, PIBT) and the
published POGEMA-benchmark numbers, on the benchmark's lifelong (LMAPF) Random protocol.

Usage: python benchmarks/lifelong_table.py CHECKPOINT [--episodes K] [--seed S] [--agents 8 16 32 64]
[--maps MAPS.yaml] [--steps 256] [--baselines greedy pibt] [--guided pibt] [--greedy-actions]. CHECKPOINT:
a run directory (its best, else newest checkpoint), a .ckpt file or pretrained:NAME. Another maps file of
the benchmark (e.g. 02-mazes.yaml, played for 128 steps: --steps 128) plays all of its maps; the published
numbers are shown for the Random set only.

Protocol (Skrynnik et al., "POGEMA: A Benchmark Platform for Cooperative Multi-Agent Pathfinding", ICLR
2025): the 128 validation maps of the Random set (one drawn per episode seed), soft collisions, lifelong
(on_target restart), 256 steps, obs radius 5; avg_throughput = arrivals / 256. The maps are regenerated
with the benchmark's published generator (`sim.benchmark_maps`, identical to its `01-random.yaml`);
`--maps` reads a `maps.yaml` file instead. The policy and the scripted baselines (greedy by default;
`--baselines greedy pibt` adds the PIBT planner) play the very same K episodes per agent count
(GridEnv(scenario, K, seed=S), one episode per environment); the policy samples its actions
(`--greedy-actions` takes the argmax instead) and reads the observation of the scenario it was trained on
(channels and neighbour lists). `--guided pibt` adds policy-guided PIBT (`marl.guided`: the policy's action
probabilities order PIBT's moves), a centralized planner, in its own column marked "centralized", never in
the policy's column. The published columns are the benchmark's LMAPF Random results (public
repository Cognitive-AI-Systems/pogema-benchmark, raw data, 128 runs per cell).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from marl.evaluate import Progress, mean_metrics, run_episodes
from marl.guided import GuidedPlanner
from marl.run_dir import CheckpointError, load_policy, run_scenario
from marl.threads import use_torch_threads
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim.baselines import POLICIES, make_baseline
from sim.benchmark_maps import validation_random_maps, write_maps_yaml
from sim.env import GridEnv
from sim.policy_names import GUIDABLE_PLANNERS

# The benchmark's LMAPF Random avg_throughput per agent count (its raw data, 128 runs per cell).
PUBLISHED = {
    "Follower": {8: 0.589, 16: 1.114, 32: 1.801, 64: 2.416},
    "MATS-LP": {8: 0.596, 16: 1.143, 32: 1.872, 64: 2.381},
    "QPLEX": {8: 0.574, 16: 1.043, 32: 1.495, 64: 1.336},
    "RHCR": {8: 0.625, 16: 1.251, 32: 2.286, 64: 3.819},
}


def benchmark_scenario(maps: Path, agents: int, observation: ObservationSpec, steps: int = 256) -> Scenario:
    return Scenario(
        name=f"pogema-benchmark-{maps.stem}-{agents}",
        map=MapSpec(generator="benchmark", path=str(maps), name="*"),
        agents=AgentsSpec(count=agents),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart", max_episode_steps=steps),
        observation=observation,
    )


def scripted_throughput(
    scenario: Scenario, make: Callable[[GridEnv], Callable[[], np.ndarray]], episodes: int, seed: int
) -> float:
    """The mean avg_throughput over the K episodes of the centralized policy `make(env)` (a scripted one of
    sim.baselines.POLICIES, or a guided planner)."""
    env = GridEnv(scenario, episodes, seed=seed, auto_reset=False)
    env.reset()
    policy = make(env)
    for _ in range(scenario.dynamics.max_episode_steps):
        info = env.step(policy())[4]
    return float(np.mean([m["avg_throughput"] for m in info["metrics"]]))


def policy_throughput(scenario: Scenario, policy, episodes: int, seed: int, greedy: bool) -> float:
    env = GridEnv(scenario, episodes, seed=seed, auto_reset=False)
    limits = np.full(episodes, scenario.dynamics.max_episode_steps)
    with Progress(f"{scenario.name} policy", episodes) as progress:
        metrics = run_episodes(
            env, policy, torch.device("cpu"), seed, seed=seed, greedy=greedy, limits=limits, progress=progress
        )
    return mean_metrics(metrics)["avg_throughput"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog=" ".join(__doc__.split("\n\n")[2].split()),  # the protocol
    )
    parser.add_argument(
        "checkpoint", help="a run directory (its best, else newest checkpoint), a .ckpt or pretrained:NAME"
    )
    parser.add_argument("--episodes", type=int, default=64, help="episodes per agent count (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default 0)")
    parser.add_argument(
        "--agents", type=int, nargs="+", default=[8, 16, 32, 64], help="agent counts (default 8 16 32 64)"
    )
    parser.add_argument(
        "--maps",
        type=Path,
        help="a POGEMA-benchmark maps.yaml, all of whose maps are played "
        "(default: the Random set, regenerated with the benchmark's generator)",
    )
    parser.add_argument(
        "--steps", type=int, default=256, help="episode length (the benchmark: 128 for mazes)"
    )
    parser.add_argument(
        "--baselines",
        nargs="+",
        choices=POLICIES,
        default=["greedy"],
        help="scripted policies played on the same episodes (default greedy; e.g. greedy pibt)",
    )
    parser.add_argument(
        "--guided",
        nargs="+",
        choices=GUIDABLE_PLANNERS,
        default=[],
        help="planners guided by the policy (centralized), each its own column (e.g. pibt)",
    )
    parser.add_argument("--greedy-actions", action="store_true", help="the policy takes its argmax action")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.maps is not None and not args.maps.is_file():
        print(f"lifelong_table: --maps {args.maps}: no such file", file=sys.stderr)
        return 2
    use_torch_threads()
    try:
        policy, meta = load_policy(args.checkpoint)
    except CheckpointError as error:
        print(f"lifelong_table: {error}", file=sys.stderr)
        return 2
    # what the policy was trained to read, at the benchmark's radius
    trained_on = run_scenario(meta, meta["checkpoint"])  # the scenario as the run stored it
    if trained_on.observation.radius != 5:
        print(
            f"lifelong_table: {args.checkpoint}: trained at observation radius "
            f"{trained_on.observation.radius}; the benchmark observes at radius 5",
            file=sys.stderr,
        )
        return 2
    observation = trained_on.observation
    with tempfile.TemporaryDirectory(prefix="lifelong-maps-") as scratch:
        maps = args.maps or write_maps_yaml(Path(scratch) / "01-random.yaml", validation_random_maps())
        rows = []
        guided = [f"{name} guided by this run (centralized)" for name in args.guided]
        centralized = [*args.baselines, *guided]
        for agents in args.agents:
            scenario = benchmark_scenario(maps, agents, observation, args.steps)
            ours = policy_throughput(scenario, policy, args.episodes, args.seed, args.greedy_actions)
            makers = [functools.partial(make_baseline, name, seed=args.seed) for name in args.baselines]
            makers += [
                functools.partial(GuidedPlanner, policy, planner=name, seed=args.seed) for name in args.guided
            ]
            scripted = [scripted_throughput(scenario, make, args.episodes, args.seed) for make in makers]
            rows.append((agents, ours, scripted))
            measured = ", ".join(
                f"{name} {value:.3f}" for name, value in zip(centralized, scripted, strict=True)
            )
            print(f"{agents} agents: policy {ours:.3f}, {measured}", flush=True)
    names = list(PUBLISHED) if args.maps is None or args.maps.name == "01-random.yaml" else []
    columns = [f"{meta['policy_config']['name']} (this run)", *centralized, *names]
    print("\n| agents | " + " | ".join(columns) + " |")
    print("|---" * (1 + len(columns)) + "|")
    for agents, ours, scripted in rows:
        values = [ours, *scripted, *(PUBLISHED[n].get(agents, float("nan")) for n in names)]
        print(f"| {agents} | " + " | ".join(f"{value:.3f}" for value in values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
