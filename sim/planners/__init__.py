"""Expert planners over the batched env (numpy + numba): PIBT and its variants, as policies.

`PRESETS` names the configurations the command line and the benchmarks offer (`gridswarm run SCENARIO
--policy NAME`); `make_planner(name, env, seed)` builds one.
"""

from __future__ import annotations

from sim.baselines import BatchedState
from sim.planners.policy import PIBTConfig, PIBTPolicy
from sim.policy_names import PLANNER_OPTIONS

PRESETS: dict[str, PIBTConfig] = {name: PIBTConfig(**options) for name, options in PLANNER_OPTIONS.items()}
"""Named planner configurations (sim.policy_names.PLANNER_OPTIONS)."""


def make_planner(name: str, env: BatchedState, seed: int | None = None) -> PIBTPolicy:
    """The planner preset `name` over `env` (KeyError for an unknown name)."""
    return PIBTPolicy(env, seed=seed, config=PRESETS[name])


__all__ = ["PRESETS", "PIBTConfig", "PIBTPolicy", "make_planner"]
