"""GAE against a plain per-agent loop, on random and hand-made trajectories."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from marl.gae import compute_gae, next_state_values


def reference_gae(rewards, values, last_value, terminated, truncated, final_values, active, gamma, lam):
    """One agent's trajectory, written as the textbook loop with explicit cases."""
    steps = len(rewards)
    advantages = [0.0] * steps
    running = 0.0
    for t in reversed(range(steps)):
        if not active[t]:
            running = 0.0
            continue
        if terminated[t]:
            next_value, continues = 0.0, False
        elif truncated[t]:
            next_value, continues = final_values[t], False
        else:
            next_value, continues = (values[t + 1] if t + 1 < steps else last_value), True
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + (gamma * lam * running if continues else 0.0)
        advantages[t] = running
    return np.array(advantages)


def run_vectorized(rewards, values, last_values, terminated, truncated, final_values, active, gamma, lam):
    next_values = next_state_values(values, last_values, terminated, truncated, final_values)
    return compute_gae(rewards, values, next_values, terminated | truncated, active, gamma, lam)


@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(1, 12),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
)
def test_gae_matches_per_agent_loop(seed, steps, gamma, lam):
    rng = np.random.default_rng(seed)
    shape = (steps, 3, 4)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    final_values = rng.normal(size=shape).astype(np.float32)
    last_values = rng.normal(size=shape[1:]).astype(np.float32)
    terminated = rng.random(shape) < 0.2
    truncated = rng.random(shape) < 0.2
    active = rng.random(shape) < 0.8
    advantages, returns = run_vectorized(
        rewards, values, last_values, terminated, truncated, final_values, active, gamma, lam
    )
    for e in range(shape[1]):
        for n in range(shape[2]):
            expected = reference_gae(
                rewards[:, e, n],
                values[:, e, n],
                last_values[e, n],
                terminated[:, e, n],
                truncated[:, e, n],
                final_values[:, e, n],
                active[:, e, n],
                gamma,
                lam,
            )
            np.testing.assert_allclose(
                advantages[:, e, n], expected, rtol=1e-5, atol=1e-5, err_msg=f"env {e} agent {n}"
            )
    np.testing.assert_allclose(returns, advantages + values, rtol=1e-6)
    assert not advantages[~active].any()


def column(values):
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


def test_truncation_bootstraps_and_termination_does_not():
    """Reward 1 per step forever has value 1/(1-gamma): with exact values, truncation must give zero
    advantage everywhere, while treating the time limit as termination would not."""
    gamma, steps = 0.9, 6
    true_value = 1.0 / (1.0 - gamma)
    rewards = column([1.0] * steps)
    values = column([true_value] * steps)
    ended = column([False, False, True, False, False, False]).astype(bool)
    never = np.zeros_like(ended)
    final_values = column([true_value] * steps)
    last = np.full((1, 1), true_value, np.float32)
    active = np.ones_like(ended)
    truncated_adv, _ = run_vectorized(rewards, values, last, never, ended, final_values, active, gamma, 0.95)
    np.testing.assert_allclose(truncated_adv, 0.0, atol=1e-4)
    terminated_adv, _ = run_vectorized(rewards, values, last, ended, never, final_values, active, gamma, 0.95)
    np.testing.assert_allclose(terminated_adv[2, 0, 0], 1.0 - true_value, rtol=1e-5)
    np.testing.assert_allclose(terminated_adv[3:], 0.0, atol=1e-4)


def test_hand_computed_finish_then_inactive():
    """An agent reaches its goal at step 1 (+1, terminated), is inactive at step 2, and a new episode
    starts at step 3; gamma 0.5, lambda 1."""
    rewards = column([0.0, 1.0, 0.0, 0.0])
    values = column([0.2, 0.4, 9.0, 0.3])
    terminated = column([0, 1, 1, 0]).astype(bool)
    truncated = np.zeros_like(terminated)
    active = column([1, 1, 0, 1]).astype(bool)
    last = np.full((1, 1), 0.6, np.float32)
    advantages, returns = run_vectorized(
        rewards, values, last, terminated, truncated, values, active, gamma=0.5, lam=1.0
    )
    delta1 = 1.0 - 0.4
    delta0 = 0.0 + 0.5 * 0.4 - 0.2
    np.testing.assert_allclose(
        advantages[:, 0, 0], [delta0 + 0.5 * delta1, delta1, 0.0, 0.5 * 0.6 - 0.3], rtol=1e-6
    )
    np.testing.assert_allclose(returns[:2, 0, 0], [0.5, 1.0], rtol=1e-6)
