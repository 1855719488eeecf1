"""A StepState holds the env's own buffers by reference: kernels write into them, it keeps them alive for
as long as it lives, and it lets them go when it dies (the step kernels' argument is built by hand, with
explicit reference counts, so a slip here is a leak or a use after free)."""

import gc
import sys

import numpy as np
from numba import njit

from sim.kernels.state import step_state
from sim.state import KERNEL_FIELDS


@njit(cache=True)
def _bump_elapsed(state):
    state.elapsed[0] += 1


def named_buffers():
    return tuple((name, np.zeros(3, dtype=np.int64)) for name in KERNEL_FIELDS)


def test_kernels_write_into_the_buffers_themselves():
    named = named_buffers()
    state = step_state(named)
    _bump_elapsed(state)
    _bump_elapsed(state)
    assert dict(named)["elapsed"][0] == 2


def test_a_state_holds_its_buffers_while_it_lives_and_releases_them_after():
    named = named_buffers()
    watched = named[7][1]
    alone = sys.getrefcount(watched)
    state = step_state(named)
    assert sys.getrefcount(watched) == alone + 1
    for _ in range(100):
        state = step_state(named)
    del state
    gc.collect()
    assert sys.getrefcount(watched) == alone
