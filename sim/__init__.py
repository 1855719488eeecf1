"""The GridSwarm simulator: a POGEMA-exact, numba-batched grid world (numpy + numba only)."""

from pathlib import Path

from sim.numba_cache import clear_stale_caches

clear_stale_caches(Path(__file__).parent)  # before any kernel loads a cached compile (sim/numba_cache.py)

from sim.env import GridEnv, TaskGenerationError  # noqa: E402 (after the cache check)
from sim.layout import MapLayout  # noqa: E402
from sim.pettingzoo_env import parallel_env  # noqa: E402

__all__ = ["GridEnv", "MapLayout", "TaskGenerationError", "parallel_env"]
