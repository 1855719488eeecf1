"""Recording cost: GridEnv steps with and without `sim.episodes.Recorder` (random actions).

Two identical envs (same scenario and seed) are stepped in alternating blocks, one bare and one through a
Recorder, so load changes on a shared machine hit both alike. Also reported: the time spent inside
`Recorder.step` outside `env.step` (the copies and queueing the caller pays directly).

    .venv/bin/python benchmarks/bench_episodes.py [--agents 1024] [--size 128] [--blocks 8]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import scenarios
from sim.actions import NUM_ACTIONS
from sim.env import GridEnv
from sim.episodes import Recorder


def timed_block(stepper, actions: np.ndarray) -> float:
    start = time.perf_counter()
    for step_actions in actions:
        stepper(step_actions)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1024)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--block-steps", type=int, default=64)
    parser.add_argument("--episode-steps", type=int, default=256)
    parser.add_argument("--flush-every", type=int, default=64)
    parser.add_argument("--no-fsync", action="store_true", help="Recorder(durable=False)")
    args = parser.parse_args()
    scenario = scenarios.loads(
        f"name: bench\nmap: {{generator: random, width: {args.size}, height: {args.size}, density: 0.3}}\n"
        f"agents: {{count: {args.agents}}}\n"
        f"dynamics: {{max_episode_steps: {args.episode_steps}, on_target: restart}}\n"
    )
    bare, recorded_env = (GridEnv(scenario, num_envs=args.envs, seed=0) for _ in range(2))
    rng = np.random.default_rng(0)
    shape = (args.block_steps, args.envs, args.agents)
    directory = Path(tempfile.mkdtemp())
    inner = [0.0]

    def timed_env_step(actions: np.ndarray, step=recorded_env.step) -> object:
        start = time.perf_counter()
        result = step(actions)
        inner[0] += time.perf_counter() - start
        return result

    try:
        bare.reset()
        recorder = Recorder(
            recorded_env, directory / "bench.zarr", flush_every=args.flush_every, durable=not args.no_fsync
        )
        recorder.reset()
        timed_block(bare.step, rng.integers(0, NUM_ACTIONS, shape))  # compile
        recorded_env.step = timed_env_step
        bare_time = recorded_time = 0.0
        for _ in range(args.blocks):
            actions = rng.integers(0, NUM_ACTIONS, shape)
            bare_time += timed_block(bare.step, actions)
            recorded_time += timed_block(recorder.step, actions)
        start = time.perf_counter()
        recorder.close()
        drain = time.perf_counter() - start
        episodes = len(recorder.finished_ids)
    finally:
        shutil.rmtree(directory)
    steps = args.blocks * args.block_steps
    per_step = {"bare": bare_time / steps, "recorded": recorded_time / steps}
    outside = (recorded_time - inner[0]) / steps
    print(
        f"agents={args.agents} map={args.size}x{args.size} envs={args.envs} steps={steps} "
        f"episode_steps={args.episode_steps} flush_every={args.flush_every} fsync={not args.no_fsync} "
        f"episodes_written={episodes}"
    )
    print(f"env step, bare:              {per_step['bare'] * 1e3:.3f} ms")
    print(
        f"env step, through Recorder:  {per_step['recorded'] * 1e3:.3f} ms "
        f"({(per_step['recorded'] / per_step['bare'] - 1) * 100:+.1f}%)"
    )
    print(
        f"Recorder.step outside env:   {outside * 1e3:.3f} ms "
        f"({outside / per_step['bare'] * 100:.1f}% of bare)"
    )
    print(f"close() drain of the I/O queue: {drain * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
