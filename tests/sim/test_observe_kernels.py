"""The window writer's vector copies (16-lane rows spilling into the next row, overlapping 8-lane runs,
a cell loop below 8 wide) write exactly the F x F slice of the grid into the window's place, for every
window size and both observation dtypes, and touch nothing around it."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.kernels.observe import window_start, write_window

SENTINEL = 7


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 23),
    num_agents=st.integers(1, 3),
    num_channels=st.integers(1, 3),
    dtype=st.sampled_from([np.float32, np.uint8]),
    data=st.data(),
)
def test_write_window_copies_the_slice_and_nothing_else(size, num_agents, num_channels, dtype, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    height, width = size + data.draw(st.integers(0, 9)), size + data.draw(st.integers(0, 9))
    grid = rng.integers(0, 2, (height, width), dtype=np.uint8)
    row, col = data.draw(st.integers(0, height - size)), data.draw(st.integers(0, width - size))
    agent, channel = data.draw(st.integers(0, num_agents - 1)), data.draw(st.integers(0, num_channels - 1))
    obs = np.full((num_agents, num_channels, size, size), SENTINEL, dtype=dtype)

    write_window(obs, window_start(agent, channel, num_channels, size), grid, row, col, size)

    expected = np.full_like(obs, SENTINEL)
    expected[agent, channel] = grid[row : row + size, col : col + size]
    np.testing.assert_array_equal(obs, expected)
