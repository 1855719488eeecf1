"""`gridswarm scenario check FILE_OR_NAME` and `gridswarm scenario list`.

`check` validates a scenario file (or a built-in) and then does, for every variant, what `run` does before
its first step: it checks that one environment's buffers fit in memory, and it builds the variant's map and
places its agents as the simulator will, with `CHECK_SEEDS` episode seeds (from the scenario's seed, 0 if it
has none), so map files, `.scen` files and maps without room for the agents are found too. It prints a
one-paragraph summary. A bad scenario prints its one-line error and exits with status 2.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import scenarios
from scenarios import Scenario

if TYPE_CHECKING:
    from sim.layout import MapLayout

USER_ERRORS = ("scenarios.errors.ScenarioError",)
CHECK_SEEDS = 4
"""Episode seeds each variant is built with (a random map differs per seed; the others do not)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scenario", help="check and list scenarios")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a scenario and summarize it")
    check.add_argument("scenario", metavar="FILE_OR_NAME", help="a scenario YAML file or a built-in name")
    check.set_defaults(handler=run_check)
    listing = actions.add_parser("list", help="the built-in scenarios")
    listing.set_defaults(handler=run_list)


def run_check(args: argparse.Namespace) -> int:
    scenario = scenarios.load(args.scenario)
    variants = scenarios.expand_variants(scenario)
    print(summary(scenario, variants, [check_variant(variant, scenario.seed or 0) for variant in variants]))
    return 0


def check_variant(variant: Scenario, seed: int) -> MapLayout:
    """What `run` needs of one variant: its buffers fit in memory and its agents fit on its maps (built
    and placed with seeds seed, seed + 1, ...); the layout of the first seed."""
    from sim.budget import require_memory
    from sim.maps import build_layout, largest_map_shape

    require_memory(variant, 1, largest_map_shape([variant]))
    layouts = [build_layout(variant, seed + offset) for offset in range(CHECK_SEEDS)]
    return layouts[0]


def run_list(args: argparse.Namespace) -> int:
    names = scenarios.builtin_names()
    width = max(len(name) for name in names)
    for name in names:
        print(f"{name:<{width}}  {scenarios.load(name).description}")
    return 0


def _span(values: list[int], unit: str = "") -> str:
    low, high = min(values), max(values)
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def summary(scenario: Scenario, variants: list[Scenario], layouts: list[MapLayout]) -> str:
    """One paragraph: map, agents, dynamics, observation, reward, variants."""
    spec, agents, dynamics, observation = (
        scenario.map,
        scenario.agents,
        scenario.dynamics,
        scenario.observation,
    )
    shapes = sorted({layout.shape for layout in layouts}, key=lambda shape: (shape[0] * shape[1], shape))
    sizes = ", ".join(f"{h}x{w}" for h, w in shapes[:3]) + (
        f", ... {len(shapes)} sizes" if len(shapes) > 3 else ""
    )
    free = sum(int((layout.obstacles == 0).sum()) for layout in layouts) / len(layouts)
    source = f" from {spec.path}" + (f" matching '{spec.name}'" if spec.name else "") if spec.path else ""
    steps = _span([variant.dynamics.max_episode_steps for variant in variants], " steps")
    side = 2 * observation.radius + 1
    neighbours = (
        f", {observation.neighbours} neighbours within {observation.neighbour_radius:g}"
        if observation.neighbours
        else ""
    )
    parts = [
        f"{scenario.name}: {spec.generator} map{source} ({sizes}; {free:.0f} free cells on average)",
        f"{agents.count} agent{'s' if agents.count > 1 else ''} placed by '{agents.placement}'",
        f"{dynamics.collision_system} collisions, on target '{dynamics.on_target}', {steps}"
        + (" (POGEMA's soft-collision bug on)" if dynamics.pogema_bugs else ""),
        f"observation '{observation.type}' radius {observation.radius} ({side}x{side}, channels "
        f"{', '.join(observation.channels)}{neighbours})",
        f"reward '{scenario.reward.scheme}'",
    ]
    if scenario.variants is None:
        parts.append("no variants")
    else:
        values = [str(value) for value in scenario.variants.values]
        shown = ", ".join(values) if len(values) <= 12 else f"{', '.join(values[:6])}, ..., {values[-1]}"
        linked = "".join(f"; {key} varies with it" for key in scenario.variants.linked)
        parts.append(f"{len(values)} variants of {scenario.variants.key}: {shown}{linked}")
    return "; ".join(parts) + "."
