"""Training throughput (collection + update) of MAPPO on a scenario, in agent-steps per second.

Usage: .venv/bin/python benchmarks/bench_train.py [SCENARIO] [--updates U] [--set key=value ...]
       .venv/bin/python benchmarks/bench_train.py [SCENARIO] --against REV [--rounds R] [--this-set k=v] [...]

The settings are those `gridswarm train SCENARIO` uses (TrainConfig defaults <- the scenario's train block)
with --set overrides. One warm-up update (numba compilation, torch first calls) is excluded from the timing.
Prints the load average before and after: on a shared machine the numbers only mean something next to it.

`--against REV` measures the reference side by side in one run: REV (a git revision of this repository,
e.g. main; repeat the option for several) is extracted into a temporary directory, and R rounds alternate
between the references' code and this tree's, each a fresh process of this script; the fastest round of
each side counts (the same command moves by up to 2x from one minute to the next on a shared machine), and
the ratios are printed with the machine, load, date and commit. Agent-steps per CPU-second (the process's
own CPU time, one torch thread and the simulator on the calling thread) changes much less with the load
than wall-clock rates do.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import io
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = re.compile(
    r"([\d,]+) agent-steps/s \(collect ([\d,]+)/s, update ([\d,]+)/s\); ([\d,]+) per CPU-second"
)


def measure(scenario_name: str, updates: int, assignments: list[str]) -> str:
    """One measurement in this process; the result line (see RESULT)."""
    import torch

    import scenarios
    from marl.buffers import RolloutBuffer
    from marl.config import parse_assignments, resolve_config
    from marl.envs import make_training_envs
    from marl.rollout import collect, start_rollouts

    try:
        from marl.gae import compute_advantages
        from marl.learner import make_learner
        from marl.update import update
    except ImportError:  # --against a revision whose marl.train still held every phase
        from marl.train import compute_advantages, make_learner, update

    scenario = scenarios.load(scenario_name)
    config = resolve_config(scenario.train, {"device": "cpu", **parse_assignments(assignments)})
    torch.set_num_threads(config.torch_threads)  # as training sets it (this also runs older trees)
    device = torch.device("cpu")
    env = make_training_envs(scenario, config.num_envs, config.seed)
    learner = make_learner(config, env.obs_shape, env.num_actions, device)
    # --against a revision whose start_rollouts, collect and update take the device as an argument
    device_argument = (device,) if "device" in inspect.signature(collect).parameters else ()
    carry = start_rollouts(env, learner.policy, *device_argument, seed=config.seed)
    num_neighbours = env.neighbours.shape[-1] if config.scope == "local" else 0
    # an update over agent groups keeps each step's messages (trees without agent groups: no such key)
    kept = {"message_sizes": learner.policy.message_sizes} if getattr(config, "agent_groups", 1) > 1 else {}
    buffer = RolloutBuffer.allocate(
        config.rollout_length,
        env.num_envs,
        env.num_agents,
        env.obs_shape,
        carry.obs.dtype,
        config.chunk_length,
        num_neighbours,
        **kept,
    )
    timings = {"collect": 0.0, "update": 0.0}
    load_before = os.getloadavg()[0]
    for index in range(updates + 1):
        if index == 1:
            cpu_start = time.process_time()
        tick = time.perf_counter()
        carry, _ = collect(
            env, learner.policy, learner.value_norm, buffer, carry, learner.sampling, *device_argument
        )
        middle = time.perf_counter()
        compute_advantages(buffer, config.gamma, config.gae_lambda)
        policy, optimizer = learner.policy, learner.optimizer
        update(policy, optimizer, learner.value_norm, buffer, config, learner.shuffle, *device_argument)
        if index > 0:  # the first update compiles and warms up
            timings["collect"] += middle - tick
            timings["update"] += time.perf_counter() - middle
    cpu_seconds = time.process_time() - cpu_start
    steps = updates * config.rollout_length * env.num_envs * env.num_agents
    total = timings["collect"] + timings["update"]
    return (
        f"{scenario_name} {config.model} {config.scope} E={env.num_envs} N={env.num_agents} "
        f"T={config.rollout_length} chunk={config.chunk_length} epochs={config.epochs} "
        f"minibatches={config.num_minibatches} threads={config.torch_threads}: "
        f"{steps / total:,.0f} agent-steps/s (collect {steps / timings['collect']:,.0f}/s, "
        f"update {steps / timings['update']:,.0f}/s); {steps / cpu_seconds:,.0f} per CPU-second; "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )


def extract(revision: str, into: Path) -> None:
    """The files of `revision` of this repository under `into` (git archive; no shell)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def run_tree(
    tree: Path, args: argparse.Namespace, extra: list[str]
) -> tuple[float, float, float, float, str]:
    """(total, collect, update agent-steps/s, agent-steps per CPU-second, the line) of one fresh process
    measuring `tree`'s code (this script, run with `tree` first on the import path) with the --set
    assignments and `extra` ones."""
    command = [sys.executable, str(Path(__file__).resolve()), args.scenario]
    command += ["--updates", str(args.updates)]
    for assignment in [*args.assignments, *extra]:
        command += ["--set", assignment]
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    output = subprocess.run(command, cwd=tree, env=environment, check=True, capture_output=True, text=True)
    found = RESULT.search(output.stdout)
    if found is None:
        raise RuntimeError(f"{tree}: no result line in {output.stdout!r}")
    total, collect, update, per_cpu = (float(group.replace(",", "")) for group in found.groups())
    return total, collect, update, per_cpu, found.string.strip().splitlines()[-1]


