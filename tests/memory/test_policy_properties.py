"""Properties every swarm policy must have, checked on random batched episodes (hypothesis seeds).

Who may read whom is checked with exact gradients: a zero gradient means no path at all.
"""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import memory
from tests.memory.episodes import OBS_SHAPE, Episode, random_episode

SCOPES = ("global", "local")
SEEDS = st.integers(0, 2**16)
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}
NOT_SHARING = ("rmt", "attention", "gru", "empty")


@functools.cache
def make(name: str, scope: str = "global", seed: int = 0) -> memory.SwarmPolicy:
    """A policy with weights from seed % 4 (cached: initialization costs more than a test step)."""
    return memory.make_policy(name, OBS_SHAPE, scope=scope, seed=seed % 4)


def unroll(policy: memory.SwarmPolicy, episode: Episode, obs: torch.Tensor | None = None):
    E, N = episode.obs.shape[1:3]
    return policy.unroll(
        episode.obs if obs is None else obs,
        policy.initial_state(E, N),
        episode.resets,
        episode.neighbours,
        episode.active,
    )


def every_policy_and_scope(max_examples: int, **strategies):
    """Run a test for every policy name and scope, on `max_examples` drawn examples of `strategies`."""

    def wrap(test):
        test = given(seed=SEEDS, **strategies)(settings(max_examples=max_examples)(test))
        test = pytest.mark.parametrize("name", memory.POLICY_NAMES)(test)
        return pytest.mark.parametrize("scope", SCOPES)(test)

    return wrap


def grad_wrt_obs(policy: memory.SwarmPolicy, episode: Episode, select) -> torch.Tensor:
    """d(sum of select(logits (T, E, N, A)))/d obs (T, E, N, C, F, F)."""
    obs = episode.obs.clone().requires_grad_(True)
    logits, _, _ = unroll(policy, episode, obs)
    (grad,) = torch.autograd.grad(select(logits).sum(), obs, allow_unused=True)
    return torch.zeros_like(obs) if grad is None else grad


@every_policy_and_scope(6)
def test_unroll_equals_repeated_steps_and_is_finite(name: str, scope: str, seed: int) -> None:
    policy = make(name, scope, seed)
    episode = random_episode(seed, steps=4, num_envs=2, num_agents=4)
    logits, values, final = unroll(policy, episode)
    state = policy.initial_state(2, 4)
    for t in range(4):
        step_logits, step_value, state = policy.step(
            episode.obs[t], state, episode.resets[t], episode.neighbours[t], episode.active[t]
        )
        # Equal up to float rounding only: one step and the whole unroll run the same layers on batches of
        # other shapes, and oneDNN's kernels (AVX-512 on Intel) sum in a shape-dependent order (~1e-7).
        assert torch.allclose(step_logits, logits[t], **TOLERANCE)
        assert torch.allclose(step_value, values[t], **TOLERANCE)
    assert torch.allclose(state.memory, final.memory, **TOLERANCE)
    assert torch.allclose(state.history, final.history, **TOLERANCE)
    assert torch.isfinite(logits).all() and torch.isfinite(values).all()


@every_policy_and_scope(6)
def test_permuting_agents_permutes_every_output(name: str, scope: str, seed: int) -> None:
    policy = make(name, scope, seed)
    episode = random_episode(seed, steps=3, num_envs=2, num_agents=5)
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(seed))
    new_index_of = perm.argsort()
    neighbours = episode.neighbours[:, :, perm]
    neighbours = torch.where(neighbours >= 0, new_index_of[neighbours.clamp(min=0)], -1)
    permuted = Episode(
        episode.obs[:, :, perm], episode.resets[:, :, perm], episode.active[:, :, perm], neighbours
    )
    logits, values, state = unroll(policy, episode)
    p_logits, p_values, p_state = unroll(policy, permuted)
    torch.testing.assert_close(p_logits, logits[:, :, perm], **TOLERANCE)
    torch.testing.assert_close(p_values, values[:, :, perm], **TOLERANCE)
    torch.testing.assert_close(p_state.memory, state.memory[:, perm], **TOLERANCE)
    torch.testing.assert_close(p_state.history, state.history[:, perm], **TOLERANCE)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("name", NOT_SHARING)
