"""A new episode in one environment of a batch: which scenario variant and map it plays, POGEMA 1.4.0's
task placement, lifelong goal streams, counters and first observation, written into the batch's `EnvState`.

Placement follows POGEMA's precedence: starts and goals the layout fixes, then its possible-position lists,
then generation from the episode seed over the map's free-cell components.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from scenarios.errors import ScenarioError
from scenarios.schema import Scenario
from scenarios.variants import batchable_variants, variant_of_seed
from sim.kernels.dynamics import RESTART
from sim.kernels.observe import observe
from sim.kernels.rng import seed_streams
from sim.kernels.tasks import GOALS_FROM_COMPONENT, GOALS_FROM_LIST, GOALS_FROM_SEQUENCE, place_agents
from sim.layout import MapLayout
from sim.seeds import episode_seed, goal_stream_seeds, variant_seeds
from sim.state import EnvState

LayoutSource = Callable[[int, int], MapLayout]
"""The layout of environment `env`'s episode with seed `seed`: (env, seed) -> MapLayout."""


class TaskGenerationError(ScenarioError):
    """The map has too few free cells (or possible positions) for the requested agents (`build_layout`
    refuses such maps first; this is the simulator's own guard)."""


class EpisodePlan:
    """Which concrete scenario (variant), layout and seed each environment's episodes play.

    `env_variants`: the variant index (into `scenarios.expand_variants`) each environment always plays
    (`scenarios.variants.variant_blocks` is the rule training and evaluation use); its episodes then derive
    their seeds from its variant's base seed (`sim.seeds.variant_seeds`) and its index among that
    variant's environments. None: the episode with seed s plays variant `variant_of_seed(s, V)`, episode k
    of environment e has seed `episode_seed(base, e, k)`. `layouts`: the layout of each episode seed
    instead of `sim.maps.build_layout` of the episode's variant."""

    def __init__(
        self,
        scenario: Scenario,
        num_envs: int,
        env_variants: Sequence[int] | np.ndarray | None = None,
        layouts: LayoutSource | None = None,
    ) -> None:
        self.variants = batchable_variants(scenario)  # expanded once: expanding costs ~2 ms
        self._env_variants = _checked_env_variants(env_variants, len(self.variants), num_envs)
        self._rank = None if self._env_variants is None else _rank_within_variant(self._env_variants)
        self._layouts = layouts

    def variant(self, env: int, seed: int) -> Scenario:
        """The concrete scenario of environment `env`'s episode with `seed`."""
        if self._env_variants is not None:
            return self.variants[self._env_variants[env]]
        return self.variants[variant_of_seed(seed, len(self.variants))]

    def layout(self, env: int, seed: int) -> MapLayout:
        """The map and task layout of environment `env`'s episode with `seed`."""
        if self._layouts is not None:
            return self._layouts(env, seed)
        from sim.maps import build_layout

        return build_layout(self.variant(env, seed), seed)

    def episode_seed(self, base: int, env: int, episode: int) -> int:
        """The seed of episode `episode` of environment `env` in a batch with base seed `base`."""
        if self._env_variants is None or self._rank is None:
            return episode_seed(base, env, episode)
        variant_base = variant_seeds(base, len(self.variants))[self._env_variants[env]]
        return episode_seed(variant_base, self._rank[env], episode)

    def variant_bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of each variant's environments when they are contiguous blocks in variant order
        (`variant_blocks`); ValueError otherwise."""
        chosen = self._env_variants
        if chosen is None or list(chosen) != sorted(chosen) or set(chosen) != set(range(len(self.variants))):
            raise ValueError("the environments are not pinned to the variants in blocks, variant by variant")
        counts = np.bincount(chosen, minlength=len(self.variants))
        return [(int(stop - count), int(stop)) for stop, count in zip(np.cumsum(counts), counts, strict=True)]


def _checked_env_variants(
    env_variants: Sequence[int] | np.ndarray | None, num_variants: int, num_envs: int
) -> tuple[int, ...] | None:
    if env_variants is None:
        return None
    chosen = tuple(int(v) for v in np.asarray(env_variants).reshape(-1))
    if len(chosen) != num_envs or not all(0 <= v < num_variants for v in chosen):
        raise ValueError(
            f"env_variants: expected {num_envs} variant indices in [0, {num_variants}), "
            f"got {list(chosen)[:8]}"
        )
    return chosen


def _rank_within_variant(env_variants: tuple[int, ...]) -> tuple[int, ...]:
    """Each environment's index among the environments of its variant."""
    seen: dict[int, int] = {}
    ranks = []
    for variant in env_variants:
        ranks.append(seen.get(variant, 0))
        seen[variant] = ranks[-1] + 1
    return tuple(ranks)


