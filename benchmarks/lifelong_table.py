"""A trained policy against the shortest-path greedy baseline and the published POGEMA-benchmark numbers,
on the benchmark's lifelong (LMAPF) Random protocol.

Usage: python benchmarks/lifelong_table.py RUN_DIR_OR_CHECKPOINT [--episodes K] [--seed S]
       [--agents 8 16 32 64] [--maps MAPS.yaml] [--greedy-actions]

Protocol (Skrynnik et al., "POGEMA: A Benchmark Platform for Cooperative Multi-Agent Pathfinding", ICLR
2025): the 128 validation maps of the Random set (one drawn per episode seed), soft collisions, lifelong
(on_target restart), 256 steps, obs radius 5; avg_throughput = arrivals / 256. The maps are regenerated
with the benchmark's published generator (`sim.benchmark_maps`, identical to its `01-random.yaml`);
`--maps` reads a `maps.yaml` file instead. The policy and greedy play the very same K episodes per agent
count (GridEnv(scenario, K, seed=S), one episode per environment); the policy samples its actions
(`--greedy-actions` takes the argmax instead) and reads the observation channels of the scenario it was
trained on. The published columns are the benchmark's LMAPF Random results (public repository
Cognitive-AI-Systems/pogema-benchmark, raw data, 128 runs per cell).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import scenarios
from marl.evaluate import Progress, mean_metrics, run_episodes
from marl.run_dir import CheckpointError
from marl.threads import use_torch_threads
from marl.train import load_policy
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim.baselines import GreedyPolicy
from sim.benchmark_maps import validation_random_maps, write_maps_yaml
from sim.env import GridEnv

# The benchmark's LMAPF Random avg_throughput per agent count (its raw data, 128 runs per cell).
PUBLISHED = {
    "Follower": {8: 0.589, 16: 1.114, 32: 1.801, 64: 2.416},
    "MATS-LP": {8: 0.596, 16: 1.143, 32: 1.872, 64: 2.381},
    "QPLEX": {8: 0.574, 16: 1.043, 32: 1.495, 64: 1.336},
    "RHCR": {8: 0.625, 16: 1.251, 32: 2.286, 64: 3.819},
}


def benchmark_scenario(maps: Path, agents: int, channels: tuple[str, ...]) -> Scenario:
    return Scenario(
        name=f"pogema-benchmark-random-{agents}",
        map=MapSpec(generator="benchmark", path=str(maps), name="validation-random-seed-*"),
        agents=AgentsSpec(count=agents),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart", max_episode_steps=256),
        observation=ObservationSpec(radius=5, channels=channels),
    )


def greedy_throughput(scenario: Scenario, episodes: int, seed: int) -> float:
    env = GridEnv(scenario, episodes, seed=seed, auto_reset=False)
    env.reset()
    policy = GreedyPolicy(env, seed=seed)
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
        "checkpoint", type=Path, help="a run directory (its best, else newest checkpoint) or .ckpt"
    )
    parser.add_argument("--episodes", type=int, default=64, help="episodes per agent count (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default 0)")
    parser.add_argument(
        "--agents", type=int, nargs="+", default=[8, 16, 32, 64], help="agent counts (default 8 16 32 64)"
    )
    parser.add_argument(
        "--maps",
        type=Path,
        help="a POGEMA-benchmark maps.yaml with the validation-random-seed-* maps "
        "(default: regenerated with the benchmark's generator)",
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
    channels = scenarios.load(meta["scenario"]).observation.channels  # what the policy was trained to read
    with tempfile.TemporaryDirectory(prefix="lifelong-maps-") as scratch:
        maps = args.maps or write_maps_yaml(Path(scratch) / "01-random.yaml", validation_random_maps())
        rows = []
        for agents in args.agents:
            scenario = benchmark_scenario(maps, agents, channels)
            ours = policy_throughput(scenario, policy, args.episodes, args.seed, args.greedy_actions)
            greedy = greedy_throughput(scenario, args.episodes, args.seed)
            rows.append((agents, ours, greedy))
            print(f"{agents} agents: policy {ours:.3f}, greedy {greedy:.3f}", flush=True)
    names = list(PUBLISHED)
    print(f"\n| agents | {meta['policy_config']['name']} (this run) | greedy | " + " | ".join(names) + " |")
    print("|---" * (3 + len(names)) + "|")
    for agents, ours, greedy in rows:
        published = " | ".join(f"{PUBLISHED[n].get(agents, float('nan')):.3f}" for n in names)
        print(f"| {agents} | {ours:.3f} | {greedy:.3f} | {published} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
