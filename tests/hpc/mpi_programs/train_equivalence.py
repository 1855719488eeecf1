"""Run under `mpiexec -n R` with a scratch directory: on the tiny real scenario (tests/hpc/tiny.yaml),

1. one real MAPPO update (marl.update.update, the GridEnv rollouts of every rank) on R ranks with E
   environments each gives the gradient, the parameters and the value-normalizer statistics of one process
   updating on all R*E environments' rollouts;
2. `marl.train.train` for a few updates leaves every rank with identical parameters (printed as a hash).
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

import hpc
import scenarios
from marl.buffers import RolloutBuffer, map_state
from marl.config import TrainConfig
from marl.gae import compute_advantages
from marl.learner import make_learner
from marl.rollout import collect, start_rollouts
from marl.seeds import env_seed
from marl.train import train
from marl.update import SINGLE_PROCESS, Ranks, update
from sim.env import GridEnv

comm = hpc.get_comm()
assert comm.size > 1, f"expected an MPI world, got size {comm.size}"
torch.set_num_threads(1)
CPU = torch.device("cpu")
SCENARIO = scenarios.load(Path(__file__).parents[1] / "tiny.yaml")
CONFIG = TrainConfig(
    model="gru",
    num_envs=2,
    rollout_length=8,
    chunk_length=4,
    epochs=1,
    num_minibatches=1,
    device="cpu",
    seed=7,
    eval_episodes=0,
    checkpoint_every=2,
    total_agent_steps=3 * 8 * 2 * 4 * comm.size,
)


def rank_rollout(rank: int) -> RolloutBuffer:
    """The buffer that `rank` collects in its first update (its env seeds and its sampling stream)."""
    env = GridEnv(SCENARIO, CONFIG.num_envs, seed=CONFIG.seed)
    learner = make_learner(CONFIG, env.obs_shape, env.num_actions, CPU, rank)
    buffer = RolloutBuffer.allocate(
        CONFIG.rollout_length, CONFIG.num_envs, env.num_agents, env.obs_shape, np.float32, CONFIG.chunk_length
    )
    carry = start_rollouts(env, learner.policy, seed=env_seed(CONFIG.seed, rank))
    collect(env, learner.policy, learner.value_norm, buffer, carry, learner.sampling)
    compute_advantages(buffer, CONFIG.gamma, CONFIG.gae_lambda)
    return buffer


def joined(buffers: list[RolloutBuffer]) -> RolloutBuffer:
    """One buffer holding every rank's environments side by side (env axis 1; last_values axis 0)."""
    fields = {}
    for field in dataclasses.fields(RolloutBuffer):
        parts = [getattr(b, field.name) for b in buffers]
        if field.name == "chunk_states":
            fields[field.name] = [
                map_state(lambda *leaves: torch.cat(leaves), *chunk) for chunk in zip(*parts, strict=True)
            ]
        elif field.name == "last_values":
            fields[field.name] = np.concatenate(parts, axis=0)
        elif isinstance(parts[0], np.ndarray):
            fields[field.name] = np.concatenate(parts, axis=1)
        else:
            fields[field.name] = parts[0]
    return RolloutBuffer(**fields)


buffers = [rank_rollout(rank) for rank in range(comm.size)]
assert not np.array_equal(buffers[0].actions, buffers[1].actions), "ranks must draw their own rollouts"

mine = make_learner(CONFIG, (3, 5, 5), 5, CPU, comm.rank)
update(
    mine.policy,
    mine.optimizer,
    mine.value_norm,
    buffers[comm.rank],
    CONFIG,
    mine.shuffle,
    Ranks.of(comm, mine.policy),
)
everything = dataclasses.replace(CONFIG, num_envs=CONFIG.num_envs * comm.size)
one = make_learner(everything, (3, 5, 5), 5, CPU, 0)
update(one.policy, one.optimizer, one.value_norm, joined(buffers), everything, one.shuffle, SINGLE_PROCESS)

for (name, param), reference in zip(mine.policy.named_parameters(), one.policy.parameters(), strict=True):
    torch.testing.assert_close(param.grad, reference.grad, rtol=1e-4, atol=1e-6, msg=f"gradient {name}")
    torch.testing.assert_close(param, reference, rtol=1e-5, atol=1e-6, msg=f"parameter {name}")
for name, tensor in mine.value_norm.state_dict().items():
    torch.testing.assert_close(tensor, one.value_norm.state_dict()[name], rtol=1e-9, atol=0.0, msg=name)
hpc.check_params_equal(comm, mine.policy)
print(f"gradient equivalence ok rank {comm.rank} of {comm.size}", flush=True)

env = GridEnv(SCENARIO, CONFIG.num_envs, seed=CONFIG.seed)
learner = train(env, CONFIG, Path(sys.argv[1]), echo=lambda line: None, comm=comm)
print(f"trained rank {comm.rank} hash {hpc.params_hash(learner.policy)}", flush=True)
