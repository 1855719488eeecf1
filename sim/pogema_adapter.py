"""POGEMA `GridConfig` <-> GridSwarm `Scenario` / `MapLayout`.

`scenario_from_grid_config` and `layouts_from_grid_config` give what `GridEnv.from_pogema` needs to replay
`pogema_v0(grid_config=...)` bit for bit; `grid_config_from_scenario` goes the other way, episode by
episode, for scenarios POGEMA can express (maps of '.' and '#', with POGEMA's placement or fixed cells).
pogema itself is imported only where it is needed: by `grid_config_from_scenario`, and by
`layouts_from_grid_config` for a `map_name`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim.layout import MapLayout


def scenario_from_grid_config(grid_config: Any, pogema_bugs: bool = True) -> Scenario:
    """The `Scenario` with the dynamics, observation and agent count of a POGEMA `GridConfig`."""
    fixed = bool(grid_config.agents_xy and grid_config.targets_xy)
    return Scenario(
        name="pogema",
        map=MapSpec(
            generator="random" if grid_config.map is None else "ascii",
            width=int(grid_config.width),
            height=int(grid_config.height),
            density=float(grid_config.density),
            ascii=None if grid_config.map is None else _ascii(np.asarray(grid_config.map)),
        ),
        agents=AgentsSpec(count=int(grid_config.num_agents), placement="fixed" if fixed else "random"),
        dynamics=DynamicsSpec(
            collision_system=grid_config.collision_system,
            on_target=grid_config.on_target,
            max_episode_steps=int(grid_config.max_episode_steps),
            pogema_bugs=pogema_bugs,
        ),
        observation=ObservationSpec(radius=int(grid_config.obs_radius), type=grid_config.observation_type),
        seed=grid_config.seed,
    )


def layouts_from_grid_config(grid_config: Any):
    """A layout source (env, seed) -> `MapLayout` generating what POGEMA's `Grid(grid_config)` generates for
    that seed (whatever the environment): the obstacles (`default_rng(seed).binomial(1, density, (height,
    width))` unless a map is given; a `map_name` in pogema's grid registry replaces them, as in POGEMA), the
    fixed starts / goals (obstacles under them cleared, as POGEMA does) or possible-position lists, and with
    `empty_outside=False` the random obstacles beyond the border ring. Ragged per-agent goal sequences are
    padded with rows of -1 (the env ends each sequence there)."""
    config = copy.deepcopy(grid_config)
    num_agents = int(config.num_agents)
    fixed_map = None if config.map is None else np.array(config.map, dtype=np.uint8)
    registered = _registered_obstacles(config.map_name)
    if registered is not None:
        fixed_map = registered
    starts = goals = None
    if config.agents_xy and config.targets_xy:
        starts, goals = _fixed_task(config.agents_xy, config.targets_xy, num_agents)
    possible_starts = _cells(config.possible_agents_xy)
    possible_goals = _cells(config.possible_targets_xy)

    def layout(env: int, seed: int) -> MapLayout:
        if fixed_map is None:
            rng = np.random.default_rng(seed)
            obstacles = rng.binomial(1, config.density, (config.height, config.width)).astype(np.uint8)
        else:
            obstacles = fixed_map.copy()
        if starts is not None:
            first_goals = goals[:, 0] if goals.ndim == 3 else goals
            obstacles[starts[:, 0], starts[:, 1]] = 0
            obstacles[first_goals[:, 0], first_goals[:, 1]] = 0
        return MapLayout(
            obstacles, possible_starts, possible_goals, starts, goals, name=str(config.map_name or ""),
            outside_density=None if config.empty_outside else float(config.density), outside_seed=seed,
        )  # fmt: skip

    return layout


def _registered_obstacles(map_name: str | None) -> np.ndarray | None:
    """The obstacles of `map_name` in pogema's grid registry (POGEMA prefers them to `map`), or None."""
    if not map_name:
        return None
    from pogema.grid_registry import get_grid, in_registry

    return np.array(get_grid(map_name).get_obstacles(), dtype=np.uint8) if in_registry(map_name) else None


def _fixed_task(agents_xy: list, targets_xy: list, num_agents: int) -> tuple[np.ndarray, np.ndarray]:
    if len(agents_xy) != len(targets_xy):
        raise ValueError(
            f"agents_xy has {len(agents_xy)} cells but targets_xy {len(targets_xy)}: they must match"
        )
    if num_agents > len(agents_xy):
        raise ValueError(f"num_agents is {num_agents} but agents_xy/targets_xy place only {len(agents_xy)}")
    starts = np.array(agents_xy[:num_agents], dtype=np.int64).reshape(num_agents, 2)
    if isinstance(targets_xy[0][0], list | tuple):
        sequences = targets_xy[:num_agents]
        longest = max(len(sequence) for sequence in sequences)
        goals = np.full((num_agents, longest, 2), -1, dtype=np.int64)
        for agent, sequence in enumerate(sequences):
            goals[agent, : len(sequence)] = sequence
    else:
        goals = np.array(targets_xy[:num_agents], dtype=np.int64).reshape(num_agents, 2)
    return starts, goals


def _cells(cells: list | None) -> np.ndarray | None:
    if not cells:
        return None
    return np.array(cells, dtype=np.int64).reshape(-1, 2)


def _ascii(obstacles: np.ndarray) -> str:
    return "\n".join("".join("#" if cell else "." for cell in row) for row in obstacles)


def grid_config_from_scenario(scenario: Scenario, seed: int | None = None) -> Any:
    """The POGEMA `GridConfig` of a scenario's episode `seed` (default: the scenario's). Random maps keep
    POGEMA's own generator and ASCII maps their text; any other generator is converted through the episode's
    layout: the map that seed draws as text, and the starts and goals it fixes (bottleneck rooms, a `.scen`
    file) as agents_xy / targets_xy. Start/goal cell lists ('@', '$') have no conversion: ValueError."""
    from pogema import GridConfig

    spec = scenario.map
    fields: dict[str, Any] = {
        "num_agents": scenario.agents.count,
        "obs_radius": scenario.observation.radius,
        "observation_type": scenario.observation.type,
        "collision_system": scenario.dynamics.collision_system,
        "on_target": scenario.dynamics.on_target,
        "max_episode_steps": scenario.dynamics.max_episode_steps,
        "seed": scenario.seed if seed is None else seed,
    }
    starts, goals = scenario.agents.starts, scenario.agents.goals
    if spec.generator == "random":
        fields.update(
            width=spec.width, height=spec.height, size=max(spec.width, spec.height), density=spec.density
        )
    elif spec.generator == "ascii":
        fields["map"] = spec.ascii
    else:
        if fields["seed"] is None:
            raise ValueError(f"map.generator '{spec.generator}': converting its map to POGEMA needs a seed")
        from sim.maps import build_layout

        layout = build_layout(scenario, fields["seed"])
        if layout.possible_starts is not None:
            raise ValueError(
                f"map.generator '{spec.generator}' with start/goal cell lists ('@', '$') has no POGEMA "
                "equivalent here (expected a map of '.' and '#')"
            )
        fields["map"] = _ascii(layout.obstacles)
        if layout.starts is not None and starts is None:
            starts, goals = layout.starts.tolist(), layout.goals.tolist()
    if starts is not None and goals is not None:
        fields.update(
            agents_xy=[[int(v) for v in cell] for cell in starts],
            targets_xy=_pogema_targets(goals, scenario.dynamics.on_target),
        )
    return GridConfig(**fields)


def _pogema_targets(goals: Any, on_target: str) -> list:
    """Goals (`agents.goals` or a layout's) as POGEMA's targets_xy: one [row, col] per agent, or per agent a
    list of at least two (POGEMA's rule) cells, its lifelong goal sequence."""
    sequences = [len(goal) > 0 and isinstance(goal[0], list | tuple) for goal in goals]
    if not any(sequences):
        if on_target == "restart":
            raise ValueError(
                "agents.goals: POGEMA's on_target 'restart' needs a goal sequence per agent, got single goals"
            )
        return [[int(v) for v in goal] for goal in goals]
    for agent, (goal, is_sequence) in enumerate(zip(goals, sequences, strict=True)):
        if not is_sequence or len(goal) < 2:
            raise ValueError(
                f"agents.goals[{agent}]: POGEMA needs every agent's goals as a sequence of at least two "
                f"cells when any agent has a sequence, got {goal!r}"
            )
    return [[[int(v) for v in cell] for cell in goal] for goal in goals]
