"""Minibatches over agent groups (marl.minibatch): one group of all agents is the whole-env update
exactly; with several groups the forward values are the whole-env ones and the gradient is the documented
one (the paths through agents of other groups dropped); training with groups resumes exactly."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hpc
import scenarios
from benchmarks.group_links import links_inside, random_walk
from marl.buffers import RolloutBuffer
from marl.config import ConfigError, TrainConfig, resolve_config, stored_train_config
from marl.gae import compute_advantages
from marl.learner import make_learner
from marl.minibatch import MinibatchLayout, hilbert_index, loss_inputs
from marl.rollout import collect, start_rollouts
from marl.run_dir import KEEP_CHECKPOINTS, latest_checkpoint, read_run_config, write_yaml
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


@pytest.mark.parametrize("grouping", ["spatial", "consecutive"])
def test_groups_see_the_whole_env_values_and_drop_only_the_gradient_through_other_groups(grouping):
    """Two groups of 3 agents. Forward: a group's log-probs and values are the whole env's (the stored
    messages are what collection computed). Gradient: with every neighbour link that crosses groups
    removed, a group's gradient is the whole env's gradient of that group's loss; with the links kept it
    differs by the dropped paths (through the other group's memories and features)."""
    config = config_of(agent_groups=2, agent_grouping=grouping)
    learner, buffer = rollout(config, keep_messages=True)
    policy = learner.policy
    grouped, whole = MinibatchLayout.of(buffer, 2, grouping), MinibatchLayout.of(buffer, 1)
    picked = np.array([0, 3, 11])  # (chunk, env, group): (0, 0, 0), (0, 1, 1), (1, 2, 1)
    units, env_units = grouped.index(picked), whole.index(picked // 2)
    members = torch.from_numpy(units.members)  # (B, 3)
    if grouping == "spatial":  # the check covers groups that are not index runs
        assert not all(np.array_equal(m, np.sort(m)) and np.ptp(m) == 2 for m in members.numpy())
    rows = torch.arange(len(picked)).view(-1, 1)

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

    neighbours = buffer.neighbours  # (T, E, N, K)
    crossing = grouped.crossing_links(neighbours)
    # the same links found from the units' members: each agent's group at each step, compared across a link
    every = np.arange(grouped.num_units)
    chunk, env, members_of_every = grouped.index(every)
    group_of = np.empty(grouped.order.shape, dtype=np.int64)  # (K, E, N)
    group_of[chunk[:, None], env[:, None], members_of_every] = (every % grouped.groups)[:, None]
    at_step = np.repeat(group_of, grouped.chunk_length, axis=0)  # (T, E, N)
    linked = np.take_along_axis(at_step[:, :, None, :], np.clip(neighbours, 0, None), axis=-1)  # (T, E, N, K)
    np.testing.assert_array_equal(crossing, (neighbours >= 0) & (linked != at_step[..., None]))
    assert crossing.any() and not crossing[neighbours >= 0].all()
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


def forget_agent_grouping(run_dir: Path) -> None:
    """Rewrite the run's stored configs (config.yaml, the newest checkpoint's meta) without the
    `agent_grouping` key, as a run stored them before the key existed."""
    tensors, meta, path = latest_checkpoint(run_dir)
    meta["train_config"].pop("agent_grouping")
    for name in ("step", "schema_version"):
        meta.pop(name)
    hpc.save_checkpoint(path.parent, meta["update"], tensors, meta, keep=KEEP_CHECKPOINTS)
    stored = read_run_config(run_dir)
    stored["train_config"].pop("agent_grouping")
    write_yaml(run_dir / "config.yaml", stored)


@pytest.mark.parametrize("grouping", ["spatial", "consecutive, stored without the key"])
def test_training_with_agent_groups_resumes_exactly(tmp_path: Path, grouping: str):
    """Stop after 2 updates, resume, and reach the parameters of the uninterrupted run; a run whose stored
    configs lack `agent_grouping` resumes as the consecutive groups it trained with."""
    config = config_of(
        agent_groups=3,
        agent_grouping=grouping.split(",")[0],
        num_minibatches=4,
        total_agent_steps=16 * 3 * 6 * 4,
        checkpoint_every=2,
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
    if config.agent_grouping == "consecutive":
        forget_agent_grouping(tmp_path / "resumed")
        stored = read_run_config(tmp_path / "resumed")["train_config"]
        assert resolve_config(stored_train_config(stored), {}) == config
    train(env(), config, tmp_path / "resumed", resume=True, echo=lambda line: None)
    straight, _, _ = latest_checkpoint(tmp_path / "straight")
    resumed, meta, _ = latest_checkpoint(tmp_path / "resumed")
    assert meta["update"] == 4
    for name, tensor in straight["policy"].items():
        assert torch.equal(tensor, resumed["policy"][name]), name


@pytest.mark.parametrize("bits", [1, 2, 3, 6])
def test_the_hilbert_index_walks_every_cell_once_from_side_neighbour_to_side_neighbour(bits: int):
    rows, cols = np.meshgrid(np.arange(1 << bits), np.arange(1 << bits), indexing="ij")
    index = hilbert_index(rows, cols, bits).ravel()
    assert np.array_equal(np.sort(index), np.arange(1 << 2 * bits))
    walk = np.argsort(index)
    steps = np.abs(np.diff(rows.ravel()[walk])) + np.abs(np.diff(cols.ravel()[walk]))
    assert np.all(steps == 1)


def layout_over(positions: np.ndarray, groups: int, grouping: str) -> MinibatchLayout:
    """The layout of a rollout of chunks of 2 steps whose agents stood at `positions` (K, E, N, 2)."""
    chunks, num_envs, num_agents = positions.shape[:3]
    buffer = RolloutBuffer.allocate(2 * chunks, num_envs, num_agents, (1, 1, 1), np.uint8, 2, 0, (1, 1, 1))
    buffer.chunk_positions[:] = positions
    return MinibatchLayout.of(buffer, groups, grouping)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 5),
    st.sampled_from(["spatial", "consecutive"]),
    st.data(),
)
def test_agent_groups_partition_each_chunk_and_env_into_equal_runs_of_the_hilbert_order(
    chunks: int, num_envs: int, groups: int, size: int, grouping: str, data
):
    """Every (chunk, env)'s agents fall into exactly one of its G units of S agents; spatial groups are
    consecutive runs of the Hilbert order of the chunk-start cells (consecutive: of the agent indices)."""
    shape = (chunks, num_envs, groups * size, 2)
    count = int(np.prod(shape))
    cells = data.draw(st.lists(st.integers(0, 40), min_size=count, max_size=count))
    positions = np.array(cells, dtype=np.int32).reshape(shape)
    layout = layout_over(positions, groups, grouping)
    members = layout.index(np.arange(layout.num_units)).members  # (K*E*G, S)
    by_env = members.reshape(chunks, num_envs, groups, size)
    assert np.array_equal(
        np.sort(by_env.reshape(chunks, num_envs, -1)),
        np.broadcast_to(np.arange(groups * size), (chunks, num_envs, groups * size)),
    )
    if grouping == "spatial" and groups > 1:
        bits = max(int(positions.max()).bit_length(), 1)
        keys = hilbert_index(positions[..., 0], positions[..., 1], bits)  # (K, E, N)
        chunk, env = np.indices((chunks, num_envs))
        group_keys = keys[chunk[..., None, None], env[..., None, None], by_env]  # (K, E, G, S)
        assert np.all(group_keys[:, :, :-1].max(axis=-1) <= group_keys[:, :, 1:].min(axis=-1))
    else:
        assert np.array_equal(
            by_env, np.broadcast_to(np.arange(groups * size).reshape(groups, size), by_env.shape)
        )


def test_collection_keeps_every_agent_cell_at_each_chunk_start():
    """The stored chunk-start cells are those of a twin environment replaying the rollout's actions."""
    config = config_of(agent_groups=2)
    _, buffer = rollout(config, keep_messages=True)
    twin = GridEnv(scenarios.loads(CROWD), config.num_envs, seed=4, obs_dtype=np.uint8)
    twin.reset(seed=4)
    for t in range(buffer.shape[0]):
        if t % buffer.chunk_length == 0:
            assert np.array_equal(buffer.chunk_positions[t // buffer.chunk_length], twin.positions)
        twin.step(buffer.actions[t])
    assert not np.array_equal(buffer.chunk_positions[0], buffer.chunk_positions[1])


def test_spatial_groups_keep_most_neighbour_links_of_a_swarm_inside_a_group():
    """swarm-2k, 8 groups of 250 agents, two chunks of 8 steps of random moves: measured 0.904 of the
    neighbour links (the env's lists at every step) join agents of one spatial group against 0.123 (about
    1/8) of one consecutive group (benchmarks/group_links.py prints more group counts)."""
    buffer = random_walk("swarm-2k", chunks=2, chunk_length=8, seed=0)
    spatial, consecutive = (links_inside(buffer, 8, grouping) for grouping in ("spatial", "consecutive"))
    assert spatial > 0.85 and consecutive < 0.16
