"""The GridSwarm simulator: a POGEMA-exact, numba-batched grid world (numpy + numba only)."""

from sim.env import GridEnv, TaskGenerationError
from sim.layout import MapLayout
from sim.pettingzoo_env import parallel_env

__all__ = ["GridEnv", "MapLayout", "TaskGenerationError", "parallel_env"]
