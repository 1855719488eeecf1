"""Every seed that training, evaluation and imitation derive from a run's seed, in one place.

A run is reproducible from its saved config because each stream below is a fixed function of `seed` (and
the rank, variant or iteration it serves); the simulator's own derivations (episode seeds, lifelong goal
streams) are `sim.seeds`.
"""

from __future__ import annotations

import numpy as np

# evaluation draws its episodes from `seed + EVALUATION_OFFSET`, so that they differ from the training
# environments' episodes, which start at the training seed
EVALUATION_OFFSET = 1_000_003


def derived_seed(*key: int) -> int:
    """One 32-bit seed from a key of non-negative integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


def env_seed(seed: int, rank: int = 0) -> int:
    """The base seed of `rank`'s environments (rank 0's: a one-process run's; each rank's its own stream)."""
    # the 0 keeps the seeds of the runs reported in docs/results.md
    return derived_seed(seed, 0) if rank == 0 else derived_seed(seed, 0, rank)


def sampling_seed(seed: int, rank: int = 0) -> int:
    """The seed of `rank`'s action-sampling generator (rank 0: `seed`, as in a one-process run)."""
    return seed if rank == 0 else derived_seed(seed, rank)


def shuffle_seed(seed: int) -> int:
    """The seed of the minibatch order (the same on every rank)."""
    return seed + 1


def evaluation_seed(seed: int) -> int:
    """The seed of a run's closing evaluation (and of `gridswarm eval --seed`): disjoint from training's."""
    return seed + EVALUATION_OFFSET


def evaluation_episode_seeds(seed: int, variants: int, episodes: int) -> np.ndarray:
    """(V, K) int64: the episode seeds of K evaluation episodes of each of V variants."""
    drawn = np.random.SeedSequence(seed).generate_state(variants * episodes, np.uint64) >> np.uint64(1)
    return drawn.astype(np.int64).reshape(variants, episodes)


def pogema_seeds(seed: int, variant_index: int, episodes: int) -> list[int]:
    """The POGEMA GridConfig seeds of a variant's K evaluation episodes."""
    return [int(s) for s in np.random.SeedSequence([seed, variant_index]).generate_state(episodes)]


def expert_data_seed(seed: int) -> int:
    """The seed of the imitation recipe's expert episodes."""
    return derived_seed(seed, 1)


def dagger_seeds(seed: int, iteration: int) -> tuple[int, int, int]:
    """DAgger iteration `iteration`'s seeds: its environments (and expert mixture), the learner's action
    sampling, and the choice of the expert episodes kept beside its own."""
    return (
        derived_seed(seed, 2, iteration),
        derived_seed(sampling_seed(seed), iteration),
        derived_seed(seed, 3, iteration),
    )
