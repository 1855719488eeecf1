"""sim.episode_loop: one episode per environment, the environments that ended leaving the batch."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.loader import loads
from sim.env import GridEnv
from sim.episode_loop import EpisodeBatch, play_one_episode_each

SCENARIO = """
name: loop
map: {{generator: random, width: 7, height: 7, density: 0.15}}
agents: {{count: 3}}
dynamics: {{collision_system: soft, on_target: {on_target}, max_episode_steps: {steps}}}
observation: {{radius: 2}}
variants: {{key: dynamics.max_episode_steps, values: [{steps}, {later}]}}
"""


def by_observation(obs: np.ndarray) -> np.ndarray:
    """(B, N) actions that depend on each agent's observation (B, N, C, F, F) only, never on the batch."""
    weights = np.arange(obs[0, 0].size, dtype=np.float64).reshape(obs.shape[2:]) % 7
    return (np.tensordot(obs, weights, axes=3).astype(np.int64) + 1) % 5


def play(on_target: str, steps: int, episode_seeds: np.ndarray, max_steps: int):
    scenario = loads(SCENARIO.format(on_target=on_target, steps=steps, later=steps + 3))
    env = GridEnv(scenario, len(episode_seeds), 0, auto_reset=False)
    obs = env.reset(episode_seeds=episode_seeds)
    batch = EpisodeBatch(env.num_envs, env.num_agents)
    asked, taken, masks = [], [], []

    def choose(live_obs: np.ndarray, t: int) -> np.ndarray:
        asked.append(batch.rows.copy())
        masks.append(batch.reset_mask.copy())
        return by_observation(live_obs)

    def after(t: int, actions: np.ndarray) -> None:
        taken.append(actions.copy())

    results = play_one_episode_each(env.step, batch, obs, choose, max_steps, after)
    return results, asked, taken, masks


@settings(max_examples=15, deadline=None)
@given(
    st.sampled_from(["finish", "nothing"]),
    st.integers(2, 12),
    st.lists(st.integers(0, 2**31), min_size=1, max_size=5),
)
def test_a_batch_plays_each_episode_as_it_plays_alone(on_target, steps, seeds):
    # Episodes of two lengths (the variants), and with on_target finish some end early: they end apart.
    seeds = np.asarray(seeds, dtype=np.int64)
    together, asked, taken, masks = play(on_target, steps, seeds, max_steps=100)
    alone = [play(on_target, steps, seeds[e : e + 1], max_steps=100) for e in range(len(seeds))]
    assert together == [results[0] for results, *_ in alone]  # as it ends when played alone
    for e, (_, asked_alone, _, _) in enumerate(alone):  # asked while its episode lasts, never after
        assert [t for t, rows in enumerate(asked) if e in rows] == list(range(len(asked_alone)))
    for t, rows in enumerate(asked):
        assert masks[t].all() if t == 0 else not masks[t].any()  # only the first observation starts one
        gone = np.setdiff1d(np.arange(len(seeds)), rows)
        assert not taken[t][gone].any()  # the agents of an ended episode stay put


def test_an_episode_past_the_step_limit_reports_nothing():
    results, asked, _, _ = play("nothing", 10, np.array([3, 4]), max_steps=4)
    assert results == [None, None]
    assert len(asked) == 4


def test_forget_sees_which_environments_stay():
    class Remembering(EpisodeBatch):
        def __init__(self, num_envs: int, num_agents: int) -> None:
            super().__init__(num_envs, num_agents)
            self.kept: list[np.ndarray] = []

        def forget(self, staying):
            self.kept.append(staying.copy())

    batch = Remembering(3, 2)
    batch.drop(np.array([False, True, False]))
    assert batch.rows.tolist() == [0, 2] and batch.reset_mask.shape == (2, 2)
    assert batch.kept[0].tolist() == [True, False, True]
