"""`marl.rollout.PolicyLoop`, the one loop of a policy in a batched env: reset masks from ended episodes,
environments leaving the batch with their memory, local neighbour lists, torch's thread count."""

from __future__ import annotations

import numpy as np
import torch

import memory
from marl.rollout import PolicyLoop
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim.env import GridEnv

SCENARIO = Scenario(
    name="loop",
    map=MapSpec(width=8, height=8, density=0.1),
    agents=AgentsSpec(count=4),
    dynamics=DynamicsSpec(max_episode_steps=6),
    observation=ObservationSpec(radius=2, neighbours=2, neighbour_radius=3.0),
)


def loop_in(num_envs: int, scope: str) -> tuple[PolicyLoop, np.ndarray]:
    torch.manual_seed(0)
    env = GridEnv(SCENARIO, num_envs, seed=0, auto_reset=False)
    policy = memory.make_policy("srmt", env.obs_shape, preset="drone", scope=scope)
    loop = PolicyLoop(policy, env)
    return loop, loop.sim(env.reset)


def test_every_agent_starts_reset_and_an_ended_episode_resets_only_its_agents():
    loop, obs = loop_in(3, "global")
    assert loop.reset_mask.all() and loop.reset_mask.shape == (3, 4)
    loop.act(obs)
    ended = loop.episodes_ended({"metrics": [None, {"CSR": 1.0}, None]})
    assert ended.tolist() == [False, True, False]
    assert loop.reset_mask.tolist() == [[False] * 4, [True] * 4, [False] * 4]


def test_an_environment_that_leaves_takes_its_memory_and_the_others_play_on_as_before():
    whole, obs = loop_in(3, "local")
    part, _ = loop_in(3, "local")
    whole.act(obs)
    part.act(obs)
    whole.episodes_ended({"metrics": [None] * 3})
    part.episodes_ended({"metrics": [None, {"CSR": 0.0}, None]})
    part.drop(np.array([False, True, False]))
    assert part.rows.tolist() == [0, 2] and part.reset_mask.shape == (2, 4)
    np.testing.assert_array_equal(part.neighbours(), whole.env.neighbours[[0, 2]])
    with torch.no_grad():
        kept = whole.act(obs).logits[[0, 2]]
        played = part.act(obs[part.rows]).logits
    torch.testing.assert_close(played, kept)
    torch.testing.assert_close(part.state.memory, whole.state.memory[[0, 2]])


def test_a_global_policy_is_given_no_neighbour_lists():
    loop, _ = loop_in(2, "global")
    assert loop.neighbours() is None


def test_a_simulator_call_gives_torch_its_thread_count_back():
    torch.set_num_threads(1)
    loop, _ = loop_in(1, "global")
    assert loop.sim(torch.set_num_threads, 2) is None  # what a parallel numba step does to the count
    assert torch.get_num_threads() == 1
