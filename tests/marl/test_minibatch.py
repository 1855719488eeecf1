"""Minibatches over agent groups (marl.minibatch): one group of all agents is the whole-env update
exactly; with several groups the forward values are the whole-env ones and the gradient is the documented
one (the paths through agents of other groups dropped); training with groups resumes exactly."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import scenarios
from marl.buffers import RolloutBuffer
from marl.config import ConfigError, TrainConfig
from marl.gae import compute_advantages
from marl.learner import make_learner
from marl.minibatch import MinibatchLayout, loss_inputs
from marl.rollout import collect, start_rollouts
from marl.run_dir import latest_checkpoint
from marl.train import train
from marl.update import score_unrolled, update
from memory.pool import Outside
from sim.env import GridEnv

CPU = torch.device("cpu")

CROWD = """
name: tiny-crowd
map: {generator: random, width: 8, height: 8, density: 0.2}
agents: {count: 6}
dynamics: {collision_system: soft, on_target: restart, max_episode_steps: 12}
observation: {radius: 2, neighbours: 3, neighbour_radius: 4}
reward: {scheme: directional}
"""


def config_of(**overrides) -> TrainConfig:
    base = dict(
        model="srmt",
        scope="local",
        num_envs=3,
        rollout_length=16,
        chunk_length=8,
        epochs=2,
        num_minibatches=2,
        device="cpu",
        seed=4,
        eval_episodes=0,
    )
    return TrainConfig(**{**base, **overrides})


def rollout(config: TrainConfig, keep_messages: bool):
    """A learner and one collected rollout of the crowd (with each step's messages if asked)."""
    torch.set_num_threads(1)
    env = GridEnv(scenarios.loads(CROWD), config.num_envs, seed=4, obs_dtype=np.uint8)
    learner = make_learner(config, env.obs_shape, env.num_actions, CPU)
    carry = start_rollouts(env, learner.policy, seed=4)
    sizes = learner.policy.message_sizes if keep_messages else None
    buffer = RolloutBuffer.allocate(16, config.num_envs, 6, env.obs_shape, np.uint8, 8, 3, sizes)
    collect(env, learner.policy, learner.value_norm, buffer, carry, learner.sampling)
    compute_advantages(buffer, config.gamma, config.gae_lambda)
    assert buffer.reset_masks[1:].any() and (buffer.neighbours >= 0).any()
    return learner, buffer


def updated_parameters(learner, buffer, config: TrainConfig) -> dict[str, torch.Tensor]:
    learner = copy.deepcopy(learner)
    update(learner.policy, learner.optimizer, learner.value_norm, buffer, config, learner.shuffle)
    return dict(learner.policy.named_parameters())


@pytest.mark.parametrize("model", ["srmt", "neighbour_attention", "rmt"])
def test_one_group_of_every_agent_updates_exactly_as_the_whole_env_update(model):
    """The group path (each env's agents widened from the stored messages, every row replaced by the live
    one) gives bit for bit the parameters of the update that reads nothing from outside."""
    config = config_of(model=model)
    learner, buffer = rollout(config, keep_messages=True)
    plain = copy.copy(buffer)
    plain.messages = None
    grouped, whole = updated_parameters(learner, buffer, config), updated_parameters(learner, plain, config)
    for name, tensor in whole.items():
        assert torch.equal(grouped[name], tensor), name
    assert any(
        not torch.equal(tensor, p)
        for tensor, p in zip(whole.values(), learner.policy.parameters(), strict=True)
    )


def test_the_differential_check_catches_a_group_path_that_loses_the_live_rows(monkeypatch):
    """The check above fails when the group path reads the stored messages of its own agents (no
    gradient through them): it is sensitive to the gradient paths inside a group."""
    config = config_of()
    learner, buffer = rollout(config, keep_messages=True)
    plain = copy.copy(buffer)
    plain.messages = None
    monkeypatch.setattr(Outside, "widen", lambda self, live, stored: stored)
    grouped, whole = updated_parameters(learner, buffer, config), updated_parameters(learner, plain, config)
    assert any(not torch.equal(grouped[name], tensor) for name, tensor in whole.items())


def loss_of(learner, config, mb, logits, values, scored) -> torch.Tensor:
    """The minibatch loss of the unrolled logits and values, averaged over the `scored` steps."""
    return score_unrolled(logits, values, mb, scored, learner.value_norm, config).total


def gradient(policy, loss: torch.Tensor) -> torch.Tensor:
    policy.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])


