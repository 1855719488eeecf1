"""A checkpoint holds every rank's action-sampling generator in one (ranks, state bytes) tensor; restoring a
rank must give that rank's generator back (torch 2.13's Generator.set_state crashes on a row view at a
storage offset, so the restore hands it a copy)."""

import pytest
import torch

from marl.config import TrainConfig
from marl.learner import make_learner

CONFIG = TrainConfig(model="gru", num_envs=2, rollout_length=8, chunk_length=4, seed=3)


def draws(generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2**31, (8,), generator=generator)


@pytest.mark.parametrize("world_size", [2, 3])
def test_every_rank_restores_its_own_sampling_generator(world_size):
    learners = [make_learner(CONFIG, (3, 5, 5), 5, torch.device("cpu"), rank) for rank in range(world_size)]
    for rank, learner in enumerate(learners):
        for _ in range(rank + 1):  # each rank at a different point of its stream
            draws(learner.sampling)
    first = learners[0]
    tensors = {
        "policy": first.policy.state_dict(),
        "optimizer": first.optimizer.state_dict(),
        "value_norm": first.value_norm.state_dict(),
        "shuffle_rng": first.shuffle.get_state(),
        "sampling_rng": torch.stack([learner.sampling.get_state() for learner in learners]),
    }
    for rank, learner in enumerate(learners):
        restored = make_learner(CONFIG, (3, 5, 5), 5, torch.device("cpu"), rank=0)
        restored.restore(tensors, rank)
        assert torch.equal(draws(restored.sampling), draws(learner.sampling)), rank
