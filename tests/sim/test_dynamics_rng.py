"""The numba streams of `sim.kernels.rng` are numpy's `default_rng(seed)` bit for bit."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sim.kernels.rng import STREAM_WORDS, bounded_below, next_uint64, seed_stream, seed_streams


@given(seed=st.integers(0, 2**32 - 1))
def test_seeding_matches_numpy_pcg64_state(seed):
    stream = np.zeros(STREAM_WORDS, np.uint64)
    seed_stream(stream, seed)
    state = np.random.default_rng(seed).bit_generator.state["state"]
    assert (int(stream[0]) << 64) | int(stream[1]) == state["state"]
    assert (int(stream[2]) << 64) | int(stream[3]) == state["inc"]


@given(seed=st.integers(0, 2**31 - 2), bounds=st.lists(st.integers(1, 2**32), min_size=1, max_size=40))
def test_bounded_draws_match_numpy_integers(seed, bounds):
    """Mixed bounds exercise the buffered 32-bit halves, the rejection loop and the n == 1 no-draw case."""
    stream = np.zeros(STREAM_WORDS, np.uint64)
    seed_stream(stream, seed)
    reference = np.random.default_rng(seed)
    assert [bounded_below(stream, n) for n in bounds] == [int(reference.integers(0, n)) for n in bounds]
    assert next_uint64(stream) == reference.bit_generator.random_raw()


def test_batched_seeding_matches_per_agent_generators():
    seeds = np.random.default_rng(7).integers(np.iinfo(np.int32).max, size=50)
    streams = np.zeros((50, STREAM_WORDS), np.uint64)
    seed_streams(streams, seeds)
    for stream, seed in zip(streams, seeds, strict=True):
        assert bounded_below(stream, 1000) == np.random.default_rng(seed).integers(0, 1000)