@settings(max_examples=3)
@given(seed=SEEDS, agent=st.integers(0, 3))
def test_policies_without_sharing_never_read_other_agents(
    name: str, scope: str, seed: int, agent: int
) -> None:
    episode = random_episode(seed, steps=4, num_envs=1, num_agents=4)
    grad = grad_wrt_obs(make(name, scope, seed), episode, lambda logits: logits[:, :, agent])
    others = [j for j in range(4) if j != agent]
    assert torch.count_nonzero(grad[:, :, others]) == 0
    assert torch.count_nonzero(grad[:, :, agent]) > 0


@pytest.mark.parametrize("scope", SCOPES)
@settings(max_examples=3)
@given(seed=SEEDS)
def test_srmt_reads_other_agents_through_memory_from_the_second_step(scope: str, seed: int) -> None:
    episode = random_episode(seed, steps=2, num_envs=1, num_agents=3, reset_rate=0.0, inactive_rate=0.0)
    episode = Episode(
        episode.obs, episode.resets, episode.active, torch.tensor([[1, 2], [2, 0], [0, 1]]).expand(2, 1, 3, 2)
    )
    policy = make("srmt", scope, seed)
    first_step = grad_wrt_obs(policy, episode, lambda logits: logits[0, :, 0])
    second_step = grad_wrt_obs(policy, episode, lambda logits: logits[1, :, 0])
    assert torch.count_nonzero(first_step[:, :, 1:]) == 0  # at its start an agent has no memory to share
    assert torch.count_nonzero(second_step[0, :, 1]) > 0 and torch.count_nonzero(second_step[0, :, 2]) > 0
    assert torch.count_nonzero(second_step[1, :, 1:]) == 0  # memories are from the previous step


@pytest.mark.parametrize("scope", SCOPES)
def test_neighbour_attention_reads_this_steps_encodings_of_others(scope: str) -> None:
    episode = random_episode(3, steps=1, num_envs=1, num_agents=3, inactive_rate=0.0, k=2)
    episode = Episode(episode.obs, episode.resets, episode.active, torch.tensor([[[[1, 2], [2, 0], [0, 1]]]]))
    grad = grad_wrt_obs(make("neighbour_attention", scope), episode, lambda logits: logits[0, :, 0])
    assert torch.count_nonzero(grad[0, :, 1]) > 0 and torch.count_nonzero(grad[0, :, 2]) > 0


@every_policy_and_scope(6, other_seed=SEEDS)
def test_an_env_wide_reset_isolates_episodes(name: str, scope: str, seed: int, other_seed: int) -> None:
    policy = make(name, scope, seed)
    episode, other = (random_episode(s, steps=5, num_envs=1, num_agents=4) for s in (seed, other_seed))
    # different pasts, then from step 3 on the same everything with every agent reset at step 3
    other_obs = other.obs.clone()
    other_obs[3:] = episode.obs[3:]
    resets, other_resets = episode.resets.clone(), other.resets.clone()
    resets[3] = other_resets[3] = True
    active, other_active = episode.active.clone(), other.active.clone()
    other_active[3:] = active[3:]
    other_neighbours = other.neighbours.clone()
    other_neighbours[3:] = episode.neighbours[3:]
    other_resets[4:] = resets[4:]
    logits, values, state = unroll(policy, Episode(episode.obs, resets, active, episode.neighbours))
    o_logits, o_values, o_state = unroll(
        policy, Episode(other_obs, other_resets, other_active, other_neighbours)
    )
    assert torch.equal(logits[3:], o_logits[3:]) and torch.equal(values[3:], o_values[3:])
    assert torch.equal(state.memory, o_state.memory) and torch.equal(state.history, o_state.history)


