"""Inference speed of the SRMT policy: agent-steps/s by preset, agent count and memory scope.

    .venv/bin/python benchmarks/bench_memory.py [--threads 2] [--quick]

Prints a Markdown table (results go to docs/benchmarks.md, section "## memory") and then two checks:
local scope is linear in the agents (10x agents costs <= 12x time), and the lmapf preset at >= 4,096 agents
reaches a stated share of the float32 FLOP rate of a large matmul measured in the same run. FLOPs are
counted analytically (`srmt_step_flops`, multiply-add = 2 FLOPs) and cross-checked against torch's
FlopCounterMode (which counts Linear and Conv2d but not CPU scaled-dot-product attention, so it reads lower
by the attention products). One env holds all N agents; local scope reads K = 8 neighbours.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

import memory
from memory.config import PolicyConfig

NEIGHBOURS = 8
SMALL_STEP_FLOPS = 5e9  # steps below this are timed with 1 and with 2 threads
OBS_SHAPES = {"bottleneck": (3, 5, 5), "drone": (3, 5, 5), "lmapf": (3, 11, 11)}
AGENT_COUNTS = (64, 1024, 10_000)
# At 10k agents lmapf costs 2.4 TFLOP per step even with local scope (the ResNet encoder alone is 1.4),
# one to two minutes per step on 2 cores; global scope adds N^2 cross-attention (~4 TFLOP more).
SKIPPED = {
    ("lmapf", "global", 10_000): "2.4 TFLOP encoder+core plus ~4 TFLOP global attention per step",
    ("lmapf", "local", 10_000): "2.4 TFLOP per step: minutes on 2 cores",
}


@dataclass(frozen=True)
class Case:
    preset: str
    scope: str
    num_envs: int
    num_agents: int


def srmt_step_flops(config: PolicyConfig, num_agents: int) -> int:
    """Multiply-add FLOPs (x2) of one SRMT step per agent; num_agents = the env size (global scope)."""
    C, F, _ = config.obs_shape
    D, f, h, A = config.width, config.filters, config.history_length, config.num_actions
    L = h + 2  # memory, history, current
    cells = F * F
    pool = num_agents if config.scope == "global" else NEIGHBOURS + 1
    # global: each memory's keys/values are projected once per env; local: once per reading agent
    key_value_rows = 1 if config.scope == "global" else pool
    encoder = 9 * cells * (C * f + 2 * config.res_blocks * f * f) + f * cells * D
    self_attention = L * D * D * 4 + 2 * L * L * D
    cross_attention = L * D * D * 2 + key_value_rows * 2 * D * D + 2 * L * pool * D
    mlp = 2 * L * D * config.mlp_ratio * D
    heads = D * D + D * A + 3 * D * D + D  # memory head, policy head, value head
    return 2 * (encoder + config.layers * (self_attention + cross_attention + mlp) + heads)


def matmul_flops_per_second(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def inputs(case: Case, obs_shape: tuple[int, int, int]):
    generator = torch.Generator().manual_seed(0)
    E, N = case.num_envs, case.num_agents
    obs = (torch.rand(E, N, *obs_shape, generator=generator) < 0.3).float()
    neighbours = torch.randint(0, N, (E, N, NEIGHBOURS), generator=generator)
    return obs, neighbours


def best_time(policy: memory.SwarmPolicy, case: Case, budget_s: float, threads: int) -> tuple[float, int]:
    """(seconds per step, threads) of the faster of 1 and `threads` torch threads. Small steps are
    often faster on one: on a busy machine every parallel op waits for its slowest thread."""
    results = []
    for count in sorted({1, threads}):
        torch.set_num_threads(count)
        results.append((time_steps(policy, case, budget_s)[0], count))
    torch.set_num_threads(threads)
    return min(results)


def time_steps(policy: memory.SwarmPolicy, case: Case, budget_s: float) -> tuple[float, int]:
    """Seconds per step: the fastest of up to 10 timed steps (within budget_s) after a warm-up step that
    resets. The fastest, not the mean: on a shared machine the slower ones measure the other jobs."""
    obs, neighbours = inputs(case, policy.config.obs_shape)
    E, N = case.num_envs, case.num_agents
    state = policy.initial_state(E, N)
    no_reset = torch.zeros(E, N, dtype=torch.bool)
    _, _, state = policy.step(obs, state, ~no_reset, neighbours)
    times: list[float] = []
    while not times or (len(times) < 10 and sum(times) < budget_s):
        start = time.perf_counter()
        _, _, state = policy.step(obs, state, no_reset, neighbours)
        times.append(time.perf_counter() - start)
    return min(times), len(times)


def interleaved_growth(policy: memory.SwarmPolicy, small: Case, large: Case, rounds: int = 4) -> float:
    """Best step time of `large` over best of `small`, timed alternately so both see the same load."""
    best = {small: float("inf"), large: float("inf")}
    for _ in range(rounds):
        for case in best:
            best[case] = min(best[case], time_steps(policy, case, budget_s=0.0)[0])
    return best[large] / best[small]


def counted_flops(policy: memory.SwarmPolicy, case: Case) -> int:
    obs, neighbours = inputs(case, policy.config.obs_shape)
    state = policy.initial_state(case.num_envs, case.num_agents)
    no_reset = torch.zeros(case.num_envs, case.num_agents, dtype=torch.bool)
    with FlopCounterMode(display=False) as counter:
        policy.step(obs, state, no_reset, neighbours)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="64 and 1,024 agents only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.inference_mode().__enter__()
    peak = matmul_flops_per_second()
    print(
        f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}; "
        f"float32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s\n"
    )
    print("| preset | scope | agents | threads | ms/step | agent-steps/s | GFLOP/step | GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    seconds: dict[tuple[str, str, int], float] = {}
    counts = AGENT_COUNTS[:2] if args.quick else AGENT_COUNTS
    for preset, obs_shape in OBS_SHAPES.items():
        for scope in ("global", "local"):
            policy = memory.make_policy("srmt", obs_shape, preset=preset, scope=scope, seed=0).eval()
            for agents in counts:
                if (preset, scope, agents) in SKIPPED:
                    reason = SKIPPED[preset, scope, agents]
                    print(f"| {preset} | {scope} | {agents:,} | skipped: {reason} |||||")
                    continue
                flops = srmt_step_flops(policy.config, agents) * agents
                case = Case(preset, scope, 1, agents)
                if flops < SMALL_STEP_FLOPS:
                    per_step, threads = best_time(policy, case, budget_s=5.0, threads=args.threads)
                else:
                    per_step, threads = time_steps(policy, case, budget_s=5.0)[0], args.threads
                seconds[preset, scope, agents] = per_step
                print(
                    f"| {preset} | {scope} | {agents:,} | {threads} | {per_step * 1e3:.1f} | "
                    f"{agents / per_step:,.0f} | {flops / 1e9:.2f} | {flops / per_step / 1e9:.1f} |"
                )
    print("\nLocal scope, growth of the step time with the agents (interleaved, best of 4 rounds, 1 thread):")
    torch.set_num_threads(1)
    for preset in ("bottleneck", "drone"):
        policy = memory.make_policy("srmt", OBS_SHAPES[preset], preset=preset, scope="local", seed=0).eval()
        for fewer, more in itertools.pairwise(counts):
            small, large = Case(preset, "local", 1, fewer), Case(preset, "local", 1, more)
            growth = interleaved_growth(policy, small, large)
            print(f"  {preset}: {fewer:,} -> {more:,} agents (x{more / fewer:.1f}): x{growth:.1f} time")
    torch.set_num_threads(args.threads)
    lmapf = memory.make_policy("srmt", OBS_SHAPES["lmapf"], preset="lmapf", scope="global", seed=0).eval()
    case = Case("lmapf", "global", 64, 64)  # the paper's LMAPF: envs of 64 agents, 4,096 agents in all
    one_env = Case("lmapf", "global", 1, 64)  # FLOPs are linear in the envs: count one
    # the machine is shared: measure the matmul rate right before and after, and compare with their mean
    peak_before = matmul_flops_per_second()
    per_step, steps = time_steps(lmapf, case, budget_s=30.0)
    peak = (peak_before + matmul_flops_per_second()) / 2
    flops = srmt_step_flops(lmapf.config, 64) * 64 * 64
    print(
        f"\nlmapf, 64 envs x 64 agents, global: {per_step:.2f} s/step ({steps} timed), "
        f"{flops / 1e9:.0f} GFLOP/step analytic, {counted_flops(lmapf, one_env) * 64 / 1e9:.0f} by "
        f"FlopCounterMode; "
        f"{flops / per_step / 1e9:.1f} GFLOP/s = {100 * flops / per_step / peak:.0f}% of the matmul rate "
        f"({peak / 1e9:.1f} GFLOP/s around it)"
    )


if __name__ == "__main__":
    main()
