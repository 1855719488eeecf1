"""GridEnv.from_pogema against the installed POGEMA 1.4.0, step by step: positions, goals, is_active, the
occupancy map (soft-mode bug included), observations, rewards, terminated, truncated and metrics."""

import numpy as np
import pytest

pytest.importorskip("pogema")
from pogema import GridConfig, pogema_v0

from sim import GridEnv
from sim.actions import MOVES
from sim.kernels.dynamics import PRIORITY
from tests.sim.helpers import first_mismatch, random_actions

pytestmark = pytest.mark.pogema

COLLISIONS = ("priority", "block_both", "soft")
ON_TARGET = ("finish", "nothing", "restart")
OBS_TYPES = ("default", "POMAPF", "MAPF")


def adversarial_actions(env: GridEnv, rng: np.random.Generator) -> np.ndarray:
    """Mostly moves into cells of other active agents (swaps, followers, rotations, vertex conflicts) and
    into walls; the rest random."""
    positions, active = env.positions[0], env.active[0]
    occupied = np.zeros(env.map_shapes[0] + 2, dtype=bool)
    occupied[positions[active, 0] + 1, positions[active, 1] + 1] = True
    actions = rng.integers(0, 5, size=env.num_agents)
    for agent in range(env.num_agents):
        targets = positions[agent] + MOVES[1:] + 1
        into_agents = np.flatnonzero(occupied[targets[:, 0], targets[:, 1]])
        padded = np.pad(env.obstacles[0], 1, constant_values=1)
        into_walls = np.flatnonzero(padded[targets[:, 0], targets[:, 1]])
        roll = rng.random()
        if roll < 0.6 and into_agents.size:
            actions[agent] = 1 + rng.choice(into_agents)
        elif roll < 0.75 and into_walls.size:
            actions[agent] = 1 + rng.choice(into_walls)
    return actions[None]


def random_config(rng: np.random.Generator, collision: str, on_target: str, obs_type: str) -> GridConfig:
    height, width = (int(v) for v in rng.integers(3, 17, size=2))
    density = float(rng.choice([0.0, 0.1, 0.2, 0.3, 0.4]))
    num_agents = int(rng.integers(1, 33))
    free_guess = int(height * width * (1 - density) * 0.5) - 2
    return GridConfig(
        width=width, height=height, size=max(width, height), density=density,
        num_agents=max(1, min(num_agents, free_guess)), obs_radius=int(rng.integers(1, 6)),
        seed=int(rng.integers(0, 2**31)), collision_system=collision, on_target=on_target,
        observation_type=obs_type, max_episode_steps=int(rng.integers(4, 24)),
        empty_outside=bool(rng.integers(0, 4)),  # a quarter with random obstacles beyond the border
    )  # fmt: skip


def _run_random_configs(collision, on_target, obs_type, count, policy):
    rng = np.random.default_rng(abs(hash((collision, on_target, obs_type))) % 2**32)
    for _ in range(count):
        config = random_config(rng, collision, on_target, obs_type)
        try:
            pogema_v0(grid_config=config).reset()
        except OverflowError:
            with pytest.raises(ValueError, match="room for"):
                GridEnv.from_pogema(config).reset()
            continue
        # Twice the episode length: the continuation after the end (metrics again every step) is compared too.
        problem = first_mismatch(config, policy, 2 * config.max_episode_steps + 1, seed=config.seed)
        assert problem is None, f"{config}: {problem}"


@pytest.mark.parametrize("obs_type", OBS_TYPES)
@pytest.mark.parametrize("on_target", ON_TARGET)
@pytest.mark.parametrize("collision", COLLISIONS)
def test_random_configs_match_pogema(collision, on_target, obs_type):
    _run_random_configs(collision, on_target, obs_type, 2, adversarial_actions)


@pytest.mark.slow
@pytest.mark.parametrize("on_target", ON_TARGET)
@pytest.mark.parametrize("collision", COLLISIONS)
def test_many_random_configs_match_pogema(collision, on_target):
    _run_random_configs(collision, on_target, "default", 12, adversarial_actions)
    _run_random_configs(collision, on_target, "default", 4, random_actions)


def _fixed_actions(sequence):
    steps = iter(sequence)
    return lambda env, rng: np.array([next(steps)])


@pytest.mark.parametrize("collision", COLLISIONS)
def test_rotation_of_four_agents(collision):
    """A 2x2 cycle: soft rotates it, priority and block_both block it."""
    config = GridConfig(
        map="...\n...\n...", agents_xy=[[0, 0], [0, 1], [1, 1], [1, 0]],
        targets_xy=[[2, 2], [2, 0], [0, 2], [2, 1]], collision_system=collision, obs_radius=2,
        max_episode_steps=8,
    )  # fmt: skip
    rotate = [4, 2, 3, 1]
    env = GridEnv.from_pogema(config)
    assert first_mismatch(config, _fixed_actions([rotate] * 3), 3, env=env) is None
    moved = not np.array_equal(env.positions[0], env.starts[0])
    assert moved == (collision == "soft")


