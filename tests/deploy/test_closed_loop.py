"""Closed loop: the compiled C policy drives the agents in sim.GridEnv exactly like torch does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.agent import AgentStep, MessageEncoder
from deploy.cbuild import CFunction, build
from deploy.ccompile import compile_module, link
from deploy.rollout import decentralized_rollout, per_sample, sample_actions
from deploy.verify import torch_runner
from scenarios.loader import loads
from sim.env import GridEnv
from tests.deploy.helpers import decisive_policy

SMALL = """
name: small
map: {generator: random, width: 8, height: 8, density: 0.1}
agents: {count: 4}
dynamics: {collision_system: soft, on_target: finish, max_episode_steps: 24}
observation: {radius: 2}
"""


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    policy = decisive_policy("srmt", (3, 5, 5), 7)
    step = AgentStep(policy, 3)
    program = compile_module(step, step.example_inputs(), step.output_names)
    source = tmp_path_factory.mktemp("closed_loop") / "policy.c"
    source.write_text("#include <math.h>\n#include <stdint.h>\n" + program.source)
    function = CFunction(
        build([source], source.with_suffix(".so")), program.function, program.inputs, program.outputs
    )
    return step, per_sample(function, [spec.name for spec in program.inputs])


@pytest.mark.slow
def test_c_policy_reproduces_torch_episodes(policies):
    step, c_run = policies
    scenario = loads(SMALL)
    by_torch = decentralized_rollout(step, torch_runner(step), scenario, num_envs=100, seed=5)
    by_c = decentralized_rollout(step, c_run, scenario, num_envs=100, seed=5)
    assert len(by_torch.metrics) == len(by_c.metrics) == 100
    assert abs(by_torch.success_rate - by_c.success_rate) <= 0.01
    assert np.mean(by_torch.actions == by_c.actions) >= 0.999


def test_dropped_messages_change_what_agents_receive(policies):
    step, _ = policies
    scenario = loads(SMALL)
    seen = []
    run = torch_runner(step)

    def spy(batch):
        seen.append(batch["message_mask"].sum())
        return run(batch)

    decentralized_rollout(step, spy, scenario, num_envs=8, seed=3, max_steps=6)
    full = sum(seen)
    seen.clear()
    decentralized_rollout(step, spy, scenario, num_envs=8, seed=3, max_steps=6, drop_rate=0.5)
    assert 0.3 * full < sum(seen) < 0.7 * full


def test_neighbour_attention_c_drones_act_like_torch(tmp_path):
    policy = decisive_policy("neighbour_attention", (3, 5, 5), 8)
    step, encoder = AgentStep(policy, 3), MessageEncoder(policy)
    example = step.example_inputs()
    programs = [
        compile_module(step, example, step.output_names),
        compile_module(encoder, {"obs": example["obs"]}, ["message"], function="gs_policy_message"),
    ]
    source = tmp_path / "policy.c"
    source.write_text("#include <math.h>\n#include <stdint.h>\n" + link(programs))
    library = build([source], source.with_suffix(".so"))
    c_step, c_encode = (CFunction(library, p.function, p.inputs, p.outputs) for p in programs)

    def torch_encode(batch):
        with torch.no_grad():
            return [encoder(torch.from_numpy(batch["obs"]))[0].numpy()]

    scenario = loads(SMALL)
    by_torch = decentralized_rollout(step, torch_runner(step), scenario, 10, seed=9, encode=torch_encode)
    by_c = decentralized_rollout(
        step,
        per_sample(c_step, [s.name for s in programs[0].inputs]),
        scenario,
        10,
        seed=9,
        encode=per_sample(c_encode, ["obs"]),
    )
    assert by_torch.actions.shape == by_c.actions.shape
    assert np.mean(by_torch.actions == by_c.actions) >= 0.999


def test_drones_hearing_everyone_act_like_the_centralized_global_policy():
    # A global-scope policy pools every agent's memory; drones hearing the whole map get the same pool by
    # radio, so their logits equal SwarmPolicy.step's up to the int8 message encoding (about 0.03 here;
    # drones that never heard anyone differ by about 2).
    policy = decisive_policy("srmt", (3, 5, 5), 11, scope="global")
    step, scenario, E, N = AgentStep(policy, 3), loads(SMALL), 6, 4
    run, logits_seen = torch_runner(step), []

    def spy(batch):
        outputs = run(batch)
        logits_seen.append(outputs[0])
        return outputs

    rollout = decentralized_rollout(step, spy, scenario, E, seed=2, max_steps=24, greedy=True)
    env = GridEnv(scenario, E, 2, auto_reset=False)
    obs, state = env.reset(), policy.initial_state(E, N)
    reset = torch.ones(E, N, dtype=torch.bool)
    playing = np.ones(E, dtype=bool)  # an environment whose episode ended leaves the drones' batch
    with torch.no_grad():
        for actions, decentralized in zip(rollout.actions, logits_seen, strict=True):
            active = env.active.copy()
            logits, _, state = policy.step(obs, state, reset, None, active)
            centralized = logits.numpy()[playing].reshape(-1, logits.shape[-1])  # (B, N, A) -> (B*N, A)
            alive = active[playing].reshape(-1)
            np.testing.assert_allclose(decentralized[alive], centralized[alive], atol=0.1)
            obs, _, _, _, info = env.step(actions)
            playing &= np.array([m is None for m in info["metrics"]])
            reset[:] = False


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-8.0, 8.0), min_size=2, max_size=6))
def test_sampled_actions_follow_the_policy_distribution(logits):
    # Evenly spaced uniform numbers pick each action in proportion to its softmax probability.
    draws = 1000
    row = np.asarray(logits, np.float32)
    actions = sample_actions(np.tile(row, (draws, 1)), (np.arange(draws) + 0.5) / draws)
    probabilities = torch.softmax(torch.from_numpy(row).double(), 0).numpy()
    frequencies = np.bincount(actions, minlength=len(row)) / draws
    np.testing.assert_allclose(frequencies, probabilities, atol=1.5 / draws)
