"""Planners and trained policies on the POGEMA benchmark's lifelong protocol: greedy, PIBT and its variants,
trained policies, beside the published Follower, MATS-LP and RHCR numbers.

Usage: .venv/bin/python benchmarks/planner_table.py [--sets random mazes warehouse movingai]
       [--agents 8 16 24 32 48 64] [--policies greedy pibt pibt-swap pretrained:NAME RUN_DIR ...]
       [--maps 128] [--seed 0] [--data DIR]
       .venv/bin/python benchmarks/planner_table.py --generated K ...   (tuning: K generated maps instead)

Protocol (the POGEMA benchmark's LMAPF sets: Skrynnik et al., ICLR 2025, arXiv 2407.14931; the configs of
github.com/CognitiveAISystems/pogema-benchmark): every map of 01-random.yaml (256 steps) and 02-mazes.yaml
(128 steps), with `--sets warehouse` of 03-warehouse.yaml (one 33 x 46 warehouse map, starts and goals drawn
from its `@` and `$` cells, 32-192 agents, 256 steps) and with `--sets movingai` of 04-movingai.yaml (the
benchmark's out-of-distribution set: 64 x 64 tiles of city maps, 64-256 agents, 256 steps). POGEMA's task of
seed 0 on each map (its starts, goals and lifelong goal streams, as `GridConfig(seed=0)` draws them), of seeds
0-127 on the warehouse's one map; soft collisions, lifelong (on_target restart), obs radius 5; avg_throughput
= arrivals / steps, averaged over the episodes. The map files are third-party data read by path
from --data (default ../shared/data/pogema-benchmark); a missing map file is reported in one line and its set
skipped. The published columns are `lmapf_protocol.PUBLISHED`. `--generated K` plays K maps the scenario
generators draw instead (random: 17-21 cells a side, density 0.1-0.3; mazes: 17-21 odd sides, the `maze`
generator with loops), seeds 10_000 + k: the set to tune planner options (or choose among trained policies) on
without touching the benchmark's maps.

A `--policies` entry that is not a scripted lifelong policy (`sim.policy_names.LIFELONG_POLICIES`) is a
trained policy (a run directory, a .ckpt file or pretrained:NAME): it reads the observation of the scenario
it was trained on (channels and neighbour lists) at the benchmark's radius 5, samples its actions, and plays
the very same tasks; it is decentralized, the planners are not.

A cell is the mean over the maps and the half-width of its 95% confidence interval (1.96 standard errors of
the per-map values): "mean ± half-width". The published cells are means.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from pathlib import Path

import numpy as np
from lmapf_protocol import (
    PUBLISHED,
    TrainedPolicy,
    centralized_throughputs,
    load_trained,
    mean_and_interval,
    protocol_scenario,
)

from scenarios.schema import MapSpec, ObservationSpec, OnTarget, Scenario
from sim import GridEnv, MapLayout
from sim.baselines import make_baseline
from sim.mapfiles import benchmark_map, read_benchmark_maps
from sim.maps import build_layout, layout_from_ascii
from sim.policy_names import GUIDABLE_PLANNERS, LIFELONG_POLICIES

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pogema-benchmark"


@dataclasses.dataclass(frozen=True)
class MapSet:
    """One of the benchmark's LMAPF map sets: its file, its section of the published results, the episode
    length and the agent counts the benchmark publishes."""

    file: str
    section: str
    steps: int
    agents: tuple[int, ...]
    task_seeds: int = 1  # POGEMA seeds 0..task_seeds-1 on each map


SETS = {
    "random": MapSet("01-random.yaml", "LMAPF 01-random", 256, (8, 16, 24, 32, 48, 64)),
    "mazes": MapSet("02-mazes.yaml", "LMAPF 02-mazes", 128, (8, 16, 24, 32, 48, 64)),
    "warehouse": MapSet("03-warehouse.yaml", "LMAPF 03-warehouse", 256, (32, 64, 96, 128, 160, 192), 128),
    "movingai": MapSet("04-movingai.yaml", "LMAPF 04-movingai", 256, (64, 128, 192, 256)),
}
DEFAULT_SETS = ("random", "mazes")
GENERATED_SETS = ("random", "mazes")  # the sets `generated_layouts` imitates
SHOWN = ("Follower", "MATS-LP", "RHCR")  # the published columns
GENERATED_SEED = 10_000


def benchmark_layouts(path: Path, limit: int) -> list[MapLayout]:
    """The first `limit` maps of a benchmark file, in sorted-name order, with their possible starts and
    goals where the map marks them."""
    names = sorted(read_benchmark_maps(str(path)))[:limit]
    return [layout_from_ascii(benchmark_map(str(path), name), name) for name in names]


def benchmark_episodes(path: Path, task_seeds: int, limit: int) -> tuple[list[MapLayout], list[int]]:
    """The first `limit` (map, task seed) pairs of a benchmark file, maps in sorted-name order, each map
    with seeds 0..task_seeds-1: one layout and one task seed per episode."""
    pairs = [(layout, seed) for layout in benchmark_layouts(path, limit) for seed in range(task_seeds)]
    pairs = pairs[:limit]
    return [layout for layout, _ in pairs], [seed for _, seed in pairs]


def generated_layouts(map_set: str, count: int) -> list[MapLayout]:
    """`count` maps of the scenario generators resembling a benchmark set (module docstring)."""
    layouts = []
    for k in range(count):
        rng = np.random.default_rng(GENERATED_SEED + k)
        if map_set == "random":
            side = tuple(int(v) for v in rng.integers(17, 22, size=2))
            spec = MapSpec(
                generator="random", height=side[0], width=side[1], density=float(rng.uniform(0.1, 0.3))
            )
        else:
            side = tuple(int(v) for v in 17 + 2 * rng.integers(0, 3, size=2))
            spec = MapSpec(
                generator="maze", height=side[0], width=side[1], loops=float(rng.uniform(0.2, 0.6))
            )
        layouts.append(build_layout(Scenario(map=spec), GENERATED_SEED + k))
    return layouts


def episode_env(
    layouts: list[MapLayout],
    agents: int,
    steps: int,
    observation: ObservationSpec | None = None,
    on_target: OnTarget = "restart",
    task_seeds: list[int] | None = None,
) -> GridEnv:
    """One environment per layout, each playing POGEMA's task of seed `task_seeds[k]` (default 0) on its
    layout (the benchmark's protocol; `on_target` "finish" for its one-shot variant), observed through
    `observation` (default: the obstacle, agent and goal channels at radius 5). The environments are
    independent: each plays as it would alone."""
    height, width = layouts[0].shape
    map_spec = MapSpec(width=width, height=height)
    scenario = protocol_scenario(layouts[0].name, map_spec, agents, steps, observation, on_target)
    seeds = [0] * len(layouts) if task_seeds is None else task_seeds
    return GridEnv(
        scenario, len(layouts), auto_reset=False, _layouts=lambda env, _seed: layouts[env], _fixed_seed=seeds
    )


@dataclasses.dataclass(frozen=True)
class GuidedPlayer:
    """A column of policy-guided PIBT (`marl.guided`): the planner preset `planner`, its candidate moves
    ordered by the trained policy's preferences. Centralized, whatever the policy."""

    planner: str
    guide: TrainedPolicy

    @property
    def label(self) -> str:
        return f"{self.planner} guided by {self.guide.label} (centralized)"


def throughputs(
    layouts: list[MapLayout],
    agents: int,
    steps: int,
    player: str | TrainedPolicy | GuidedPlayer,
    seed: int,
    task_seeds: list[int] | None = None,
) -> list[float]:
    """avg_throughput of one episode per layout (in layout order; POGEMA's task of `task_seeds[k]` on layout
    k, default 0) of the scripted policy named `player` (sim.policy_names.LIFELONG_POLICIES) or of a trained
    policy (its actions sampled with sampling seed `seed`, all layouts in one batch: each episode draws from
    its own stream, so it plays as it would alone) or of a guided planner."""
    tasks = [0] * len(layouts) if task_seeds is None else task_seeds
    if isinstance(player, TrainedPolicy):
        import torch

        from marl.evaluate import run_episodes

        env = episode_env(layouts, agents, steps, player.observation, task_seeds=tasks)
        limits = np.full(len(layouts), steps)
        metrics = run_episodes(env, player.policy, torch.device("cpu"), seed, seed=0, limits=limits)
        return [float(m["avg_throughput"]) for m in metrics]
    values = []
    # One at a time: a scripted policy's random draws depend on the batch.
    for layout, task in zip(layouts, tasks, strict=True):
        if isinstance(player, GuidedPlayer):
            from marl.guided import GuidedPlanner

            env = episode_env([layout], agents, steps, player.guide.observation, task_seeds=[task])
            make = functools.partial(GuidedPlanner, player.guide.policy, planner=player.planner, seed=seed)
        else:
            env = episode_env([layout], agents, steps, task_seeds=[task])
            make = functools.partial(make_baseline, player, seed=seed)
        values += centralized_throughputs(env, make)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets",
        nargs="+",
        default=list(DEFAULT_SETS),
        choices=list(SETS),
        help="map sets (default random mazes; movingai: the benchmark's out-of-distribution set)",
    )
    parser.add_argument(
        "--agents", type=int, nargs="+", help="agent counts (default: each set's published ones)"
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["greedy", "pibt", "pibt-swap"],
        help=f"scripted policies ({', '.join(LIFELONG_POLICIES)}) and trained ones (run directory, .ckpt or "
        "pretrained:NAME)",
    )
    parser.add_argument(
        "--guided",
        nargs="+",
        default=[],
        choices=GUIDABLE_PLANNERS,
        help="planners guided by each trained policy of --policies (centralized), each its own column",
    )
    parser.add_argument(
        "--maps", type=int, default=128, help="episodes per set: maps, or tasks on one map (default all 128)"
    )
    parser.add_argument("--generated", type=int, default=0, help="play K generated maps instead (tuning)")
    parser.add_argument("--seed", type=int, default=0, help="the policies' seed")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if args.generated and not set(args.sets) <= set(GENERATED_SETS):
        others = " ".join(sorted(set(args.sets) - set(GENERATED_SETS)))
        message = f"--generated plays generated {' and '.join(GENERATED_SETS)} maps only, not --sets {others}"
        print(f"planner_table: {message}", file=sys.stderr)
        return 2
    players: list[str | TrainedPolicy | GuidedPlayer] = []
    for name in args.policies:
        if name in LIFELONG_POLICIES:
            players.append(name)
            continue
        from marl.run_dir import CheckpointError
        from marl.threads import use_torch_threads

        use_torch_threads()
        try:
            players.append(load_trained(name))
        except CheckpointError as error:
            print(f"planner_table: --policies {name}: {error}", file=sys.stderr)
            return 2
    trained = [player for player in players if isinstance(player, TrainedPolicy)]
    players += [GuidedPlayer(planner, guide) for guide in trained for planner in args.guided]
    labels = [player if isinstance(player, str) else player.label for player in players]
    for map_set in args.sets:
        spec = SETS[map_set]
        file_name, section, steps = spec.file, spec.section, spec.steps
        task_seeds = None
        if args.generated:
            layouts, source = generated_layouts(map_set, args.generated), f"{args.generated} generated maps"
        else:
            path = args.data / file_name
            if not path.is_file():
                print(
                    f"planner_table: {path}: no such file (the benchmark maps are read by path)",
                    file=sys.stderr,
                )
                continue
            layouts, task_seeds = benchmark_episodes(path, spec.task_seeds, args.maps)
            maps = len({layout.name for layout in layouts})
            source = f"{maps} maps of {file_name}" + (
                f", {len(layouts)} tasks" if spec.task_seeds > 1 else ""
            )
        published = {} if args.generated else PUBLISHED[section]
        shown = [name for name in SHOWN if name in published]
        print(f"\n### {section}: {source}, {steps} steps, avg_throughput\n")
        print("| agents | " + " | ".join([*labels, *shown]) + " |")
        print("|---" * (1 + len(labels) + len(shown)) + "|")
        for agents in args.agents or spec.agents:
            cells, seconds = [], []
            for player in players:
                start = time.perf_counter()
                values = throughputs(layouts, agents, steps, player, args.seed, task_seeds)
                cells.append(mean_and_interval(values))
                seconds.append(time.perf_counter() - start)
            cells += [f"{published[name].get(agents, float('nan')):.3f}" for name in shown]
            timing = ", ".join(f"{name} {s:.1f} s" for name, s in zip(labels, seconds, strict=True))
            print(f"| {agents} | " + " | ".join(cells) + f" |  <!-- {timing} -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
