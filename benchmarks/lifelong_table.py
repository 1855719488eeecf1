"""The lifelong table of docs/results.md: a trained policy against scripted baselines (greedy, PIBT) and the
published POGEMA-benchmark numbers, on the benchmark's lifelong (LMAPF) Random protocol.

Usage: python benchmarks/lifelong_table.py CHECKPOINT [--episodes K] [--seed S] [--agents 8 16 32 64]
[--maps MAPS.yaml] [--steps 256] [--baselines greedy pibt] [--guided pibt] [--greedy-actions]. CHECKPOINT:
a run directory (its best, else newest checkpoint), a .ckpt file or pretrained:NAME. Another maps file of
the benchmark (e.g. 02-mazes.yaml, played for 128 steps: --steps 128) plays all of its maps; the published
numbers shown are those of the set the maps file names (01-random or 02-mazes).

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
the policy's column. The published columns are the benchmark's LMAPF results of that set
(`lmapf_protocol.PUBLISHED`: public repository CognitiveAISystems/pogema-benchmark, raw data, 128 runs per
cell).
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
from lmapf_protocol import PUBLISHED, centralized_throughputs, load_trained, protocol_scenario

from marl.evaluate import Progress, mean_metrics, run_episodes
from marl.guided import GuidedPlanner
from marl.run_dir import CheckpointError
from marl.threads import use_torch_threads
from scenarios.schema import MapSpec, ObservationSpec, Scenario
from sim.baselines import make_baseline
from sim.benchmark_maps import validation_random_maps, write_maps_yaml
from sim.env import GridEnv
from sim.policy_names import GUIDABLE_PLANNERS, LIFELONG_POLICIES

RANDOM_STEPS = 256


def benchmark_scenario(
    maps: Path, agents: int, observation: ObservationSpec, steps: int = RANDOM_STEPS
) -> Scenario:
    """The protocol's scenario over every map of the benchmark file `maps`, one drawn per episode seed."""
    map_spec = MapSpec(generator="benchmark", path=str(maps), name="*")
    return protocol_scenario(f"pogema-benchmark-{maps.stem}-{agents}", map_spec, agents, steps, observation)


def scripted_throughput(
    scenario: Scenario, make: Callable[[GridEnv], Callable[[], np.ndarray]], episodes: int, seed: int
) -> float:
    """The mean avg_throughput over the K episodes of the centralized policy `make(env)`."""
    return float(
        np.mean(centralized_throughputs(GridEnv(scenario, episodes, seed=seed, auto_reset=False), make))
    )


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
        "--steps", type=int, default=RANDOM_STEPS, help="episode length (the benchmark: 128 for mazes)"
    )
    parser.add_argument(
        "--baselines",
        nargs="+",
        choices=LIFELONG_POLICIES,
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
        trained = load_trained(args.checkpoint)
    except CheckpointError as error:
        print(f"lifelong_table: {error}", file=sys.stderr)
        return 2
    policy, observation = trained.policy, trained.observation
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
    published = PUBLISHED.get(f"LMAPF {maps.stem}", {})  # the regenerated maps are named 01-random.yaml
    columns = [f"{policy.config.name} (this run)", *centralized, *published]
    print("\n| agents | " + " | ".join(columns) + " |")
    print("|---" * (1 + len(columns)) + "|")
    for agents, ours, scripted in rows:
        values = [ours, *scripted, *(cells.get(agents, float("nan")) for cells in published.values())]
        print(f"| {agents} | " + " | ".join(f"{value:.3f}" for value in values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