@every_policy_and_scope(3, agent=st.integers(0, 3))
def test_a_restarting_agent_acts_on_its_new_observation_alone(
    name: str, scope: str, seed: int, agent: int
) -> None:
    episode = random_episode(seed, steps=4, num_envs=1, num_agents=4)
    episode.resets[2, 0, agent] = True
    episode.active[2, 0, agent] = True
    grad = grad_wrt_obs(make(name, scope, seed), episode, lambda logits: logits[2, 0, agent])
    assert torch.count_nonzero(grad[:2]) == 0  # nothing from before the restart, of anyone
    if name != "neighbour_attention":  # which reads the others' current encodings by design
        assert torch.count_nonzero(grad[2, 0, [j for j in range(4) if j != agent]]) == 0


@pytest.mark.parametrize("name", ["srmt", "rmt"])
def test_at_a_reset_there_is_no_memory_token(name: str) -> None:
    policy = make(name)
    episode = random_episode(6, steps=2, num_envs=1, num_agents=3, reset_rate=0.0)
    episode.resets[1, 0, 1] = episode.active[1, 0, 1] = True
    logits, _, _ = unroll(policy, episode)
    (position_grad,) = torch.autograd.grad(logits[1, 0, 1].sum(), policy.core.position)
    assert torch.count_nonzero(position_grad[0]) == 0 and torch.count_nonzero(position_grad[1:]) > 0


@every_policy_and_scope(3, finished=st.integers(0, 3))
def test_finished_agents_influence_nobody_and_keep_their_state(
    name: str, scope: str, seed: int, finished: int
) -> None:
    policy = make(name, scope, seed)
    episode = random_episode(seed, steps=4, num_envs=1, num_agents=4)
    episode.active[0, 0, finished] = True
    episode.active[1:, 0, finished] = False
    episode.resets[1:, 0, finished] = False
    obs = episode.obs.clone().requires_grad_(True)
    logits, values, state = unroll(policy, episode, obs)
    others = [j for j in range(4) if j != finished]
    weights = torch.Generator().manual_seed(seed)
    outputs = (logits[1:, 0, others] * torch.rand(logits[1:, 0, others].shape, generator=weights)).sum()
    outputs = outputs + values[1:, 0, others].sum() + state.memory[0, others].sum()
    (grad,) = torch.autograd.grad(outputs + state.history[0, others].sum(), obs, allow_unused=True)
    assert grad is None or torch.count_nonzero(grad[1:, 0, finished]) == 0
    _, _, after_first = policy.step(
        episode.obs[0],
        policy.initial_state(1, 4),
        episode.resets[0],
        episode.neighbours[0],
        episode.active[0],
    )
    # kept, up to the shape-dependent float rounding of one step vs the unroll (see the test above)
    assert torch.allclose(state.memory[0, finished], after_first.memory[0, finished], **TOLERANCE)
    assert torch.allclose(state.history[0, finished], after_first.history[0, finished], **TOLERANCE)


@every_policy_and_scope(3)
def test_a_batch_of_envs_equals_each_env_alone(name: str, scope: str, seed: int) -> None:
    policy = make(name, scope, seed)
    episode = random_episode(seed, steps=3, num_envs=3, num_agents=4)
    logits, values, state = unroll(policy, episode)
    for e in range(3):
        alone = Episode(
            *(x[:, e : e + 1] for x in (episode.obs, episode.resets, episode.active, episode.neighbours))
        )
        e_logits, e_values, e_state = unroll(policy, alone)
        torch.testing.assert_close(e_logits, logits[:, e : e + 1], **TOLERANCE)
        torch.testing.assert_close(e_values, values[:, e : e + 1], **TOLERANCE)
        torch.testing.assert_close(e_state.memory, state.memory[e : e + 1], **TOLERANCE)


