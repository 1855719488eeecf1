"""Expert planners over the batched env (numpy + numba): PIBT and its variants, and LaCAM for one-shot
episodes, as policies.

`PRESETS` names the PIBT configurations the command line and the benchmarks offer (`gridswarm run SCENARIO
--policy NAME`), beside `lacam`; `make_planner(name, env, seed)` builds one.
"""

from __future__ import annotations

from sim.baselines import BatchedState
from sim.planners.lacam_policy import LaCAMPolicy
from sim.planners.policy import PIBTConfig, PIBTPolicy
from sim.policy_names import PLANNER_OPTIONS

PRESETS: dict[str, PIBTConfig] = {name: PIBTConfig(**options) for name, options in PLANNER_OPTIONS.items()}
"""Named planner configurations (sim.policy_names.PLANNER_OPTIONS)."""


def make_planner(name: str, env: BatchedState, seed: int | None = None) -> PIBTPolicy | LaCAMPolicy:
    """The planner `name` of sim.policy_names.PLANNERS over `env` (KeyError for an unknown name; NotPlannable
    for LaCAM on a scenario it cannot play)."""
    if name == "lacam":
        return LaCAMPolicy(env, seed)
    return PIBTPolicy(env, seed=seed, config=PRESETS[name])


__all__ = ["PRESETS", "LaCAMPolicy", "PIBTConfig", "PIBTPolicy", "make_planner"]
