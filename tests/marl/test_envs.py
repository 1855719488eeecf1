"""Training's batch of a curriculum is one GridEnv pinned to the variants in blocks: it plays, environment
for environment, the episodes of one GridEnv per variant stacked side by side (each made with its
variant's base seed), and it continues exactly from such a stack's snapshot."""

from __future__ import annotations

import numpy as np
import pytest

import scenarios
from marl.envs import StackedEnvs, make_training_envs
from scenarios.variants import variant_blocks
from sim import GridEnv
from sim.seeds import variant_seeds
from tests.sim.helpers import curriculum

STEPS = 40


def one_env_per_variant(scenario: scenarios.Scenario, num_envs: int, seed: int) -> StackedEnvs:
    """The reference: variant v alone in a GridEnv of its len(range(v, E, V)) environments with base seed
    variant_seeds(seed, V)[v], the GridEnvs stacked in variant order."""
    variants = scenarios.expand_variants(scenario)
    seeds = variant_seeds(seed, len(variants))
    return StackedEnvs(
        [
            GridEnv(variant, len(range(v, num_envs, len(variants))), seed=seeds[v], obs_dtype=np.uint8)
            for v, variant in enumerate(variants)
        ]
    )


def assert_same_steps(ours, reference, steps: int, rng: np.random.Generator) -> None:
    """Both batches step with the same actions and return the same arrays, metrics and episode seeds."""
    for _ in range(steps):
        actions = rng.integers(0, 5, size=(reference.num_envs, reference.num_agents))
        got, expected = ours.step(actions), reference.step(actions)
        for mine, theirs in zip(got[:4], expected[:4], strict=True):
            np.testing.assert_array_equal(mine, theirs)
        assert got[4]["metrics"] == expected[4]["metrics"]
        np.testing.assert_array_equal(got[4]["active"], expected[4]["active"])
        assert ("final_obs" in got[4]) == ("final_obs" in expected[4])
        if "final_obs" in got[4]:
            np.testing.assert_array_equal(got[4]["final_obs"], expected[4]["final_obs"])
        np.testing.assert_array_equal(ours.episode_seeds, reference.episode_seeds)


@pytest.fixture
def lifelong_curriculum() -> scenarios.Scenario:
    """Three map sizes (the batch's buffers are larger than two variants need), lifelong goal streams."""
    return curriculum([(5, 6), (9, 4), (7, 8)], [3, 7, 5], "restart")


@pytest.mark.parametrize(("num_envs", "seed"), [(3, 0), (7, 11), (8, 2**40)])
@pytest.mark.parametrize("on_target", ["finish", "restart"])
def test_training_batch_plays_the_episodes_of_one_env_per_variant(num_envs, seed, on_target):
    scenario = curriculum([(5, 6), (9, 4), (7, 8)], [3, 7, 5], on_target)
    ours, reference = (
        make_training_envs(scenario, num_envs, seed),
        one_env_per_variant(scenario, num_envs, seed),
    )
    np.testing.assert_array_equal(ours.reset(seed=seed), reference.reset(seed=seed))
    assert_same_steps(ours, reference, STEPS, np.random.default_rng(seed % 1000))
    variants = scenarios.expand_variants(scenario)
    blocks = variant_blocks(scenario, num_envs)
    assert [ours.episode_scenario(e) for e in range(num_envs)] == [variants[v] for v in blocks]


def test_training_batch_continues_from_a_snapshot_of_one_env_per_variant(lifelong_curriculum):
    """Checkpoints that hold a stack of per-variant GridEnvs ("<variant>/<name>") resume in one GridEnv."""
    reference = one_env_per_variant(lifelong_curriculum, 7, 3)
    reference.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(9):
        reference.step(rng.integers(0, 5, size=(7, 2)))
    snapshot = reference.snapshot()
    ours = make_training_envs(lifelong_curriculum, 7, 3)
    np.testing.assert_array_equal(ours.restore(snapshot), reference.restore(snapshot))
    assert_same_steps(ours, reference, STEPS, rng)


def test_a_stack_of_other_seeds_or_blocks_is_refused(lifelong_curriculum):
    reference = one_env_per_variant(lifelong_curriculum, 6, 3)
    reference.reset(seed=4)  # variant base seeds of 4, not of the batch's 3
    with pytest.raises(ValueError, match="base seed"):
        make_training_envs(lifelong_curriculum, 6, 3).restore(reference.snapshot())
    pinned = GridEnv(lifelong_curriculum, 6, seed=3, obs_dtype=np.uint8, env_variants=[0, 1, 2, 0, 1, 2])
    reference.reset(seed=3)
    with pytest.raises(ValueError, match="blocks"):
        pinned.restore(reference.snapshot())


def test_fewer_environments_than_variants_are_refused(lifelong_curriculum):
    with pytest.raises(ValueError, match="need at least one environment per variant"):
        make_training_envs(lifelong_curriculum, 2, 0)


class Interrupt(Exception):
    pass


def test_a_curriculum_run_stopped_and_resumed_ends_as_the_straight_run(tmp_path):
    """The one-GridEnv curriculum batch is checkpointed and restored by training: bit-equal weights."""
    import torch

    from marl.config import TrainConfig
    from marl.run_dir import latest_checkpoint
    from marl.train import train

    scenario = curriculum([(5, 6), (9, 4), (7, 8)], [6, 9, 7], "finish")
    config = TrainConfig(
        model="gru", total_agent_steps=7 * 2 * 8 * 4, num_envs=7, rollout_length=8, chunk_length=4,
        epochs=1, num_minibatches=2, checkpoint_every=2, eval_episodes=0, device="cpu", seed=3,
    )  # fmt: skip
    train(make_training_envs(scenario, 7, 3), config, tmp_path / "straight", echo=lambda line: None)

    def stop_at_update_3(line: str) -> None:
        if line.startswith("update 3/"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(make_training_envs(scenario, 7, 3), config, tmp_path / "resumed", echo=stop_at_update_3)
    assert latest_checkpoint(tmp_path / "resumed")[1]["update"] == 2
    train(make_training_envs(scenario, 7, 3), config, tmp_path / "resumed", resume=True, echo=lambda _: None)
    straight, resumed = (latest_checkpoint(tmp_path / name)[0] for name in ("straight", "resumed"))
    for name, tensor in straight["policy"].items():
        assert torch.equal(tensor, resumed["policy"][name]), name
