"""Map generators and map files: shapes, connectivity, determinism, placement, file round trips."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import scenarios
from scenarios import ScenarioError
from sim.mapfiles import read_benchmark_maps, read_movingai_map, read_scen
from sim.maps import (
    _benchmark_names,
    bottleneck_obstacles,
    build_layout,
    maze_obstacles,
    random_obstacles,
    room_placement,
    warehouse_ascii,
)

# third-party maps beside the repository (never copied into it); tests that need them skip where absent
BENCHMARK = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pogema-benchmark"
TRAIN_LENGTHS = (3, 4, 5, 6, 7, 8, 12, 16, 17, 18, 20, 21, 22, 23, 24, 27)
TEST_LENGTHS = (*range(3, 51), *range(100, 1001, 100))


def components(obstacles: np.ndarray) -> int:
    """The number of 4-connected components of free cells."""
    labels = np.where(obstacles == 0, -1, -2)
    count = 0
    for start in map(tuple, np.argwhere(labels == -1)):
        if labels[start] != -1:
            continue
        labels[start] = count
        queue = deque([start])
        while queue:
            row, col = queue.popleft()
            for next_cell in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)):
                inside = 0 <= next_cell[0] < labels.shape[0] and 0 <= next_cell[1] < labels.shape[1]
                if inside and labels[next_cell] == -1:
                    labels[next_cell] = count
                    queue.append(next_cell)
        count += 1
    return count


def scenario(text: str, tmp_path: Path | None = None) -> scenarios.Scenario:
    return scenarios.loads(text, source="s.yaml", base=tmp_path)


def test_random_obstacles_are_pogemas_binomial_draw():
    obstacles = build_layout(
        scenario("map: {generator: random, width: 13, height: 7, density: 0.4}"), 11
    ).obstacles
    expected = np.random.default_rng(11).binomial(1, 0.4, (7, 13))
    assert obstacles.dtype == np.uint8 and obstacles.shape == (7, 13)
    np.testing.assert_array_equal(obstacles, expected)
    assert not np.array_equal(random_obstacles(7, 13, 0.4, 12), obstacles)


@given(
    height=st.integers(2, 31),
    width=st.integers(2, 31),
    loops=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_maze_free_space_is_one_component_and_seeded(height, width, loops, seed):
    maze = maze_obstacles(height, width, loops, seed)
    assert maze.shape == (height, width) and maze.dtype == np.uint8
    assert components(maze) == 1
    np.testing.assert_array_equal(maze, maze_obstacles(height, width, loops, seed))


@given(size=st.integers(3, 25), seed=st.integers(0, 2**32))
def test_a_perfect_maze_is_a_spanning_tree_and_loops_only_open_walls(size, seed):
    perfect = maze_obstacles(size, size, 0.0, seed)
    cells = ((size + 1) // 2) ** 2
    assert int((perfect == 0).sum()) == 2 * cells - 1  # cells plus the passages of a spanning tree
    looped = maze_obstacles(size, size, 0.5, seed)
    np.testing.assert_array_equal(looped[::2, ::2], 0)
    assert int((looped == 0).sum()) >= 2 * cells - 1


def test_maze_seeds_give_different_mazes():
    mazes = {maze_obstacles(21, 21, 0.2, seed).tobytes() for seed in range(8)}
    assert len(mazes) == 8


@pytest.mark.parametrize("length", sorted({*TRAIN_LENGTHS, *TEST_LENGTHS}))
def test_bottleneck_shape_is_srmts(length):
    obstacles = bottleneck_obstacles(length)
    assert obstacles.shape == (length + 4, 9)
    assert not obstacles[:2].any() and not obstacles[-2:].any()
    corridor = obstacles[2:-2]
    assert (corridor.sum(axis=1) == 8).all() and not corridor[:, 4].any()


def srmt_reference(corridor_length: int, seed: int) -> tuple[list, list]:
    """The SRMT code's draws (env/create_env.py, MultiMapWrapper) for its two agents."""
    rnd = np.random.default_rng(seed)
    roof, dim = 2, 9
    top, bottom = range(0, roof), range(roof + corridor_length, roof * 2 + corridor_length)

    def cell(rows: range) -> list[int]:
        return [int(rnd.choice(rows, 1)[0]), int(rnd.choice(range(0, dim), 1)[0])]

    starts = [cell(top), cell(bottom)]
    goals = [cell(bottom), cell(top)]
    return starts, goals