def test_soft_occupancy_bug_is_reproduced_only_on_request():
    """Agent 0 follows agent 1 to the right: POGEMA 1.4.0 loses agent 0's occupancy mark."""
    config = GridConfig(
        map=".....", agents_xy=[[0, 0], [0, 1]], targets_xy=[[0, 4], [0, 3]], collision_system="soft",
        obs_radius=1, max_episode_steps=8,
    )  # fmt: skip
    assert first_mismatch(config, _fixed_actions([[4, 4]]), 1) is None
    buggy, correct = GridEnv.from_pogema(config), GridEnv.from_pogema(config, pogema_bugs=False)
    for env in (buggy, correct):
        env.reset()
        env.step(np.array([[4, 4]]))
    assert buggy._state.occupancy[0, 1].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert correct._state.occupancy[0, 1].tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert first_mismatch(config, _fixed_actions([[4, 4]]), 2, env=correct) is not None


def test_harness_reports_a_wrong_collision_kernel():
    """Resolving soft conflicts with the priority kernel must be caught on adversarial episodes."""
    rng = np.random.default_rng(3)
    caught = 0
    for _ in range(5):
        config = random_config(rng, "soft", "nothing", "default")
        env = GridEnv.from_pogema(config)
        env._state.rules[0] = PRIORITY
        caught += first_mismatch(config, adversarial_actions, 20, env=env) is not None
    assert caught >= 4


@pytest.mark.parametrize("on_target", ON_TARGET)
@pytest.mark.parametrize("collision", COLLISIONS)
def test_possible_lists_map_matches_pogema(collision, on_target):
    """`@` starts, `$` goals, `!` neither, `.` both; lifelong goals come from the shuffled `$`/`.` list,
    with POGEMA's padded-position quirk in the redraw."""
    grid = "\n".join(["@@..$$", "@#..#$", "!...!.", "@.##.$", "@@..$$"])
    config = GridConfig(
        map=grid, num_agents=6, collision_system=collision, on_target=on_target, obs_radius=2, seed=11,
        max_episode_steps=30,
    )  # fmt: skip
    assert first_mismatch(config, adversarial_actions, 61, seed=5) is None


@pytest.mark.parametrize("on_target", ("finish", "nothing"))
def test_letter_map_matches_pogema(on_target):
    grid = "\n".join(["a..#..B", ".#...#.", "b..#..A", "...c..C"])
    config = GridConfig(
        map=grid, collision_system="soft", on_target=on_target, obs_radius=3, max_episode_steps=20
    )
    assert first_mismatch(config, random_actions, 41, seed=2) is None


@pytest.mark.parametrize("obs_type", OBS_TYPES)
def test_random_obstacles_beyond_the_border_match_pogema(obs_type):
    """empty_outside=False: POGEMA fills the padding beyond the border ring with random obstacles, which
    agents near the edge observe (and MAPF's global_obstacles holds)."""
    config = GridConfig(
        size=7, density=0.3, num_agents=5, obs_radius=4, seed=11, empty_outside=False, on_target="restart",
        observation_type=obs_type, max_episode_steps=30,
    )  # fmt: skip
    assert first_mismatch(config, random_actions, 30, seed=11) is None


def test_a_map_from_pogemas_grid_registry_replaces_the_map_as_in_pogema():
    from pogema.grid_registry import RegisteredGrid, in_registry

    name = "gridswarm-test-registry-map"
    if not in_registry(name):
        RegisteredGrid(name=name, grid_str="\n".join(["..#...", "......", ".##.#.", "......"]))
    config = GridConfig(
        map_name=name,
        map="......\n......\n......\n......",
        num_agents=4,
        seed=3,
        on_target="finish",
        obs_radius=2,
        max_episode_steps=20,
    )
    env = GridEnv.from_pogema(config)
    env.reset()
    assert env.obstacles[0, 0, 2] == 1 and env.obstacles[0, 2, 1] == 1
    assert first_mismatch(config, random_actions, 20, seed=3) is None


def test_lifelong_goal_sequences_cycle_like_pogema():
    config = GridConfig(
        map=".....\n.....\n.....", agents_xy=[[0, 0], [2, 4]],
        targets_xy=[[[0, 1], [0, 2]], [[2, 3], [1, 3], [1, 4]]], on_target="restart", collision_system="soft",
        obs_radius=2, max_episode_steps=40,
    )  # fmt: skip
    assert first_mismatch(config, random_actions, 40, seed=9) is None


def test_auto_reset_replays_the_same_task_with_a_fixed_seed():
    """from_pogema with a fixed seed: every episode is POGEMA's reset(), final_obs is the last observation."""
    config = GridConfig(num_agents=6, size=6, seed=4, on_target="restart", max_episode_steps=5, obs_radius=2)
    env = GridEnv.from_pogema(config)
    first = env.reset().copy()
    reference = pogema_v0(grid_config=config)
    reference.reset()
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = rng.integers(0, 5, size=(1, 6))
        reference_obs, *_, infos = reference.step(actions[0].copy())
        obs, _, _, truncated, info = env.step(actions)
    assert truncated.all() and info["metrics"][0] == infos[0]["metrics"]
    assert np.array_equal(info["final_obs"][0], np.array(reference_obs))
    assert np.array_equal(obs, first) and env.elapsed[0] == 0