def test_groups_see_the_whole_env_values_and_drop_only_the_gradient_through_other_groups():
    """Two groups of 3 agents. Forward: a group's log-probs and values are the whole env's (the stored
    messages are what collection computed). Gradient: with every neighbour link that crosses groups
    removed, a group's gradient is the whole env's gradient of that group's loss; with the links kept it
    differs by the dropped paths (through the other group's memories and features)."""
    config = config_of(agent_groups=2)
    learner, buffer = rollout(config, keep_messages=True)
    policy = learner.policy
    grouped, whole = MinibatchLayout.of(buffer, 2), MinibatchLayout.of(buffer, 1)
    units = np.array([0, 3, 11])  # (chunk, env, group): (0, 0, 0), (0, 1, 1), (1, 2, 1)
    env_units = units // 2
    members = torch.from_numpy(grouped.members(units % 2))  # (B, 3)
    rows = torch.arange(len(units)).view(-1, 1)

    def unrolled(arrays: dict[str, np.ndarray]) -> tuple[dict, tuple, dict, tuple]:
        mb = grouped.minibatch(arrays, units, CPU)
        state0 = grouped.gather_states(buffer.chunk_states, units, CPU)
        outside = grouped.outside(buffer, units, CPU)
        group = policy.unroll(
            mb["obs"], state0, mb["reset"], mb["neighbours"], mb["active"], outside_seq=outside
        )
        full_mb = whole.minibatch(arrays, env_units, CPU)
        state0 = whole.gather_states(buffer.chunk_states, env_units, CPU)
        full = policy.unroll(
            full_mb["obs"], state0, full_mb["reset"], full_mb["neighbours"], full_mb["active"]
        )
        return mb, group, full_mb, full

    arrays = loss_inputs(buffer, buffer.advantages)
    with torch.no_grad():
        _, (logits, values, _), _, (full_logits, full_values, _) = unrolled(arrays)
    torch.testing.assert_close(logits, full_logits[:, rows, members], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values, full_values[:, rows, members], rtol=1e-5, atol=1e-5)

    def gradients(arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        mb, (logits, values, _), full_mb, (full_logits, full_values, _) = unrolled(arrays)
        group_gradient = gradient(policy, loss_of(learner, config, mb, logits, values, mb["active"]))
        scored = torch.zeros_like(full_mb["active"])
        scored[:, rows, members] = full_mb["active"][:, rows, members]
        full_gradient = gradient(policy, loss_of(learner, config, full_mb, full_logits, full_values, scored))
        return group_gradient, full_gradient

    group_of = np.arange(6) // 3
    neighbours = buffer.neighbours
    crossing = (neighbours >= 0) & (group_of[neighbours] != group_of[None, None, :, None])
    assert crossing.any()
    separate = dict(arrays, neighbours=np.where(crossing, -1, neighbours))
    group_gradient, full_gradient = gradients(separate)
    torch.testing.assert_close(group_gradient, full_gradient, rtol=1e-4, atol=1e-6)
    group_gradient, full_gradient = gradients(arrays)
    assert not torch.allclose(group_gradient, full_gradient, rtol=1e-3, atol=1e-5)


def test_agent_groups_must_divide_the_agents_and_need_local_scope():
    config = config_of(agent_groups=4)
    _, buffer = rollout(config_of(), keep_messages=True)
    with pytest.raises(ConfigError, match="agent_groups 4: expected a divisor of the scenario's 6 agents"):
        MinibatchLayout.of(buffer, 4)
    with pytest.raises(ConfigError, match="needs scope 'local'"):
        config_of(agent_groups=2, scope="global")
    assert config.num_chunks == 2 * 3 * 4


def test_training_with_agent_groups_resumes_exactly(tmp_path: Path):
    config = config_of(
        agent_groups=3, num_minibatches=4, total_agent_steps=16 * 3 * 6 * 4, checkpoint_every=2
    )
    scenario = scenarios.loads(CROWD)

    def env() -> GridEnv:
        return GridEnv(scenario, config.num_envs, seed=4, obs_dtype=np.uint8)

    train(env(), config, tmp_path / "straight", echo=lambda line: None)

    def stop_at_update_3(line: str) -> None:
        if line.startswith("update 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(env(), config, tmp_path / "resumed", echo=stop_at_update_3)
    assert latest_checkpoint(tmp_path / "resumed")[1]["update"] == 2
    train(env(), config, tmp_path / "resumed", resume=True, echo=lambda line: None)
    straight, _, _ = latest_checkpoint(tmp_path / "straight")
    resumed, meta, _ = latest_checkpoint(tmp_path / "resumed")
    assert meta["update"] == 4
    for name, tensor in straight["policy"].items():
        assert torch.equal(tensor, resumed["policy"][name]), name
