"""Closed-loop check of an exported policy: torch vs compiled C, and the effect of dropped radio messages.

    .venv/bin/python benchmarks/bench_deploy.py [--checkpoint RUN_DIR_OR_FILE] [--scenario NAME_OR_YAML]
        [--episodes 100] [--drop 0.1] [--neighbours 8] [--radius CELLS] [--greedy]

Every agent runs its own copy of the step (decentralized) and hears the int8 memories of its K nearest
neighbours within --radius cells (default: the whole map for a global-scope policy, the scenario's
neighbour_radius for a local-scope one, as each was trained); actions are sampled from the policy with the
same uniform numbers in every row (--greedy: argmax); one episode per environment, same seeds for every
row. Prints a markdown table for docs/deploy.md. Without
--checkpoint a freshly initialized srmt drone policy is used (its success rate says nothing about a trained
policy; the torch/C equality and the drop plumbing are what it shows).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import memory
from deploy.agent import AgentStep
from deploy.cbuild import CFunction, build
from deploy.ccompile import compile_module
from deploy.rollout import WHOLE_MAP, decentralized_rollout, per_sample, radio_range
from deploy.verify import torch_runner
from marl.run_dir import load_policy
from scenarios.loader import load, loads

SMALL = """
name: deploy-small
map: {generator: random, width: 8, height: 8, density: 0.1}
agents: {count: 4}
dynamics: {collision_system: soft, on_target: finish, max_episode_steps: 24}
observation: {radius: 5}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--scenario")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--drop", type=float, default=0.1)
    parser.add_argument("--neighbours", type=int, default=8)
    parser.add_argument("--radius", type=float, help="radio range in cells (default: as trained)")
    parser.add_argument("--greedy", action="store_true", help="argmax actions instead of sampled ones")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scenario = load(args.scenario) if args.scenario else loads(SMALL)
    if args.checkpoint:
        policy, _ = load_policy(args.checkpoint)
    else:
        radius = scenario.observation.radius
        policy = memory.make_policy(
            "srmt", (3, 2 * radius + 1, 2 * radius + 1), preset="drone", scope="local", seed=args.seed
        )
    step = AgentStep(policy, args.neighbours)
    radius = radio_range(step, scenario) if args.radius is None else args.radius
    program = compile_module(step, step.example_inputs(), step.output_names)
    with tempfile.TemporaryDirectory() as build_dir:
        source = Path(build_dir) / "policy.c"
        source.write_text("#include <math.h>\n#include <stdint.h>\n" + program.source)
        function = CFunction(
            build([source], source.with_suffix(".so")), program.function, program.inputs, program.outputs
        )
        runners = {"torch": torch_runner(step), "C": per_sample(function, [s.name for s in program.inputs])}
        print(
            f"{platform.node()} {platform.machine()}, {datetime.date.today()}, policy "
            f"{args.checkpoint or 'fresh srmt drone'}, scenario {scenario.name}, {args.episodes} episodes, "
            f"{'greedy' if args.greedy else 'sampled'} actions, K = {args.neighbours}, radio range "
            f"{'whole map' if radius == WHOLE_MAP else f'{radius:g} cells'}"
        )
        print("| runner | dropped messages | success rate (CSR=1) | mean ISR | same actions as torch | s |")
        print("|---|---|---|---|---|---|")
        baseline = None
        for drop in (0.0, args.drop):
            for name, run in runners.items():
                start = time.perf_counter()
                result = decentralized_rollout(
                    step, run, scenario, args.episodes, args.seed, drop, greedy=args.greedy, radius=radius
                )
                seconds = time.perf_counter() - start
                isr = np.mean([m["ISR"] for m in result.metrics])
                if name == "torch":
                    baseline = result.actions
                same = np.mean(result.actions == baseline) if result.actions.shape == baseline.shape else 0.0
                print(
                    f"| {name} | {100 * drop:.0f}% | {result.success_rate:.2f} | {isr:.3f} | {same:.4f} "
                    f"| {seconds:.1f} |"
                )


if __name__ == "__main__":
    main()
