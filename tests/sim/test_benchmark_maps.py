"""The POGEMA benchmark's Random validation maps, regenerated: identical to the published file, and usable
by `MapSpec(generator="benchmark")` without it."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, Scenario
from sim.benchmark_maps import DENSITY_RANGE, SIDE_RANGE, random_map, validation_random_maps, write_maps_yaml
from sim.env import GridEnv
from sim.mapfiles import read_benchmark_maps

# third-party maps beside the repository (never copied into it); the differential test skips where absent
PUBLISHED = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pogema-benchmark" / "01-random.yaml"
)


def test_the_regenerated_maps_are_the_published_ones_character_for_character():
    if not PUBLISHED.is_file():
        pytest.skip(f"{PUBLISHED} absent")
    published = yaml.safe_load(PUBLISHED.read_text())
    assert validation_random_maps() == published


@given(st.integers(0, 2**32 - 1))
def test_a_map_has_the_generators_sides_and_its_exact_obstacle_count(seed):
    rows = random_map(seed).split("\n")
    height, width = len(rows), len(rows[0])
    assert SIDE_RANGE[0] <= min(height, width) and max(height, width) <= SIDE_RANGE[1]
    assert {len(row) for row in rows} == {width} and set("".join(rows)) <= {".", "#"}
    obstacles = "".join(rows).count("#")
    # int(w * h * density) for a density in [0.1, 0.3): the count pins the density to one interval
    assert int(width * height * DENSITY_RANGE[0]) <= obstacles <= int(width * height * DENSITY_RANGE[1])
    assert random_map(seed) == "\n".join(rows)  # a pure function of the seed


def test_the_written_file_is_read_back_and_plays(tmp_path):
    maps = {name: text for name, text in list(validation_random_maps().items())[:3]}
    path = write_maps_yaml(tmp_path / "01-random.yaml", maps)
    assert {name: text for name, (_, text) in read_benchmark_maps(str(path)).items()} == maps
    scenario = Scenario(
        name="benchmark-random",
        map=MapSpec(generator="benchmark", path=str(path), name="validation-random-seed-*"),
        agents=AgentsSpec(count=8),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart"),
    )
    env = GridEnv(scenario, num_envs=3, seed=0, auto_reset=False)
    env.reset()
    shapes = {tuple(shape) for shape in env.map_shapes}
    expected = {(len(text.split("\n")), len(text.split("\n")[0])) for text in maps.values()}
    assert shapes <= expected
    for e, (height, width) in enumerate(env.map_shapes):
        drawn = env.obstacles[e, :height, :width]
        assert any(np.array_equal(drawn, ascii_obstacles(text)) for text in maps.values())


def ascii_obstacles(text: str) -> np.ndarray:
    return np.array([[cell == "#" for cell in row] for row in text.split("\n")], dtype=np.uint8)