def start_episode(state: EnvState, env: int, seed: int, layout: MapLayout, variant: Scenario) -> None:
    """Writes environment `env`'s map, task, goal streams and counters for the episode of `seed` of the
    concrete scenario `variant` (`EpisodePlan.variant`), played on `layout`. The map buffers must hold the
    layout (`EnvState.grow_maps`)."""
    height, width = layout.shape
    radius = int(state.rules[2])
    state.seeds[env] = seed
    state.max_steps[env] = variant.dynamics.max_episode_steps
    state.map_shapes[env] = (height, width)
    state.obstacles[env] = 1
    state.obstacles[env, :height, :width] = layout.obstacles
    padded = state.padded_obstacles[env]
    padded[:] = 0
    if layout.outside_density is not None:
        outside = np.random.default_rng(layout.outside_seed).binomial(
            1, layout.outside_density, (height + 2 * radius, width + 2 * radius)
        )
        padded[: height + 2 * radius, : width + 2 * radius] = outside
    padded[radius - 1 : radius + height + 1, radius - 1 : radius + width + 1] = 1
    padded[radius : radius + height, radius : radius + width] = layout.obstacles
    state.global_obstacles[env] = padded
    num_components = state.label_map(env)
    starts, goals = _place_task(state, env, seed, layout, num_components)
    state.starts[env] = starts
    state.positions[env] = starts
    state.goals[env] = goals
    state.active[env] = True
    state.occupancy[env] = 0
    state.occupancy[env, starts[:, 0] + radius, starts[:, 1] + radius] = 1
    state.elapsed[env] = 0
    state.finished[env] = False
    state.sequence_index[env] = 0
    state.solve_time[env] = -1
    state.counters[env] = 0
    if state.rules[1] == RESTART:
        seed_streams(state.streams[env], goal_stream_seeds(seed, len(starts)))
    state.observed_at[env] = -1
    observe(
        state.obs[env], padded, state.occupancy[env], state.positions[env], state.goals[env],
        state.observed_at[env], radius, *state.channels,
    )  # fmt: skip


def _place_task(
    state: EnvState, env: int, seed: int, layout: MapLayout, num_components: int
) -> tuple[np.ndarray, np.ndarray]:
    """Starts and first goals (N, 2), and the lifelong goal mode, by POGEMA's precedence."""
    count = state.positions.shape[1]
    state.goal_mode[env] = GOALS_FROM_COMPONENT
    if layout.starts is not None and layout.goals is not None:
        starts, goals = layout.starts[:count], layout.goals[:count]
        if len(starts) < count or len(goals) < count:
            raise TaskGenerationError(
                f"map '{layout.name}' fixes {min(len(starts), len(goals))} starts/goals, "
                f"{count} agents requested"
            )
        if goals.ndim == 3:
            _set_sequences(state, env, goals)
            goals = goals[:, 0]
        return starts, goals
    if layout.possible_starts is not None and layout.possible_goals is not None:
        return _place_from_lists(state, env, seed, layout)
    order = np.flatnonzero(state.labels[env] >= 0)
    np.random.default_rng(seed).shuffle(order)
    starts = np.zeros((count, 2), dtype=np.int64)
    goals = np.zeros((count, 2), dtype=np.int64)
    placed = place_agents(
        order, state.labels[env], state.comp_offset[env, : num_components + 1], starts, goals
    )
    if placed < count:
        raise TaskGenerationError(
            f"map '{layout.name}' (seed {seed}) has room for {placed} agents, {count} requested"
        )
    return starts, goals


def _place_from_lists(
    state: EnvState, env: int, seed: int, layout: MapLayout
) -> tuple[np.ndarray, np.ndarray]:
    """POGEMA's possible-lists mode: one generator shuffles the starts, then the goals; the first N of
    each are taken, and lifelong goals are drawn from the whole shuffled goal list."""
    count = state.positions.shape[1]
    possible_starts, possible_goals = layout.possible_starts, layout.possible_goals
    if len(possible_starts) < count or len(possible_goals) < count:
        raise TaskGenerationError(
            f"map '{layout.name}' has {len(possible_starts)} possible starts and "
            f"{len(possible_goals)} possible goals, {count} agents requested"
        )
    rng = np.random.default_rng(seed)
    start_order = np.arange(len(possible_starts))
    goal_order = np.arange(len(possible_goals))
    rng.shuffle(start_order)
    rng.shuffle(goal_order)
    shuffled_goals = possible_goals[goal_order]
    state.grow_goal_list(len(shuffled_goals))
    state.goal_list[env, : len(shuffled_goals)] = shuffled_goals
    state.num_listed[env] = len(shuffled_goals)
    state.goal_mode[env] = GOALS_FROM_LIST
    return possible_starts[start_order[:count]], shuffled_goals[:count]


def _set_sequences(state: EnvState, env: int, sequences: np.ndarray) -> None:
    """Per-agent goal sequences (N, L, 2), cycled on arrival; rows of -1 end a shorter sequence."""
    length = sequences.shape[1]
    state.grow_sequences(length)
    state.sequences[env, :, :length] = sequences
    valid = sequences[:, :, 0] >= 0
    state.sequence_length[env] = np.where(valid.all(axis=1), length, valid.argmin(axis=1))
    state.goal_mode[env] = GOALS_FROM_SEQUENCE
