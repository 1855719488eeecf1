"""How many threads torch computes with: decided here, for every command that runs a policy.

One thread is the default. The policies are small (a few thousand parameters per agent) and their ops run
on tensors of a few hundred kilobytes, where a second torch thread mostly waits on its sibling: on a
2-core machine that the simulator's numba threads and other jobs also use, a minibatch took 7 s instead of
1 s with torch's default of one thread per core (docs/results.md), and evaluation 288.6 s instead of
12.7 s. `TrainConfig.torch_threads` (training) and `--torch-threads` (evaluation) change the count.
"""

from __future__ import annotations

TORCH_THREADS = 1


def use_torch_threads(count: int = TORCH_THREADS) -> None:
    """Set torch's intra-op thread count for this process (`count` >= 1)."""
    import torch

    if count < 1:
        raise ValueError(f"torch threads {count}: expected a positive integer")
    torch.set_num_threads(count)
