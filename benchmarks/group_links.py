"""How many neighbour links stay inside an agent group: spatial vs consecutive groups (marl.minibatch).

Usage: .venv/bin/python benchmarks/group_links.py [SCENARIO] [--groups G ...] [--chunks K] [--seed S]

One environment of the scenario takes K chunks of `chunk_length` (the scenario's train block) steps of
uniformly random moves; the rollout keeps what collection keeps for an update over agent groups (the cells
at each chunk's start, the neighbour lists at every step). For each G it prints the fraction of the
neighbour links (agent i lists agent j at step t) whose two agents share a group of that chunk: the links
whose gradient path the update keeps. Random moves spread agents less than a trained policy might; over
a chunk of 8 steps an agent moves at most 8 cells either way.
"""

from __future__ import annotations

import argparse

import numpy as np

import scenarios
from marl.buffers import RolloutBuffer
from marl.config import resolve_config
from marl.minibatch import MinibatchLayout
from sim.env import GridEnv


def random_walk(scenario_name: str, chunks: int, chunk_length: int, seed: int) -> RolloutBuffer:
    """A rollout of one environment under random moves holding only its chunk-start cells and its
    neighbour lists (observations 1 x 1 x 1, messages of width 1)."""
    env = GridEnv(scenarios.load(scenario_name), 1, seed=seed, obs_dtype=np.uint8)
    env.reset(seed=seed)
    steps, num_agents = chunks * chunk_length, env.num_agents
    buffer = RolloutBuffer.allocate(
        steps, 1, num_agents, (1, 1, 1), np.uint8, chunk_length, env.neighbours.shape[-1], (1, 1, 1)
    )
    moves = np.random.default_rng(seed)
    for t in range(steps):
        if t % chunk_length == 0:
            buffer.chunk_positions[t // chunk_length] = env.positions
        buffer.neighbours[t] = env.neighbours
        env.step(moves.integers(0, env.num_actions, (1, num_agents)))
    return buffer


def links_inside(buffer: RolloutBuffer, groups: int, grouping: str) -> float:
    """The fraction of the rollout's neighbour links that join two agents of one group."""
    crossing = MinibatchLayout.of(buffer, groups, grouping).crossing_links(buffer.neighbours)
    return 1.0 - float(crossing.sum()) / float((buffer.neighbours >= 0).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="swarm-2k")
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 5, 8, 16, 40])
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chunk_length = resolve_config(scenarios.load(args.scenario).train, {}).chunk_length
    buffer = random_walk(args.scenario, args.chunks, chunk_length, args.seed)
    print(f"{args.scenario}: {buffer.shape[2]} agents, {args.chunks} chunks of {chunk_length} random steps")
    for groups in args.groups:
        spatial, consecutive = (links_inside(buffer, groups, kind) for kind in ("spatial", "consecutive"))
        print(f"G={groups}: links inside a group: spatial {spatial:.3f}, consecutive {consecutive:.3f}")


if __name__ == "__main__":
    main()
