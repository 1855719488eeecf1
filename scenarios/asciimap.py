"""POGEMA's ASCII map format, parsed exactly as `pogema.GridConfig.str_map_to_list` (1.4.0) reads it.

Rows are the whitespace-separated words of the text. `.` free (a possible start and goal), `#` obstacle,
`@` free and a possible start only, `$` free and a possible goal only, `!` free and neither; `a`-`z` / `A`-`Z`
are the start / goal of the agent with that letter, agents in alphabetical order. The possible lists exist
only when one of `@ $ !` occurs and neither list is empty. Stricter than POGEMA on what it would misread:
letters together with `@ $ !`, a letter used twice, or a start letter without its goal letter are errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenarios.limits import MAX_CELLS, MAX_SIDE

SPECIAL_CHARACTERS = frozenset("@$!")


@dataclass(frozen=True)
class AsciiMap:
    """A parsed ASCII map.

    obstacles: (H, W) uint8, 1 = obstacle.
    starts, goals: (N, 2) int64 (row, col) from the letters, or None without letters.
    possible_starts, possible_goals: (M, 2) int64 in row-major order, or None without `@ $ !`.
    """

    obstacles: np.ndarray
    starts: np.ndarray | None
    goals: np.ndarray | None
    possible_starts: np.ndarray | None
    possible_goals: np.ndarray | None


def _letter_cells(grid: np.ndarray, letters: np.ndarray) -> dict[str, tuple[int, int]]:
    """Map each letter (lower-cased) to its cell; a letter used twice is an error."""
    cells: dict[str, tuple[int, int]] = {}
    for row, col in np.argwhere(letters):
        char = chr(grid[row, col])
        if char.lower() in cells:
            raise ValueError(f"expected each letter once, found '{char}' again at row {row}")
        cells[char.lower()] = (int(row), int(col))
    return cells


def _ordered(cells: dict[str, tuple[int, int]]) -> np.ndarray | None:
    if not cells:
        return None
    return np.asarray([cells[key] for key in sorted(cells)], dtype=np.int64).reshape(-1, 2)


def parse_ascii_map(text: str) -> AsciiMap:
    """Parse POGEMA's ASCII map text into read-only arrays; raise ValueError (a one-line problem, no location)
    when malformed."""
    rows = text.split()
    if not rows:
        raise ValueError("expected at least one row of map characters, found none")
    width = len(rows[0])
    for row, line in enumerate(rows):
        if len(line) != width:
            raise ValueError(f"expected rows of equal length {width}, found row {row} with {len(line)} cells")
    if max(len(rows), width) > MAX_SIDE or len(rows) * width > MAX_CELLS:
        raise ValueError(
            f"expected at most {MAX_SIDE} rows and columns and {MAX_CELLS} cells, found {len(rows)}x{width}"
        )
    joined = "".join(rows)
    if not joined.isascii():
        index = next(i for i, char in enumerate(joined) if not char.isascii())
        found = joined[index]
        raise ValueError(f"expected one of . # @ $ ! or a letter, found {found!r} at row {index // width}")
    characters = (
        np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(len(rows), width).astype(np.int64)
    )
    lower = (characters >= ord("a")) & (characters <= ord("z"))
    upper = (characters >= ord("A")) & (characters <= ord("Z"))
    letters = lower | upper
    bad = ~(letters | np.isin(characters, [ord(char) for char in ".#@$!"]))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        found = chr(characters[row, col])
        raise ValueError(f"expected one of . # @ $ ! or a letter, found {found!r} at row {row}")
    starts = _letter_cells(characters, lower)
    goals = _letter_cells(characters, upper)
    if set(starts) != set(goals):
        unpaired = sorted(set(starts) ^ set(goals))[0]
        raise ValueError(f"expected a start letter and a goal letter per agent, found '{unpaired}' unpaired")
    has_special = bool(np.isin(characters, [ord(char) for char in SPECIAL_CHARACTERS]).any())
    if starts and has_special:
        raise ValueError("expected agent letters or @ $ ! cells, found both")
    start_cells = letters | np.isin(characters, [ord("."), ord("@")])
    goal_cells = letters | np.isin(characters, [ord("."), ord("$")])
    # POGEMA keeps the lists only when both are non-empty (GridConfig.map_validation).
    has_lists = has_special and bool(start_cells.any()) and bool(goal_cells.any())
    parsed = AsciiMap(
        obstacles=(characters == ord("#")).astype(np.uint8),
        starts=_ordered(starts),
        goals=_ordered(goals),
        possible_starts=np.argwhere(start_cells).astype(np.int64) if has_lists else None,
        possible_goals=np.argwhere(goal_cells).astype(np.int64) if has_lists else None,
    )
    arrays = (parsed.obstacles, parsed.starts, parsed.goals, parsed.possible_starts, parsed.possible_goals)
    for array in arrays:
        if array is not None:
            array.setflags(write=False)  # parsed maps are cached and shared between episodes
    return parsed
