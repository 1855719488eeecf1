"""The names of the scripted policies and their options: plain data, no numba and no numpy, so the command
line builds its help from them without loading the simulator (`import sim` is lazy).

`sim.baselines.make_baseline` builds every name of `POLICIES`; `sim.planners.PRESETS` turns each planner's
options into a `PIBTConfig`.
"""

from __future__ import annotations

BASELINES = ("random", "greedy")
"""The heuristic baselines of `sim.baselines`: uniform random actions, shortest-path greedy."""

PLANNER_OPTIONS: dict[str, dict[str, bool | int]] = {
    "pibt": {},
    "pibt-swap": {"swap": True},
    "pibt-guided": {"guidance": True},
    "pibt-lns": {"swap": True, "lns_window": 8},
}
"""The planner presets and their `PIBTConfig` fields: plain PIBT, PIBT with LaCAM3's swap technique, PIBT
following traffic-flow guide paths, and swap plus a large-neighbourhood-search window."""

ONE_SHOT_PLANNERS = ("lacam",)
"""Planners of whole one-shot episodes (`sim.planners.lacam_policy`): LaCAM, PIBT where it finds no plan."""

PLANNERS = (*PLANNER_OPTIONS, *ONE_SHOT_PLANNERS)

POLICIES = (*BASELINES, *PLANNERS)
"""Every scripted policy by name: the baselines, then the planners (experts)."""

LIFELONG_POLICIES = (*BASELINES, *PLANNER_OPTIONS)
"""The scripted policies that play lifelong episodes: all but the one-shot planners."""

GUIDABLE_PLANNERS = ("pibt", "pibt-swap", "pibt-guided")
"""The planner presets a trained policy's move preferences can order (`marl.guided`); pibt-lns plans
several steps ahead and takes none."""
