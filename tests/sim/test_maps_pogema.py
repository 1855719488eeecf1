"""Differential tests of the map generators against pogema 1.4.0 (random obstacles, ASCII maps)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pogema = pytest.importorskip("pogema")
pytestmark = pytest.mark.pogema

from pogema.generator import generate_obstacles  # noqa: E402

import scenarios  # noqa: E402
from sim.maps import GENERATORS  # noqa: E402


@given(
    height=st.integers(2, 40),
    width=st.integers(2, 40),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**62),
)
def test_random_obstacles_match_pogema(height, width, density, seed):
    config = pogema.GridConfig(width=width, height=height, density=density, seed=seed)
    spec = scenarios.MapSpec(generator="random", width=width, height=height, density=density)
    layout = GENERATORS["random"](spec, seed)
    np.testing.assert_array_equal(layout.obstacles, generate_obstacles(config))


def ascii_maps(alphabet: str) -> st.SearchStrategy[str]:
    return (
        st.integers(1, 9)
        .flatmap(
            lambda width: st.lists(
                st.text(alphabet=alphabet, min_size=width, max_size=width), min_size=1, max_size=9
            )
        )
        .map("\n".join)
    )


def cells(positions) -> list[list[int]] | None:
    return None if positions is None else [list(map(int, cell)) for cell in positions]


@given(text=ascii_maps(".#@$!"))
def test_special_cells_parse_as_pogema(text):
    config = pogema.GridConfig(map=text)
    layout = GENERATORS["ascii"](scenarios.MapSpec(generator="ascii", ascii=text), 0)
    np.testing.assert_array_equal(layout.obstacles, np.array(config.map))
    assert cells(layout.possible_starts) == cells(config.possible_agents_xy)
    assert cells(layout.possible_goals) == cells(config.possible_targets_xy)


@given(text=ascii_maps(".#"), data=st.data())
def test_agent_letters_parse_as_pogema(text, data):
    rows = [list(row) for row in text.split()]
    free = [(r, c) for r, row in enumerate(rows) for c, char in enumerate(row) if char == "."]
    chosen = data.draw(st.lists(st.sampled_from(free), unique=True, max_size=10)) if free else []
    for index, (row, col) in enumerate(chosen):
        letter = "abcde"[index // 2]
        rows[row][col] = letter if index % 2 == 0 else letter.upper()
    if len(chosen) % 2:
        rows[chosen[-1][0]][chosen[-1][1]] = "."
    text = "\n".join("".join(row) for row in rows)
    config = pogema.GridConfig(map=text)
    layout = GENERATORS["ascii"](scenarios.MapSpec(generator="ascii", ascii=text), 0)
    np.testing.assert_array_equal(layout.obstacles, np.array(config.map))
    assert (cells(layout.starts) or []) == (config.agents_xy or [])
    assert (cells(layout.goals) or []) == (config.targets_xy or [])
    assert layout.possible_starts is None and config.possible_agents_xy is None