@given(length=st.sampled_from(TRAIN_LENGTHS), seed=st.integers(0, 2**32))
def test_two_agent_room_placement_draws_exactly_as_srmt(length, seed):
    starts, goals = room_placement(length, 2, seed)
    assert (starts.tolist(), goals.tolist()) == srmt_reference(length, seed)


@given(length=st.integers(1, 60), count=st.integers(1, 36), seed=st.integers(0, 2**32))
def test_room_placement_alternates_rooms_with_distinct_cells(length, count, seed):
    starts, goals = room_placement(length, count, seed)
    in_top = starts[:, 0] < 2
    assert (in_top == (np.arange(count) % 2 == 0)).all()
    assert ((goals[:, 0] >= length + 2) == in_top).all()
    assert len({tuple(cell) for cell in starts}) == count and len({tuple(cell) for cell in goals}) == count
    obstacles = bottleneck_obstacles(length)
    assert not obstacles[starts[:, 0], starts[:, 1]].any() and not obstacles[goals[:, 0], goals[:, 1]].any()


def test_bottleneck_builtin_lays_out_every_training_length():
    for variant in scenarios.expand_variants(scenarios.load("bottleneck")):
        layout = build_layout(variant, 3)
        length = variant.map.corridor_length
        assert layout.shape == (length + 4, 9) and layout.starts.shape == (2, 2)
        assert layout.starts[0, 0] < 2 and layout.goals[0, 0] >= length + 2


def test_a_scenario_with_variants_must_be_expanded_first():
    with pytest.raises(ValueError, match="expand_variants"):
        build_layout(scenarios.load("bottleneck"), 0)


def test_warehouse_layout_lists_shelf_starts_and_station_goals():
    layout = build_layout(
        scenario("map: {generator: warehouse, shelf_rows: 2, shelf_columns: 2, shelf_length: 3}"), 0
    )
    text = warehouse_ascii(2, 2, 3, 2).split()
    assert layout.shape == (9, 1 + 6 + 2 * 4 + 6)
    starts = {tuple(cell) for cell in layout.possible_starts}
    goals = {tuple(cell) for cell in layout.possible_goals}
    for row, line in enumerate(text):
        for col, char in enumerate(line):
            assert layout.obstacles[row, col] == (char == "#")
            assert ((row, col) in starts) == (char in ".@")
            assert ((row, col) in goals) == (char in ".$")
    assert components(layout.obstacles) == 1


def test_default_warehouse_is_the_benchmarks_wfi_warehouse():
    path = BENCHMARK / "03-warehouse.yaml"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    assert warehouse_ascii(8, 3, 10, 2) == yaml.safe_load(path.read_text())["wfi_warehouse"]
    layout = build_layout(scenarios.load("warehouse"), 0)
    assert (len(layout.possible_starts), len(layout.possible_goals)) == (1086, 798)  # '.' cells count as both


def test_fixed_placement_clears_obstacles_like_pogema():
    text = "map: {generator: random, width: 6, height: 6, density: 1.0}\n" + (
        "agents: {count: 2, placement: fixed, starts: [[0, 0], [5, 5]], goals: [[0, 5], [5, 0]]}"
    )
    layout = build_layout(scenario(text), 0)
    assert layout.starts.tolist() == [[0, 0], [5, 5]] and layout.goals.tolist() == [[0, 5], [5, 0]]
    assert int(layout.obstacles.sum()) == 32 and layout.obstacles[0, 0] == 0 and layout.obstacles[5, 0] == 0


def test_too_many_agents_for_a_generated_map_is_a_scenario_error():
    text = (
        "map: {generator: warehouse, shelf_rows: 1, shelf_columns: 1, shelf_length: 1, station_columns: 0}\n"
    )
    with pytest.raises(ScenarioError, match=r"key 'agents.count': expected at most \d+ agents"):
        build_layout(scenario(text + "agents: {count: 13}"), 0)  # 12 goal cells: the aisles


def write_map(path: Path, rows: list[str]) -> None:
    path.write_text(f"type octile\nheight {len(rows)}\nwidth {len(rows[0])}\nmap\n" + "\n".join(rows) + "\n")


@given(
    grid=st.integers(1, 12).flatmap(
        lambda width: st.lists(
            st.text(alphabet=".GS@OTW", min_size=width, max_size=width), min_size=1, max_size=12
        )
    )
)
def test_movingai_map_round_trip(tmp_path_factory, grid):
    path = tmp_path_factory.mktemp("map") / "m.map"
    write_map(path, grid)
    obstacles = read_movingai_map(str(path))
    expected = np.array([[char in "@OTW" for char in row] for row in grid], dtype=np.uint8)
    np.testing.assert_array_equal(obstacles, expected)
    assert not obstacles.flags.writeable