def commit_of(revision: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision], check=True, capture_output=True, text=True
    ).stdout.strip()


def compare(args: argparse.Namespace) -> None:
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    references = ", ".join(f"{revision} ({commit_of(revision)})" for revision in args.against)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; date {datetime.datetime.now().isoformat(timespec='minutes')}; "
        f"this tree {commit_of('HEAD')}{' (uncommitted changes)' if dirty else ''} vs {references}; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-train-ref-") as temp:
        sides = []
        for index, revision in enumerate(args.against):
            extract(revision, Path(temp) / str(index))
            sides.append((revision, Path(temp) / str(index), []))
        sides.append(("this tree", ROOT, args.this_only))
        results: dict[str, list[tuple[float, float, float, float, str]]] = {}
        for round_index in range(args.rounds):
            for side, tree, extra in sides:
                result = run_tree(tree, args, extra)
                print(f"round {round_index + 1} {side}: {result[4]}", flush=True)
                results.setdefault(side, []).append(result)
    ours, cpu_ours = max(results["this tree"]), max(r[3] for r in results["this tree"])
    for revision in args.against:
        theirs, cpu_theirs = max(results[revision]), max(r[3] for r in results[revision])
        print(
            f"best of {args.rounds}: this tree {ours[0]:,.0f} agent-steps/s (collect {ours[1]:,.0f}/s, "
            f"update {ours[2]:,.0f}/s), {revision} {theirs[0]:,.0f} (collect {theirs[1]:,.0f}/s, update "
            f"{theirs[2]:,.0f}/s): {ours[0] / theirs[0]:.2f}x; per CPU-second {cpu_ours:,.0f} vs "
            f"{cpu_theirs:,.0f}: {cpu_ours / cpu_theirs:.2f}x; load average {os.getloadavg()[0]:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="bottleneck")
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--against",
        metavar="REV",
        action="append",
        default=[],
        help="measure git revision REV side by side (repeatable: every round runs each revision)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds with --against")
    parser.add_argument(
        "--this-set",
        dest="this_only",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --against: a setting for this tree's side only (one the reference lacks)",
    )
    args = parser.parse_args()
    args.against = list(dict.fromkeys(args.against))  # a revision named twice is measured once
    if args.against:
        compare(args)
    else:
        print(measure(args.scenario, args.updates, args.assignments))


if __name__ == "__main__":
    main()
