"""Recording cost: GridEnv steps with and without `sim.episodes.Recorder` (random actions).

.venv/bin/python benchmarks/bench_episodes.py [--agents 1024] [--size 128] [--steps 512]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import scenarios
from sim.env import GridEnv
from sim.episodes import Recorder


def run(env: GridEnv, stepper, steps: int, seed: int) -> float:
    """Seconds per step of `stepper(actions)` over `steps` random-action steps."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 5, (steps, env.num_envs, env.num_agents))
    start = time.perf_counter()
    for t in range(steps):
        stepper(actions[t])
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1024)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--episode-steps", type=int, default=256)
    parser.add_argument("--flush-every", type=int, default=64)
    args = parser.parse_args()
    scenario = scenarios.loads(
        f"name: bench\nmap: {{generator: random, width: {args.size}, height: {args.size}, density: 0.2}}\n"
        f"agents: {{count: {args.agents}}}\n"
        f"dynamics: {{max_episode_steps: {args.episode_steps}, on_target: restart}}\n"
    )
    env = GridEnv(scenario, num_envs=args.envs, seed=0)
    env.reset()
    run(env, env.step, 8, 1)  # compile
    plain = run(env, env.step, args.steps, 2)
    directory = Path(tempfile.mkdtemp())
    try:
        recorder = Recorder(env, directory / "bench.zarr", flush_every=args.flush_every)
        recorder.reset()
        recorded = run(env, recorder.step, args.steps, 2)
        recorder.close()
        episodes = len(recorder.finished_ids)
    finally:
        shutil.rmtree(directory)
    print(
        f"agents={args.agents} map={args.size}x{args.size} envs={args.envs} steps={args.steps} "
        f"episode_steps={args.episode_steps} flush_every={args.flush_every} episodes_written={episodes}"
    )
    print(f"step without recorder: {plain * 1e3:.3f} ms")
    print(f"step with recorder:    {recorded * 1e3:.3f} ms  (+{(recorded / plain - 1) * 100:.1f}%)")


if __name__ == "__main__":
    main()
