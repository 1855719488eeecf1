"""Policy-guided PIBT: a trained policy's action preferences order PIBT's candidate moves.

At every step the policy reads each agent's observation (as in its decentralized play: the same window,
memory and, under local scope, neighbour lists) and its action log-probabilities become the agents' move
preferences of a `sim.planners.PIBTPolicy` (sim/planners/pibt.py): each agent tries the moves the policy
rates highest first, and PIBT's priorities, inheritance and backtracking keep the joint move free of
vertex and swap conflicts; moves the policy rates equally keep PIBT's distance order. This is CS-PIBT's
use of a learned policy (Veerapaneni, Wang, Li, Likhachev, "Improving Learnt Local MAPF Policies with
Heuristic Search", ICAPS 2024).

The mode is centralized: PIBT's pass sees every agent's position, goal, priority and the reservations of
the agents that planned before it in the same step (docs/planners.md). Its results are reported apart
from the decentralized policy's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from marl.evaluate import PolicyActor
from marl.rollout import Policy
from sim.planners import PRESETS, PIBTPolicy
from sim.policy_names import GUIDABLE_PLANNERS


class GuidedPlanner:
    """The planner preset `planner` over a batched env, its candidate moves ordered by `policy`.

    Called with no arguments it returns the (E, N) actions for the env's current state (`GridEnv`:
    `observation`, `elapsed`, and `neighbours` for a local-scope policy), like the baselines of
    `sim.baselines`, so it plays wherever they do. The policy's memory state is carried between calls and
    reset where an episode starts.
    """

    def __init__(self, policy: Policy, env: Any, planner: str = "pibt", seed: int | None = None) -> None:
        if planner not in GUIDABLE_PLANNERS:
            raise ValueError(f"a policy guides {', '.join(GUIDABLE_PLANNERS)}, not {planner!r}")
        self.actor = PolicyActor(policy, env, seed or 0)
        self.preferences = np.zeros((env.num_envs, env.num_agents, 5), dtype=np.float32)
        self.planner = PIBTPolicy(env, seed=seed, config=PRESETS[planner], preferences=self.preferences)

    def __call__(self) -> np.ndarray:
        """Actions (E, N) int64 for the env's current state (a buffer reused by the next call)."""
        env = self.actor.env
        logits = self.actor.logits(env.observation, self.actor.starting())  # (E, N, 5)
        self.preferences[:] = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        return self.planner()