@pytest.mark.parametrize("name", memory.POLICY_NAMES)
@settings(max_examples=6)
@given(seed=SEEDS, listed_self=st.booleans(), padding=st.integers(0, 2))
def test_local_scope_listing_everyone_equals_global_scope(
    name: str, seed: int, listed_self: bool, padding: int
) -> None:
    episode = random_episode(seed, steps=4, num_envs=2, num_agents=4)
    generator = torch.Generator().manual_seed(seed)
    everyone = torch.rand(4, 2, 4, 4, generator=generator).argsort(dim=-1)  # all agents, random order
    if not listed_self:
        everyone = everyone.masked_fill(everyone == torch.arange(4).view(1, 1, 4, 1), -1)
    everyone = torch.nn.functional.pad(everyone, (0, padding), value=-1)
    episode = Episode(episode.obs, episode.resets, episode.active, everyone)
    global_policy = make(name, "global", seed)
    local_policy = memory.make_policy(name, OBS_SHAPE, scope="local")
    local_policy.load_state_dict(global_policy.state_dict())
    for expected, found in zip(
        unroll(global_policy, episode)[:2], unroll(local_policy, episode)[:2], strict=True
    ):
        torch.testing.assert_close(found, expected, **TOLERANCE)


@pytest.mark.parametrize("name", memory.POLICY_NAMES)
@settings(max_examples=6)
@given(seed=SEEDS)
def test_agent_step_equals_the_batched_local_step(name: str, seed: int) -> None:
    policy = make(name, "local", seed)
    E, N, K = 2, 5, 3
    episode = random_episode(seed, steps=4, num_envs=E, num_agents=N, k=K)
    state = policy.initial_state(E, N)
    drone_state = policy.initial_agent_state(E * N)
    for t in range(4):
        neighbours, active, reset = episode.neighbours[t], episode.active[t], episode.resets[t]
        encodings = policy.encode(episode.obs[t].flatten(0, 1)).view(E, N, -1)  # (E, N, D)
        messages = state.memory if name == "srmt" else encodings
        sending = active & ~reset if name == "srmt" else active
        env = torch.arange(E).view(E, 1, 1)
        received = messages[env, neighbours.clamp(min=0)]  # (E, N, K, D)
        received_mask = (neighbours >= 0) & sending[env, neighbours.clamp(min=0)]
        if policy.config.message_source is None:
            received = received_mask = None
        else:
            received, received_mask = received.flatten(0, 1), received_mask.flatten(0, 1)
        logits, _, state = policy.step(episode.obs[t], state, reset, neighbours, active)
        drone_logits, stepped = policy.agent_step(
            episode.obs[t].flatten(0, 1), drone_state, received, received_mask, reset.flatten()
        )
        flat_active = active.flatten()
        torch.testing.assert_close(drone_logits[flat_active], logits.flatten(0, 1)[flat_active], **TOLERANCE)
        torch.testing.assert_close(
            stepped.memory[flat_active], state.memory.flatten(0, 1)[flat_active], **TOLERANCE
        )
        # the drone is the batched step's agent: it carries on from the batched state
        drone_state = state.map(lambda x: x.flatten(0, 1))


@pytest.mark.parametrize("name", memory.POLICY_NAMES)
def test_agent_step_without_neighbours_equals_a_lone_agent(name: str) -> None:
    policy = make(name, "local")
    episode = random_episode(7, steps=3, num_envs=1, num_agents=1, inactive_rate=0.0, k=0)
    logits, _, _ = unroll(policy, episode)
    state = policy.initial_agent_state(1)
    for t in range(3):
        drone_logits, state = policy.agent_step(episode.obs[t, 0], state, reset=episode.resets[t, 0])
        torch.testing.assert_close(drone_logits, logits[t, 0], **TOLERANCE)


@pytest.mark.parametrize("name", ["srmt", "rmt", "attention", "gru"])
def test_gradients_flow_through_memory_to_earlier_steps_of_the_chunk(name: str) -> None:
    policy = make(name, "global", 1)
    episode = random_episode(1, steps=4, num_envs=1, num_agents=3, reset_rate=0.0, inactive_rate=0.0)
    grad = grad_wrt_obs(policy, episode, lambda logits: logits[-1])
    assert torch.count_nonzero(grad[0]) > 0
    if name in ("srmt", "rmt"):
        policy.zero_grad()
        logits, _, _ = unroll(policy, episode)
        logits[-1].sum().backward()
        assert policy.core.memory_head.weight.grad.abs().sum() > 0


