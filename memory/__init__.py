"""Swarm policy networks (torch): encoder, SRMT and baselines. Imports nothing else of GridSwarm.

    policy = memory.make_policy("srmt", obs_shape=(3, 5, 5), preset="bottleneck", scope="global")
    state = policy.initial_state(E, N)
    logits, value, state = policy.step(obs, state, reset_mask, neighbours=None, active=None)

Policies: srmt (shared recurrent memory transformer), rmt (own memory, nothing shared), attention (history,
no memory), gru, empty (encoder to heads), neighbour_attention (attention over the encodings of the agents
in scope). Presets: bottleneck, lmapf, drone. See `SwarmPolicy` for the step contract.

Importing the package loads no torch: the names of the policies, scopes and presets (`memory.config`)
serve a command-line parser as they are, and the torch-backed names load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memory.config import POLICY_NAMES, PRESETS, SCOPES, PolicyConfig, resolve_config

if TYPE_CHECKING:
    from memory.policy import SwarmPolicy, make_policy, policy_from_config
    from memory.state import PolicyState

_TORCH_BACKED = {
    "SwarmPolicy": "memory.policy",
    "make_policy": "memory.policy",
    "policy_from_config": "memory.policy",
    "PolicyState": "memory.state",
}
"""The public names whose module imports torch, loaded on first access (PEP 562)."""

__all__ = [
    "POLICY_NAMES",
    "PRESETS",
    "SCOPES",
    "PolicyConfig",
    "PolicyState",
    "SwarmPolicy",
    "make_policy",
    "policy_from_config",
    "resolve_config",
]


def __getattr__(name: str) -> Any:
    if name not in _TORCH_BACKED:
        raise AttributeError(f"module 'memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(_TORCH_BACKED[name]), name)
    globals()[name] = value
    return value
