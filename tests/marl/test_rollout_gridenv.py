"""The MAPPO pipeline on the real simulator (sim.GridEnv, uint8 observations), not the CorridorEnv double:
a few seconds of training improve a tiny corridor task, and local memory scope (the simulator's neighbour
lists) flows through collection and the chunked update exactly."""

from pathlib import Path

import numpy as np
import pytest
import torch

import scenarios
from marl.buffers import RolloutBuffer
from marl.config import TrainConfig
from marl.evaluate import evaluate_scenario
from marl.gae import compute_advantages
from marl.learner import make_learner
from marl.minibatch import MinibatchLayout
from marl.rollout import collect, start_rollouts
from marl.run_dir import latest_checkpoint, load_policy
from marl.train import train
from marl.update import update
from sim.env import GridEnv

CPU = torch.device("cpu")

CORRIDOR = """
name: tiny-corridor
map:
  generator: ascii
  ascii: |
    ....
    #.##
    ....
agents: {count: 1, placement: fixed, starts: [[0, 0]], goals: [[2, 3]]}
dynamics: {collision_system: block_both, on_target: finish, max_episode_steps: 16}
observation: {radius: 2}
reward: {scheme: directional}
"""

CROWD = """
name: tiny-crowd
map: {generator: random, width: 8, height: 8, density: 0.2}
agents: {count: 5}
dynamics: {collision_system: soft, on_target: restart, max_episode_steps: 12}
observation: {radius: 2, neighbours: 2, neighbour_radius: 3}
reward: {scheme: directional}
"""


@pytest.mark.slow
def test_a_few_seconds_of_training_on_gridenv_improve_the_corridor(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    scenario = scenarios.loads(CORRIDOR)
    config = TrainConfig(
        model="gru",
        total_agent_steps=10_240,
        num_envs=16,
        rollout_length=16,
        chunk_length=8,
        epochs=2,
        num_minibatches=2,
        lr=3e-3,
        checkpoint_every=1_000,
        eval_episodes=0,
        device="cpu",
        seed=1,
    )
    untrained = evaluate_scenario(scenario, make_learner(config, (3, 5, 5), 5, CPU).policy, 100, 11, CPU)
    train(GridEnv(scenario, 16, seed=1, obs_dtype=np.uint8), config, tmp_path / "run", echo=lambda _: None)
    policy, _ = load_policy(latest_checkpoint(tmp_path / "run")[2])
    trained = evaluate_scenario(scenario, policy, 100, 11, CPU)  # held-out sampling seeds, float32 obs
    assert trained[0]["CSR"] > untrained[0]["CSR"] + 0.3
    assert trained[0]["ep_length"] < untrained[0]["ep_length"] - 1.0


class NeighbourLog:
    """A GridEnv that remembers the neighbour lists the policy saw at each step."""

    def __init__(self, env: GridEnv) -> None:
        self.env, self.seen = env, []

    def __getattr__(self, name):
        return getattr(self.env, name)

    @property
    def neighbours(self) -> np.ndarray:
        self.seen.append(self.env.neighbours.copy())
        return self.env.neighbours


def test_local_scope_flows_through_collection_and_the_chunked_update() -> None:
    torch.set_num_threads(1)
    scenario = scenarios.loads(CROWD)
    config = TrainConfig(
        model="srmt",
        scope="local",
        num_envs=4,
        rollout_length=16,
        chunk_length=8,
        epochs=1,
        num_minibatches=2,
        device="cpu",
        seed=2,
    )
    env = NeighbourLog(GridEnv(scenario, 4, seed=2, obs_dtype=np.uint8))
    learner = make_learner(config, env.obs_shape, env.num_actions, CPU)
    carry = start_rollouts(env, learner.policy, seed=2)
    buffer = RolloutBuffer.allocate(16, 4, 5, env.obs_shape, np.uint8, 8, num_neighbours=2)
    collect(env, learner.policy, learner.value_norm, buffer, carry, learner.sampling)
    assert buffer.obs.dtype == np.uint8
    assert np.array_equal(buffer.neighbours, np.stack(env.seen[:16]))
    assert (buffer.neighbours >= 0).any() and (buffer.neighbours == -1).any()
    assert buffer.reset_masks[1:].any(), "the rollout must cross an episode boundary inside a chunk"

    # unrolling every (chunk, env) from its stored state reproduces the collected log-probs and values
    layout = MinibatchLayout.of(buffer, groups=1)
    units = layout.index(np.arange(2 * 4))  # every (chunk, env)
    pick = {
        name: torch.from_numpy(layout.gather(getattr(buffer, name), units))
        for name in ("obs", "reset_masks", "active", "actions", "log_probs", "raw_values", "neighbours")
    }
    state0 = layout.gather_states(buffer.chunk_states, units, CPU)

    def unrolled(neighbours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            logits, values, _ = learner.policy.unroll(
                pick["obs"], state0, pick["reset_masks"], neighbours, pick["active"]
            )
        return torch.log_softmax(logits, -1).gather(-1, pick["actions"].unsqueeze(-1)).squeeze(-1), values

    log_probs, values = unrolled(pick["neighbours"])
    active = pick["active"]
    torch.testing.assert_close(log_probs[active], pick["log_probs"][active], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values[active], pick["raw_values"][active], rtol=1e-5, atol=1e-5)
    # the neighbour lists matter: without them the same chunks give other values
    _, alone = unrolled(torch.full_like(pick["neighbours"], -1))
    assert not torch.allclose(alone[active], values[active], atol=1e-4)

    compute_advantages(buffer, config.gamma, config.gae_lambda)
    before = [p.detach().clone() for p in learner.policy.parameters()]
    stats = update(learner.policy, learner.optimizer, learner.value_norm, buffer, config, learner.shuffle)
    assert stats["minibatch_steps"] == 2 and np.isfinite(stats["policy_loss"])
    changed = [not torch.equal(b, p) for b, p in zip(before, learner.policy.parameters(), strict=True)]
    assert all(changed), "every parameter, the memory cross-attention included, gets a gradient step"


def test_collection_on_threaded_environments_keeps_torch_on_its_thread_count() -> None:
    """numba's OpenMP layer sets the process-wide OpenMP thread count on every parallel simulator step;
    collection must give torch its own count back (it once ran training on numba's count, and a run's
    float results then depended on when the simulator first ran in the process)."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads to run the parallel step kernel")
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        env = GridEnv(scenarios.loads(CROWD), 4, seed=0, num_threads=2, obs_dtype=np.uint8)
        config = TrainConfig(model="gru", num_envs=4, rollout_length=4, chunk_length=4, device="cpu")
        learner = make_learner(config, env.obs_shape, env.num_actions, CPU)
        carry = start_rollouts(env, learner.policy, seed=0)
        buffer = RolloutBuffer.allocate(4, 4, 5, env.obs_shape, carry.obs.dtype, 4, 0)
        collect(env, learner.policy, learner.value_norm, buffer, carry, learner.sampling)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
