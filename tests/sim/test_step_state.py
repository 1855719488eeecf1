"""A StepState holds the env's own buffers by reference: kernels write into them, it keeps them alive for
as long as it lives, and it lets them go when it dies (the step kernels' argument is built by hand, with
explicit reference counts, so a slip here is a leak or a use after free)."""

import gc
import sys

import numpy as np
import pytest
from numba import njit

from sim.kernels.state import STATE_FIELDS, step_state


@njit(cache=True)
def _bump_elapsed(state):
    state.elapsed[0] += 1


def buffers():
    return tuple(np.zeros(3, dtype=np.int64) for _ in STATE_FIELDS)


def test_kernels_write_into_the_buffers_themselves():
    arrays = buffers()
    state = step_state(arrays)
    _bump_elapsed(state)
    _bump_elapsed(state)
    assert arrays[STATE_FIELDS.index("elapsed")][0] == 2


def test_a_state_holds_its_buffers_while_it_lives_and_releases_them_after():
    arrays = buffers()
    watched = arrays[7]
    alone = sys.getrefcount(watched)
    state = step_state(arrays)
    assert sys.getrefcount(watched) == alone + 1
    for _ in range(100):
        state = step_state(arrays)
    del state
    gc.collect()
    assert sys.getrefcount(watched) == alone


def test_a_wrong_number_of_buffers_is_refused():
    with pytest.raises(ValueError, match="expected 33 buffers, got 2"):
        step_state(buffers()[:2])
