"""The POGEMA benchmark's lifelong (LMAPF) protocol, shared by the benchmark tables (lifelong_table.py,
planner_table.py, swarm_table.py): the published results, the protocol's scenario, trained policies read as
the benchmark observes, and the play of a centralized policy.

Protocol (Skrynnik et al., "POGEMA: A Benchmark Platform for Cooperative Multi-Agent Pathfinding", ICLR
2025, arXiv 2407.14931; the configs of github.com/CognitiveAISystems/pogema-benchmark): soft collisions,
lifelong (on_target restart), obs radius 5, 256 steps on the Random, Warehouse and MovingAI sets and 128 on
the Mazes set; avg_throughput = arrivals / steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, OnTarget, Scenario
from sim import GridEnv

RADIUS = 5

# avg_throughput per set, method and agent count: the benchmark's raw data (public repository
# CognitiveAISystems/pogema-benchmark), 128 runs per cell.
PUBLISHED: dict[str, dict[str, dict[int, float]]] = {
    "LMAPF 01-random": {
        "Follower": {8: 0.589, 16: 1.114, 24: 1.512, 32: 1.801, 48: 2.220, 64: 2.416},
        "MATS-LP": {8: 0.596, 16: 1.143, 24: 1.567, 32: 1.872, 48: 2.301, 64: 2.381},
        "QPLEX": {8: 0.574, 16: 1.043, 24: 1.346, 32: 1.495, 48: 1.528, 64: 1.336},
        "RHCR": {8: 0.625, 16: 1.251, 24: 1.798, 32: 2.286, 48: 3.203, 64: 3.819},
    },
    "LMAPF 02-mazes": {
        "Follower": {8: 0.456, 16: 0.851, 24: 1.142, 32: 1.343, 48: 1.577, 64: 1.653},
        "MATS-LP": {8: 0.466, 16: 0.872, 24: 1.168, 32: 1.344, 48: 1.504, 64: 1.457},
        "QPLEX": {8: 0.439, 16: 0.773, 24: 0.993, 32: 1.089, 48: 1.080, 64: 0.914},
        "RHCR": {8: 0.477, 16: 0.939, 24: 1.356, 32: 1.703, 48: 2.263, 64: 2.587},
    },
    "LMAPF 03-warehouse": {
        "Follower": {32: 1.127, 64: 1.957, 96: 2.613, 128: 3.151, 160: 3.599, 192: 3.937},
        "MATS-LP": {32: 1.109, 64: 1.668, 96: 1.792, 128: 1.825, 160: 1.904, 192: 1.911},
        "QPLEX": {32: 1.051, 64: 1.738, 96: 2.206, 128: 2.422, 160: 2.431, 192: 2.257},
        "RHCR": {32: 1.225, 64: 2.268, 96: 3.103, 128: 3.493, 160: 2.456, 192: 1.568},
    },
    "LMAPF 04-movingai": {
        "Follower": {64: 1.503, 128: 2.823, 192: 3.948, 256: 4.812},
        "MATS-LP": {64: 1.570, 128: 2.980, 192: 4.040, 256: 4.691},
        "QPLEX": {64: 1.469, 128: 2.669, 192: 3.613, 256: 4.216},
        "RHCR": {64: 1.572, 128: 3.002, 192: 4.219, 256: 5.127},
    },
}


def protocol_scenario(
    name: str,
    map_spec: MapSpec,
    agents: int,
    steps: int,
    observation: ObservationSpec | None = None,
    on_target: OnTarget = "restart",
) -> Scenario:
    """The protocol's scenario on `map_spec` with `agents` agents for `steps` steps, observed through
    `observation` (default: the obstacle, agent and goal channels at radius 5); `on_target` "finish" gives
    the benchmark's one-shot (MAPF) protocol."""
    return Scenario(
        name=name,
        map=map_spec,
        agents=AgentsSpec(count=agents),
        dynamics=DynamicsSpec(collision_system="soft", on_target=on_target, max_episode_steps=steps),
        observation=ObservationSpec(radius=RADIUS) if observation is None else observation,
    )


@dataclasses.dataclass(frozen=True)
class TrainedPolicy:
    """A trained policy's column: its label, the torch policy and the observation it was trained on."""

    label: str
    policy: Any
    observation: ObservationSpec


def load_trained(target: str) -> TrainedPolicy:
    """The trained policy `target` names (run directory, .ckpt or pretrained:NAME), observing as in its
    training scenario (channels, neighbours); a bad target, or a policy trained at another radius than the
    benchmark's 5, is a CheckpointError."""
    from marl.run_dir import CheckpointError, load_policy, run_scenario

    policy, meta = load_policy(target)
    trained_on = run_scenario(meta, meta["checkpoint"])  # the scenario as the run stored it
    if trained_on.observation.radius != RADIUS:
        raise CheckpointError(
            f"{target}: trained at observation radius {trained_on.observation.radius}; the benchmark "
            f"observes at radius {RADIUS}"
        )
    return TrainedPolicy(target, policy, trained_on.observation)


def mean_and_interval(values: list[float]) -> str:
    """The mean of per-map (or per-episode) values and the half-width of its 95% confidence interval under a
    normal approximation (1.96 standard errors), as a table cell "mean ± half-width"."""
    values = np.asarray(values, dtype=np.float64)
    spread = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {spread:.3f}"


def centralized_throughputs(env: GridEnv, make: Callable[[GridEnv], Callable[[], np.ndarray]]) -> list[float]:
    """avg_throughput of each environment of `env` (auto_reset off) over one episode of its scenario's length,
    played by the centralized policy `make(env)` (a scripted policy of sim.policy_names.LIFELONG_POLICIES,
    or a guided planner), which draws its actions for the whole batch."""
    env.reset()
    policy = make(env)
    for _ in range(env.scenario.dynamics.max_episode_steps):
        info = env.step(policy())[4]
    return [float(m["avg_throughput"]) for m in info["metrics"]]
