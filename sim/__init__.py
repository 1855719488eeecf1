"""The GridSwarm simulator: a POGEMA-exact, numba-batched grid world (numpy + numba only)."""

from sim.env import GridEnv, TaskGenerationError
from sim.layout import MapLayout

__all__ = ["GridEnv", "MapLayout", "TaskGenerationError"]
