"""Swarm policy networks (torch): encoder, SRMT and baselines. Imports nothing else of GridSwarm.

    policy = memory.make_policy("srmt", obs_shape=(3, 5, 5), preset="bottleneck", scope="global")
    state = policy.initial_state(E, N)
    logits, value, state = policy.step(obs, state, reset_mask, neighbours=None, active=None)

Policies: srmt (shared recurrent memory transformer), rmt (own memory, nothing shared), attention (history,
no memory), gru, empty (encoder to heads), neighbour_attention (attention over the encodings of the agents
in scope). Presets: bottleneck, lmapf, drone. See `SwarmPolicy` for the step contract.
"""

from __future__ import annotations

from typing import Any

import torch

from memory.config import POLICY_NAMES, PRESETS, PolicyConfig, resolve_config
from memory.policy import SwarmPolicy
from memory.state import PolicyState

__all__ = [
    "POLICY_NAMES",
    "PRESETS",
    "PolicyConfig",
    "PolicyState",
    "SwarmPolicy",
    "make_policy",
    "policy_from_config",
]


def make_policy(
    name: str,
    obs_shape: tuple[int, int, int],
    num_actions: int = 5,
    preset: str = "bottleneck",
    scope: str = "global",
    seed: int | None = None,
    **overrides: Any,
) -> SwarmPolicy:
    """A freshly initialized policy `name` (one of POLICY_NAMES) with a preset's sizes and `overrides`
    (any PolicyConfig size field: width, heads, layers, history, filters, res_blocks, mlp_ratio).

    With `seed`, the initial weights depend only on it (the global torch RNG is left untouched).
    Unknown names, presets or override keys raise a ValueError naming the valid ones.
    """
    return policy_from_config(resolve_config(name, obs_shape, num_actions, preset, scope, overrides), seed)


def policy_from_config(config: PolicyConfig | dict[str, Any], seed: int | None = None) -> SwarmPolicy:
    """A freshly initialized policy of a saved config (`PolicyConfig.to_dict()` output or the dataclass)."""
    if not isinstance(config, PolicyConfig):
        config = PolicyConfig.from_dict(config)
    if seed is None:
        return SwarmPolicy(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SwarmPolicy(config)
