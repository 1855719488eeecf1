"""LaCAM and PIBT on the POGEMA benchmark's one-shot (MAPF) protocol, beside the published LaCAM.

Protocol (Skrynnik et al., "POGEMA: A Benchmark Platform for Cooperative Multi-Agent Pathfinding", ICLR
2025; the configs of github.com/CognitiveAISystems/pogema-benchmark): the maps of 01-random.yaml and
02-mazes.yaml, POGEMA's task of seed 0 on each, soft collisions, agents leaving at their goals
(on_target finish), 128 steps. CSR: the fraction of instances where every agent arrives within the limit;
makespan and SoC (first arrivals, averaged over the solved instances).

LaCAM (`sim.planners.lacam`) plans each instance whole and is scored by its paths (an agent leaves at its
first arrival, which only frees cells, so the rest of the plan stays valid); the paths are also replayed
in the simulator and must end with every agent arrived (checked). PIBT (`pibt` preset) plays the instance
step by step in GridEnv. Seconds are per instance, one thread. `--refine` runs LaCAM* (the search goes
on after the first solution, lowering its sum of loss, until the step limit). Usage: `python
benchmarks/mapf_table.py [--sets random mazes] [--maps 128] [--agents 8 16 32 64] [--step-limit N]
[--refine]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from planner_table import DEFAULT_DATA, benchmark_layouts, episode_env

from sim import GridEnv, MapLayout
from sim.actions import actions_of_moves
from sim.planners import make_planner
from sim.planners.lacam import lacam

SETS = {"random": ("01-random.yaml", "MAPF 01-random"), "mazes": ("02-mazes.yaml", "MAPF 02-mazes")}
STEPS = 128

# LaCAM's CSR and makespan in the benchmark's raw data (public repository
# CognitiveAISystems/pogema-benchmark), 128 runs per cell.
PUBLISHED_LACAM: dict[str, dict[str, dict[int, float]]] = {
    "MAPF 01-random": {
        "CSR": {8: 1.0, 16: 1.0, 24: 1.0, 32: 1.0, 48: 1.0, 64: 1.0},
        "makespan": {8: 25.359, 16: 28.0, 24: 29.562, 32: 30.664, 48: 32.859, 64: 36.898},
    },
    "MAPF 02-mazes": {
        "CSR": {8: 1.0, 16: 1.0, 24: 1.0, 32: 1.0, 48: 1.0, 64: 0.906},
        "makespan": {8: 26.984, 16: 30.867, 24: 33.0, 32: 36.086, 48: 42.562, 64: 59.148},
    },
}


def one_shot_env(layouts: list[MapLayout], agents: int) -> GridEnv:
    """One environment per layout with POGEMA's task of seed 0, agents leaving at their goals, reset."""
    env = episode_env(layouts, agents, STEPS, on_target="finish")
    env.reset()
    return env


