"""The architecture of a swarm policy, as one frozen dataclass, and the named size presets.

`PolicyConfig` is everything needed to rebuild a policy's modules (weights aside): checkpoints and exports
save `config.to_dict()` (plain JSON types) and restore it with `PolicyConfig.from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from coercion import CoercionError, coerce, conforms

POLICY_NAMES: tuple[str, ...] = ("srmt", "rmt", "attention", "gru", "empty", "neighbour_attention")
SCOPES: tuple[str, ...] = ("global", "local")

# Sizes by preset. bottleneck and lmapf are the SRMT paper's Table 1; drone keeps every policy under
# 16,000 parameters for windows up to 3x11x11, so it fits a Crazyflie's flash budget (export.md §5).
PRESETS: dict[str, dict[str, int]] = {
    "bottleneck": {"width": 16, "heads": 4, "layers": 1, "history": 8, "filters": 8, "res_blocks": 1},
    "lmapf": {"width": 512, "heads": 8, "layers": 1, "history": 8, "filters": 64, "res_blocks": 8},
    "drone": {"width": 16, "heads": 2, "layers": 1, "history": 4, "filters": 4, "res_blocks": 1},
}


MAX_CHANNELS = 64
MAX_WINDOW = 257  # observation radius 128, the scenarios' limit
SIZE_LIMITS = {
    "num_actions": (1, 64),
    "width": (1, 4096),
    "heads": (1, 64),
    "layers": (1, 64),
    "filters": (1, 1024),
    "mlp_ratio": (1, 64),
    "history": (0, 1024),
    "res_blocks": (0, 64),
}
"""Every size of a policy as [low, high]: far above any preset, far below what would exhaust memory."""


def _int_in(value: object, low: int, high: int) -> bool:
    return conforms(value, int) and low <= value <= high


@dataclass(frozen=True)
class PolicyConfig:
    """Architecture of one policy: which core, the observation it reads and every size."""

    name: str
    """policy kind: one of srmt, rmt, attention, gru, empty, neighbour_attention"""
    obs_shape: tuple[int, int, int]
    """observation window (C, F, F) of one agent"""
    num_actions: int = 5
    """size of the discrete action space (POGEMA: stay, up, down, left, right)"""
    scope: str = "global"
    """which agents' messages an agent reads: all of its env (global) or its neighbour list (local)"""
    width: int = 16
    """D: encoder output, token, memory and message width"""
    heads: int = 4
    """attention heads (width must be a multiple)"""
    layers: int = 1
    """transformer blocks of the attention cores"""
    history: int = 8
    """h: past encoder outputs in each agent's token sequence (srmt, rmt, attention)"""
    filters: int = 8
    """channels of the ResNet encoder"""
    res_blocks: int = 1
    """residual blocks of the ResNet encoder"""
    mlp_ratio: int = 4
    """hidden width of the transformer MLP, as a multiple of width"""

    def __post_init__(self) -> None:
        if self.name not in POLICY_NAMES:
            raise ValueError(f"policy name {self.name!r}: expected one of {', '.join(POLICY_NAMES)}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope {self.scope!r}: expected one of {', '.join(SCOPES)}")
        try:
            shape = coerce(self.obs_shape, tuple[int, ...])  # a list (JSON, YAML) becomes a tuple
        except CoercionError:
            shape = ()
        limits = ((1, MAX_CHANNELS), (1, MAX_WINDOW), (1, MAX_WINDOW))
        if len(shape) != 3 or not all(_int_in(n, *bounds) for n, bounds in zip(shape, limits, strict=True)):
            raise ValueError(
                f"obs_shape {self.obs_shape!r}: expected (C, F, F) with C in [1, {MAX_CHANNELS}] and F in "
                f"[1, {MAX_WINDOW}]"
            )
        object.__setattr__(self, "obs_shape", shape)
        # bounded before any layer is built: a checkpoint's config says how much memory the policy takes
        for field, (low, high) in SIZE_LIMITS.items():
            if not _int_in(getattr(self, field), low, high):
                raise ValueError(f"{field} {getattr(self, field)!r}: expected an int in [{low}, {high}]")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")

    @property
    def has_memory(self) -> bool:
        """Whether the recurrent state carries a memory vector (srmt, rmt) or hidden state (gru)."""
        return self.name in ("srmt", "rmt", "gru")

    @property
    def history_length(self) -> int:
        """Encoder outputs kept in the recurrent state (0 for cores that read no history)."""
        return self.history if self.name in ("srmt", "rmt", "attention") else 0

    @property
    def message_source(self) -> str | None:
        """What an agent broadcasts to the others in its scope: its memory, its encoding, or nothing."""
        return {"srmt": "memory", "neighbour_attention": "encoding"}.get(self.name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (obs_shape as a list)."""
        fields = dataclasses.asdict(self)
        fields["obs_shape"] = list(self.obs_shape)
        return fields

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> PolicyConfig:
        """Inverse of `to_dict`; unknown or missing keys raise a one-line ValueError."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise ValueError(f"policy config: unknown key(s) {', '.join(unknown)}; valid: {', '.join(known)}")
        if "name" not in fields or "obs_shape" not in fields:
            raise ValueError("policy config: 'name' and 'obs_shape' are required")
        return cls(**{**fields, "obs_shape": tuple(fields["obs_shape"])})


_NOT_SIZES = ("name", "obs_shape", "num_actions", "scope")
SIZE_FIELDS = tuple(f.name for f in dataclasses.fields(PolicyConfig) if f.name not in _NOT_SIZES)
"""The PolicyConfig sizes a preset sets and an override may change."""


def resolve_config(
    name: str,
    obs_shape: tuple[int, int, int],
    num_actions: int,
    preset: str,
    scope: str,
    overrides: dict[str, Any],
) -> PolicyConfig:
    """A preset's sizes with `overrides` applied; unknown presets and override keys raise ValueError."""
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: expected one of {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(SIZE_FIELDS))
    if unknown:
        raise ValueError(f"unknown override(s) {', '.join(unknown)}; valid: {', '.join(SIZE_FIELDS)}")
    sizes = {**PRESETS[preset], **overrides}
    return PolicyConfig(name=name, obs_shape=tuple(obs_shape), num_actions=num_actions, scope=scope, **sizes)
