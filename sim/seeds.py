"""Every seed the simulator derives from another: the base seed of a batch, each episode's seed (and
each variant's base seed in a batch of pinned variants), the seeds of an episode's lifelong goal streams,
and the greedy baseline's tie-breaking stream. A recorded episode seed replays its episode
(`GridEnv.reset(episode_seeds=...)`), so these derivations are part of what a stored seed means.
"""

from __future__ import annotations

import functools

import numpy as np

_INT32_MAX = np.iinfo(np.int32).max


def base_seed(seed: int | None) -> int:
    """The base seed of a batch: `seed`, or 63 bits of fresh OS entropy for None. Raises ValueError
    outside [0, 2**63) (the range of scenario seeds; snapshots hold it as an int64)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) >> 65  # 128 bits of entropy
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed}")
    return int(seed)


def episode_seed(base: int, env: int, episode: int) -> int:
    """The seed of episode `episode` of environment `env`: SeedSequence(base, spawn_key=(env, episode))'s
    first 64-bit word, shifted to 63 bits (POGEMA accepts seeds < sys.maxsize)."""
    state = np.random.SeedSequence(base, spawn_key=(env, episode)).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


@functools.lru_cache(maxsize=64)
def variant_seeds(base: int, num_variants: int) -> tuple[int, ...]:
    """The base seed of each variant's environments in a batch that pins environments to variants:
    SeedSequence(base)'s first `num_variants` 32-bit words. Episode k of the j-th environment of variant v
    has seed `episode_seed(variant_seeds(base, V)[v], j, k)`, the episodes one GridEnv per variant with
    those base seeds plays."""
    return tuple(int(word) for word in np.random.SeedSequence(base).generate_state(num_variants))


def goal_stream_seeds(seed: int, num_agents: int) -> np.ndarray:
    """(N,) int64: the seeds of the agents' lifelong goal streams in the episode of `seed`, as POGEMA 1.4.0
    draws them (`default_rng(seed).integers(int32 max, size=N)`)."""
    return np.random.default_rng(seed).integers(_INT32_MAX, size=num_agents)


def tie_break_state(seed: int | None) -> np.ndarray:
    """(1,) uint64: the state of the greedy baseline's SplitMix64 tie-breaking stream (`sim.paths`) for
    `seed` (None: OS entropy): SeedSequence(seed)'s first 64-bit word."""
    return np.array(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64), dtype=np.uint64)
