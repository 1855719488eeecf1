"""The GridSwarm simulator: a POGEMA-exact, numba-batched grid world (numpy + numba only).

The public names load on first use (PEP 562), so `import sim` and its light modules (`sim.policy_names`)
cost neither numba nor numpy: the command line reads the policy names for its help without them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.numba_cache import clear_stale_caches

clear_stale_caches(Path(__file__).parent)  # before any kernel loads a cached compile (sim/numba_cache.py)

if TYPE_CHECKING:
    from sim.env import GridEnv, TaskGenerationError
    from sim.layout import MapLayout
    from sim.pettingzoo_env import parallel_env

_HOMES = {
    "GridEnv": "sim.env",
    "TaskGenerationError": "sim.env",
    "MapLayout": "sim.layout",
    "parallel_env": "sim.pettingzoo_env",
}
"""Each public name and the module that defines it, imported when the name is first read."""

__all__ = ["GridEnv", "MapLayout", "TaskGenerationError", "parallel_env"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later reads skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
