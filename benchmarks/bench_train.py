"""Training throughput (collection + update) of MAPPO on a scenario, in agent-steps per second.

Usage: .venv/bin/python benchmarks/bench_train.py [SCENARIO] [--updates U] [--set key=value ...]
The settings are those `gridswarm train SCENARIO` uses (TrainConfig defaults <- the scenario's train block)
with --set overrides. One warm-up update (numba compilation, torch first calls) is excluded from the timing.
Prints the load average before and after: on a shared machine the numbers only mean something next to it.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import scenarios
from marl.buffers import RolloutBuffer
from marl.config import parse_assignments, resolve_config
from marl.envs import make_training_envs
from marl.rollout import collect, start_rollouts
from marl.train import compute_advantages, make_learner, update


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?", default="bottleneck")
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    scenario = scenarios.load(args.scenario)
    config = resolve_config(scenario.train, {"device": "cpu", **parse_assignments(args.assignments)})
    torch.set_num_threads(config.torch_threads)
    device = torch.device("cpu")
    env = make_training_envs(scenario, config.num_envs, config.seed)
    learner = make_learner(config, env.obs_shape, env.num_actions, device)
    carry = start_rollouts(env, learner.policy, device, seed=config.seed)
    num_neighbours = env.neighbours.shape[-1] if config.scope == "local" else 0
    buffer = RolloutBuffer.allocate(
        config.rollout_length,
        env.num_envs,
        env.num_agents,
        env.obs_shape,
        carry.obs.dtype,
        config.chunk_length,
        num_neighbours,
    )
    timings = {"collect": 0.0, "update": 0.0}
    load_before = os.getloadavg()[0]
    for index in range(args.updates + 1):
        tick = time.perf_counter()
        carry, _ = collect(env, learner.policy, learner.value_norm, buffer, carry, learner.sampling, device)
        middle = time.perf_counter()
        compute_advantages(buffer, config.gamma, config.gae_lambda)
        update(learner.policy, learner.optimizer, learner.value_norm, buffer, config, learner.shuffle, device)
        if index > 0:  # the first update compiles and warms up
            timings["collect"] += middle - tick
            timings["update"] += time.perf_counter() - middle
    steps = args.updates * config.rollout_length * env.num_envs * env.num_agents
    total = timings["collect"] + timings["update"]
    print(
        f"{args.scenario} {config.model} {config.scope} E={env.num_envs} N={env.num_agents} "
        f"T={config.rollout_length} chunk={config.chunk_length} epochs={config.epochs} "
        f"minibatches={config.num_minibatches} threads={config.torch_threads}: "
        f"{steps / total:,.0f} agent-steps/s (collect {steps / timings['collect']:,.0f}/s, "
        f"update {steps / timings['update']:,.0f}/s); load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
