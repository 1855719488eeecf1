"""Map files: MovingAI `.map` and `.scen`, and POGEMA-benchmark `maps.yaml`.

MovingAI `.map` (https://movingai.com/benchmarks/formats.html): a header `type octile`, `height H`,
`width W`, then `map` and H rows of W characters. Passable: `.` `G` (ground) and `S` (swamp); obstacles:
`@` `O` (out of bounds), `T` (trees) and `W` (water, which ground agents cannot enter from terrain).
MovingAI `.scen`: an optional `version 1` line, then one problem per line: bucket, map, map width, map
height, start x, start y, goal x, goal y, optimal length, where x is the column and y the row.
POGEMA-benchmark `maps.yaml`: a mapping `name: |-` to an ASCII map in POGEMA's characters.

Files are parsed once per (path, modification time, size) and the arrays returned read-only. Problems
raise `ScenarioError` naming the file and line, never quoting the file's text (a path named by mistake,
such as /proc/self/environ, must not be echoed). Sizes are checked before anything is allocated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import yaml

from fsio import read_text_bounded
from scenarios.asciimap import AsciiMap, parse_ascii_map
from scenarios.errors import ScenarioError, scenario_error
from scenarios.limits import MAX_CELLS, MAX_FILE_BYTES, MAX_SIDE

PASSABLE = frozenset(".GS")
BLOCKED = frozenset("@OTW")


@dataclass(frozen=True)
class ScenEntry:
    """One `.scen` problem in (row, col) cells: `start`, `goal`, and the map size it was made for."""

    start: tuple[int, int]
    goal: tuple[int, int]
    map_shape: tuple[int, int]
    line: int


def _file_key(path: str) -> tuple[str, int, int]:
    try:
        status = os.stat(path)
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read the file: {error.strerror}") from None
    return path, status.st_mtime_ns, status.st_size


def _read_lines(path: str) -> list[str]:
    try:
        return read_text_bounded(path, MAX_FILE_BYTES).splitlines()
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read the file: {error.strerror}") from None


def read_movingai_map(path: str) -> np.ndarray:
    """The obstacles (H, W) uint8 (1 = obstacle, read-only) of a MovingAI `.map` file."""
    return _read_movingai_map(*_file_key(path))


@lru_cache(maxsize=64)
def _read_movingai_map(path: str, _mtime: int, _size: int) -> np.ndarray:
    lines = _read_lines(path)
    header: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        words = line.split()
        if words == ["map"]:
            return _map_rows(path, lines[number:], number, header)
        if len(words) != 2 or words[0] not in ("type", "height", "width"):
            raise scenario_error(
                path, number, "", "expected a MovingAI header line: type octile, height H, width W or map"
            )
        header[words[0]] = words[1]
    raise scenario_error(path, len(lines), "", "expected a 'map' line after the header, found none")


def _map_rows(path: str, rows: list[str], map_line: int, header: dict[str, str]) -> np.ndarray:
    size: dict[str, int] = {}
    for name in ("height", "width"):
        if not header.get(name, "").isdigit() or int(header[name]) < 1:
            raise scenario_error(path, map_line, "", f"expected a positive '{name}' in the header")
        size[name] = int(header[name])
    height, width = size["height"], size["width"]
    if max(height, width) > MAX_SIDE or height * width > MAX_CELLS:
        raise scenario_error(
            path, map_line, "", f"expected at most {MAX_SIDE} rows and columns and {MAX_CELLS} cells, "
            f"found height {height} and width {width}",
        )  # fmt: skip
    rows = [row.rstrip() for row in rows]
    while rows and not rows[-1]:
        rows.pop()
    if len(rows) != height:
        raise scenario_error(path, map_line, "", f"expected {height} map rows (height), found {len(rows)}")
    obstacles = np.zeros((height, width), dtype=np.uint8)
    for row, text in enumerate(rows):
        number = map_line + 1 + row
        if len(text) != width:
            raise scenario_error(path, number, "", f"expected {width} cells (width), found {len(text)}")
        unknown = set(text) - PASSABLE - BLOCKED
        if unknown:
            raise scenario_error(
                path, number, "", f"expected map characters . G S @ O T W, found {min(unknown)!r}"
            )
        obstacles[row] = [char in BLOCKED for char in text]
    obstacles.setflags(write=False)
    return obstacles


def read_scen(path: str) -> tuple[ScenEntry, ...]:
    """The problems of a MovingAI `.scen` file, in file order."""
    return _read_scen(*_file_key(path))


@lru_cache(maxsize=64)
def _read_scen(path: str, _mtime: int, _size: int) -> tuple[ScenEntry, ...]:
    entries = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip() or (number == 1 and line.split()[0] == "version"):
            continue
        fields = line.split("\t") if line.count("\t") == 8 else line.split()
        numbers = fields[2:8]
        if len(fields) != 9 or not all(field.strip().isdigit() for field in numbers):
            raise scenario_error(
                path,
                number,
                "",
                "expected: bucket, map, width, height, start x, start y, goal x, goal y, length",
            )
        width, height, start_x, start_y, goal_x, goal_y = (int(field) for field in numbers)
        entries.append(ScenEntry((start_y, start_x), (goal_y, goal_x), (height, width), number))
    return tuple(entries)


def read_benchmark_maps(path: str) -> dict[str, tuple[int, str]]:
    """A POGEMA-benchmark `maps.yaml`: map name -> (line of the name, ASCII map)."""
    return _read_benchmark_maps(*_file_key(path))


@lru_cache(maxsize=16)
def _read_benchmark_maps(path: str, _mtime: int, _size: int) -> dict[str, tuple[int, str]]:
    text = "\n".join(_read_lines(path))
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise scenario_error(path, mark.line + 1 if mark else None, "", "invalid YAML") from None
    if not isinstance(root, yaml.MappingNode):
        raise scenario_error(path, 1, "", "expected a mapping of map names to ASCII maps")
    maps: dict[str, tuple[int, str]] = {}
    for key, value in root.value:
        line = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.ScalarNode):
            raise scenario_error(path, line, "", "expected `name: ASCII map` entries")
        if str(key.value) in maps:
            first = maps[str(key.value)][0]
            raise scenario_error(
                path, line, "", f"expected each map name once, found the name of line {first} again"
            )
        maps[str(key.value)] = (line, value.value)
    return maps


def benchmark_map(path: str, name: str) -> AsciiMap:
    """The parsed map `name` of a POGEMA-benchmark `maps.yaml` (cached)."""
    return _benchmark_map(*_file_key(path), name)


@lru_cache(maxsize=256)
def _benchmark_map(path: str, mtime: int, size: int, name: str) -> AsciiMap:
    line, text = _read_benchmark_maps(path, mtime, size)[name]
    try:
        return parse_ascii_map(text)
    except ValueError as error:
        raise scenario_error(path, line, "", f"map '{name}': {error}") from None