def first_arrivals(paths: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """(N,) the first step at which each agent of `paths` (T+1, N, 2) stands on its goal."""
    arrived = (paths == goals[None]).all(axis=-1)  # (T+1, N)
    return arrived.argmax(axis=0)


def replays_to_the_goals(layout: MapLayout, paths: np.ndarray, arrivals: np.ndarray) -> bool:
    """Play the agents of `layout`'s task along `paths` up to their first arrivals in the simulator; True
    when every agent has arrived (left the map) at the end."""
    single = one_shot_env([layout], paths.shape[1])
    if not (single.positions[0] == paths[0]).all():
        raise AssertionError(f"{layout.name}: the replay starts elsewhere than the plan")
    for t in range(1, int(arrivals.max()) + 1):
        actions = actions_of_moves(paths[t] - paths[t - 1])  # (N,)
        single.step(np.where(single.active[0], actions, 0)[None])
    return not single.active[0].any()


def lacam_row(
    layouts: list[MapLayout], agents: int, step_limit: int, refine: bool = False
) -> dict[str, float]:
    env = one_shot_env(layouts, agents)
    solved, makespans, costs, seconds = [], [], [], []
    for e in range(env.num_envs):
        height, width = (int(v) for v in env.map_shapes[e])
        started = time.process_time()
        result = lacam(
            env.obstacles[e, :height, :width],
            env.positions[e],
            env.goals[e],
            step_limit=step_limit,
            refine=refine,
        )
        seconds.append(time.process_time() - started)
        if not result.solved:
            solved.append(False)
            continue
        arrivals = first_arrivals(result.paths, env.goals[e])
        ok = int(arrivals.max()) <= STEPS and replays_to_the_goals(layouts[e], result.paths, arrivals)
        solved.append(ok)
        if ok:
            makespans.append(int(arrivals.max()))
            costs.append(int(arrivals.sum()))
    return {
        "CSR": float(np.mean(solved)),
        "makespan": float(np.mean(makespans)) if makespans else float("nan"),
        "SoC": float(np.mean(costs)) if costs else float("nan"),
        "s": float(np.mean(seconds)),
    }


def pibt_row(layouts: list[MapLayout], agents: int) -> dict[str, float]:
    env = one_shot_env(layouts, agents)
    policy = make_planner("pibt", env, seed=0)
    costs = np.zeros(env.num_envs, np.int64)  # (E,) the sum of the arrival steps so far
    last = np.zeros(env.num_envs, np.int64)  # (E,) the latest arrival step so far
    metrics: list[dict | None] = [None] * env.num_envs
    started = time.process_time()
    for t in range(1, STEPS + 1):
        active = env.active.copy()
        info = env.step(policy())[4]
        arrived = (active & ~env.active).sum(axis=1)  # (E,) an agent leaves the map at its arrival
        costs += t * arrived
        last[arrived > 0] = t
        for e, found in enumerate(info["metrics"]):
            if metrics[e] is None:  # an ended episode reports again at every later step
                metrics[e] = found
        if all(m is not None for m in metrics):
            break
    done = [e for e, m in enumerate(metrics) if m is not None and m["CSR"] >= 1.0]
    return {
        "CSR": len(done) / env.num_envs,
        "makespan": float(np.mean(last[done])) if done else float("nan"),
        "SoC": float(np.mean(costs[done])) if done else float("nan"),
        "s": (time.process_time() - started) / env.num_envs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--agents", type=int, nargs="+", default=[8, 16, 24, 32, 48, 64])
    parser.add_argument("--maps", type=int, default=128, help="maps per set (default all 128)")
    parser.add_argument("--step-limit", type=int, default=20_000, help="LaCAM's constraints per instance")
    parser.add_argument(
        "--refine", action="store_true", help="LaCAM*: refine the sum of loss until the step limit"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    for map_set in args.sets:
        file_name, section = SETS[map_set]
        path = args.data / file_name
        if not path.is_file():
            print(f"mapf_table: {path}: no such file (the benchmark maps are read by path)", file=sys.stderr)
            continue
        layouts = benchmark_layouts(path, args.maps)
        published = PUBLISHED_LACAM[section]
        print(f"\n### {section}: {len(layouts)} maps of {file_name}, {STEPS} steps\n")
        columns = ("LaCAM CSR", "makespan", "SoC", "s", "PIBT CSR", "makespan", "SoC", "s")
        print("| agents | " + " | ".join(columns) + " | published LaCAM CSR | makespan |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for agents in args.agents:
            ours = lacam_row(layouts, agents, args.step_limit, args.refine)
            pibt = pibt_row(layouts, agents)
            cells = [f"{row[k]:.3f}" if k == "CSR" else f"{row[k]:.1f}" for row in (ours, pibt) for k in row]
            cells[3], cells[7] = f"{ours['s']:.3f}", f"{pibt['s']:.4f}"
            known = [
                f"{published[k][agents]:.3f}" if agents in published[k] else "" for k in ("CSR", "makespan")
            ]
            print(f"| {agents} | " + " | ".join(cells + known) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