def test_detached_state_cuts_the_chunk_boundary() -> None:
    policy = make("srmt")
    episode = random_episode(2, steps=2, num_envs=1, num_agents=3, reset_rate=0.0, inactive_rate=0.0)
    obs = episode.obs.clone().requires_grad_(True)
    _, _, state = policy.step(obs[0], policy.initial_state(1, 3), episode.resets[0])
    logits, _, _ = policy.step(obs[1], state.detach(), episode.resets[1])
    (grad,) = torch.autograd.grad(logits.sum(), obs)
    assert torch.count_nonzero(grad[0]) == 0 and torch.count_nonzero(grad[1]) > 0


def test_same_seed_same_outputs() -> None:
    episode = random_episode(4, steps=3, num_envs=2, num_agents=3)
    first, second = (unroll(memory.make_policy("srmt", OBS_SHAPE, seed=11), episode) for _ in range(2))
    third = unroll(memory.make_policy("srmt", OBS_SHAPE, seed=12), episode)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], third[0])


@pytest.mark.parametrize("name", memory.POLICY_NAMES)
def test_action_mask_gives_large_finite_negative_logits(name: str) -> None:
    policy = make(name)
    episode = random_episode(5, steps=1, num_envs=2, num_agents=3)
    allowed = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(0)) < 0.5
    allowed[..., 0] = True
    plain, _, _ = policy.step(episode.obs[0], policy.initial_state(2, 3), episode.resets[0])
    masked, _, _ = policy.step(
        episode.obs[0], policy.initial_state(2, 3), episode.resets[0], action_mask=allowed
    )
    assert torch.equal(masked[allowed], plain[allowed])
    assert torch.isfinite(masked).all() and (masked[~allowed] <= -1e8).all()
    assert (torch.softmax(masked, -1)[~allowed] == 0).all()


def test_uint8_observations_equal_float_observations() -> None:
    policy = make("srmt")
    obs = torch.randint(0, 2, (3, 1, 2, *OBS_SHAPE), generator=torch.Generator().manual_seed(0))
    resets = torch.tensor([[[True, True]], [[False, False]], [[False, True]]])
    floats = policy.unroll(obs.float(), policy.initial_state(1, 2), resets)
    bytes_ = policy.unroll(obs.to(torch.uint8).numpy(), policy.initial_state(1, 2), resets.numpy())
    assert torch.equal(floats[0], bytes_[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"obs": torch.zeros(1, 2, 3, 7, 7)},
            r"obs: expected shape \(E, N, 3, 5, 5\), found \(1, 2, 3, 7, 7\)",
        ),
        ({"reset_mask": torch.ones(2, 1, dtype=torch.bool)}, r"reset_mask: expected shape \(1, 2\)"),
        ({"neighbours": None}, "scope 'local' needs neighbours"),
        ({"neighbours": torch.tensor([[[1], [2]]])}, r"agent indices in \[0, 2\) or -1"),
        ({"neighbours": torch.tensor([[1, 0]])}, r"neighbours: expected shape \(1, 2, K\)"),
        (
            {"state": memory.PolicyState(torch.zeros(1, 3, 16), torch.zeros(1, 3, 8, 16))},
            r"state.memory: expected shape \(1, 2, 16\), found \(1, 3, 16\)",
        ),
    ],
)
def test_bad_step_inputs_raise_a_clear_value_error(kwargs: dict, message: str) -> None:
    policy = make("srmt", "local")
    call = {
        "obs": torch.zeros(1, 2, *OBS_SHAPE),
        "state": policy.initial_state(1, 2),
        "reset_mask": torch.ones(1, 2, dtype=torch.bool),
        "neighbours": torch.tensor([[[1], [0]]]),
    }
    with pytest.raises(ValueError, match=message):
        policy.step(**{**call, **kwargs})
