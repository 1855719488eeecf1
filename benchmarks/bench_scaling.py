"""Weak scaling of `marl.train` from 1 to R ranks: every rank runs the same E environments, so R ranks do
R times the work per update; the table gives agent-steps/s over all ranks and the split of each update into
rollout, update (forward/backward) and communication.

    .venv/bin/python benchmarks/bench_scaling.py --ranks 1 2       # launches mpiexec itself

Per-rank timings come from wrapping marl.train's collect and update and hpc's Allreduce calls.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(updates: int, num_envs: int, scenario: str) -> None:
    import numpy as np

    import hpc
    import marl.train as train_module
    import scenarios
    from marl.config import TrainConfig
    from marl.envs import make_training_envs

    comm = hpc.get_comm()
    seconds = {"rollout": 0.0, "update": 0.0, "communication": 0.0}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - started

        return wrapper

    train_module.collect = timed("rollout", train_module.collect)
    train_module.update = timed("update", train_module.update)
    for name in ("allreduce_mean_", "allreduce_sum_numpy", "allreduce_max_numpy", "allgather_numpy"):
        setattr(comm, name, timed("communication", getattr(comm, name)))
    scenario_obj = scenarios.load(scenario)
    config = TrainConfig(
        model="gru",
        num_envs=num_envs,
        rollout_length=32,
        chunk_length=8,
        epochs=1,
        num_minibatches=2,
        device="cpu",
        eval_episodes=0,
        checkpoint_every=10**6,
        total_agent_steps=updates * 32 * num_envs * scenario_obj.agents.count * comm.size,
    )
    env = make_training_envs(scenario_obj, num_envs, config.seed)
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        train_module.train(env, config, Path(run_dir), echo=lambda line: None, comm=comm)
        wall = time.perf_counter() - started
    seconds["update"] -= seconds["communication"]  # the gradient Allreduce runs inside update
    totals = comm.allgather_numpy(np.array([wall, *seconds.values()]))
    if comm.is_root:
        agent_steps = config.total_agent_steps
        print(
            json.dumps(
                {
                    "ranks": comm.size,
                    "agent_steps": agent_steps,
                    "wall_s": float(totals[:, 0].max()),
                    "rate": agent_steps / float(totals[:, 0].max()),
                    **{name: float(totals[:, i + 1].mean()) / updates for i, name in enumerate(seconds)},
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--updates", type=int, default=6)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--scenario", default="random")
    parser.add_argument(
        "--threads-per-rank",
        type=int,
        default=1,
        help="numba threads of each rank's simulator (ranks x threads should fit the cores)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.updates, args.num_envs, args.scenario)
        return
    rows = []
    for ranks in args.ranks:
        command = [
            sys.executable,
            __file__,
            "--worker",
            "--updates",
            str(args.updates),
            "--num-envs",
            str(args.num_envs),
            "--scenario",
            args.scenario,
        ]
        if ranks > 1:
            command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), *command]
        threads = str(args.threads_per_rank)
        env = {**os.environ, "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT, env=env).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    base = rows[0]["rate"]
    print(
        "| ranks | agent-steps | agent-steps/s | speed-up | rollout s/update | update s/update "
        "| comm s/update |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['ranks']} | {row['agent_steps']:,} | {row['rate']:,.0f} | {row['rate'] / base:.2f}x | "
            f"{row['rollout']:.3f} | {row['update']:.3f} | {row['communication']:.4f} |"
        )


if __name__ == "__main__":
    main()