def test_scen_columns_are_x_then_y(tmp_path):
    rows = ["....@", ".@...", "....."]  # 3 rows, 5 columns: a wrong x/y swap lands outside or on '@'
    write_map(tmp_path / "m.map", rows)
    (tmp_path / "m.scen").write_text(
        "version 1\n0\tm.map\t5\t3\t3\t0\t0\t2\t5.0\n0\tm.map\t5\t3\t4\t2\t2\t1\t3.0\n"
        "0\tm.map\t5\t3\t0\t0\t1\t0\t1\n"
    )
    text = "map: {generator: movingai, path: m.map}\nagents: {count: 2, placement: scen, scen: m.scen}\n"
    layout = build_layout(scenario(text, tmp_path), 0)
    assert layout.starts.tolist() == [[0, 3], [2, 4]] and layout.goals.tolist() == [[2, 0], [1, 2]]
    assert [entry.line for entry in read_scen(str(tmp_path / "m.scen"))] == [2, 3, 4]


@pytest.mark.parametrize(
    ("map_rows", "scen_line", "message"),
    [
        (["..", ".X"], None, r"m.map:6: expected map characters"),
        (["...", ".."], None, r"m.map:6: expected 3 cells"),
        (["...", "..."], "0\tm.map\t3\t3\t0\t0\t1\t1\t2\n", r"m.scen:1: expected a problem for a 2x3 map"),
        (["...", "@.."], "0\tm.map\t3\t2\t0\t1\t1\t1\t2\n", r"m.scen:1: expected free cells"),
        (["...", "..."], "0\tm.map\t3\t2\tx\t1\t1\t1\t2\n", r"m.scen:1: expected: bucket, map"),
    ],
)
def test_bad_map_files_name_file_and_line(tmp_path, map_rows, scen_line, message):
    write_map(tmp_path / "m.map", map_rows)
    (tmp_path / "m.scen").write_text(scen_line or "0\tm.map\t3\t2\t0\t0\t1\t1\t2\n")
    text = "map: {generator: movingai, path: m.map}\nagents: {count: 1, placement: scen, scen: m.scen}\n"
    with pytest.raises(ScenarioError, match=message):
        build_layout(scenario(text, tmp_path), 0)


def test_benchmark_draw_is_toolboxs_sorted_whole_name_match_and_integers(tmp_path):
    maps = {"m-b": "..\n..", "m-a": "#.\n..", "m-c-extra": "...\n...", "x-m-a": ".#\n..", "m-.": "."}
    (tmp_path / "maps.yaml").write_text(yaml.safe_dump(maps))
    puzzle = scenario("map: {generator: benchmark, path: maps.yaml, name: 'm-[ab]'}", tmp_path)
    for seed in range(20):
        layout = build_layout(puzzle, seed)
        expected = ["m-a", "m-b"][np.random.default_rng(seed).integers(0, 2)]
        assert layout.name == expected
        np.testing.assert_array_equal(
            layout.obstacles, [[1, 0], [0, 0]] if expected == "m-a" else [[0, 0], [0, 0]]
        )
    nothing = scenario("map: {generator: benchmark, path: maps.yaml, name: 'zzz'}", tmp_path)
    with pytest.raises(ScenarioError, match="no map name matches the glob 'zzz'"):
        build_layout(nothing, 0)
    # a glob, not a regular expression: '.' is a dot, '?' one character, '*' any run of them
    for pattern, names in [("m-.", ["m-."]), ("m-?", ["m-.", "m-a", "m-b"]), ("*m-a", ["m-a", "x-m-a"])]:
        spec = scenario(f"map: {{generator: benchmark, path: maps.yaml, name: '{pattern}'}}", tmp_path).map
        assert _benchmark_names(spec) == names


@pytest.mark.parametrize(
    ("file", "count"),
    [("01-random.yaml", 128), ("02-mazes.yaml", 128), ("03-warehouse.yaml", 1), ("05-puzzles.yaml", 16)],
)
def test_pogema_benchmark_files_parse(file, count):
    path = BENCHMARK / file
    if not path.is_file():
        pytest.skip(f"{path} absent")
    maps = read_benchmark_maps(str(path))
    assert len(maps) == count
    first = sorted(maps)[0]
    layout = build_layout(scenario(f"map: {{generator: benchmark, path: {path}, name: '{first}'}}"), 0)
    assert layout.name == first and layout.obstacles.shape == (
        len(maps[first][1].split()),
        len(maps[first][1].split()[0]),
    )
