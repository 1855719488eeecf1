"""Expert planners over the batched env (numpy + numba): PIBT and its variants, as policies.

`PRESETS` names the configurations the command line and the benchmarks offer (`gridswarm run SCENARIO
--policy NAME`); `make_planner(name, env, seed)` builds one.
"""

from __future__ import annotations

from sim.baselines import BatchedState
from sim.planners.policy import PIBTConfig, PIBTPolicy

PRESETS: dict[str, PIBTConfig] = {
    "pibt": PIBTConfig(),
    "pibt-swap": PIBTConfig(swap=True),
    "pibt-guided": PIBTConfig(guidance=True),
    "pibt-lns": PIBTConfig(swap=True, lns_window=8),
}
"""Named planner configurations: plain PIBT, PIBT with LaCAM3's swap technique, PIBT following
traffic-flow guide paths."""


def make_planner(name: str, env: BatchedState, seed: int | None = None) -> PIBTPolicy:
    """The planner preset `name` over `env` (KeyError for an unknown name)."""
    return PIBTPolicy(env, seed=seed, config=PRESETS[name])


__all__ = ["PRESETS", "PIBTConfig", "PIBTPolicy", "make_planner"]
