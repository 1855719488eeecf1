"""What several marl test modules share: a tiny lifelong scenario and tiny training and imitation configs."""

from __future__ import annotations

from marl.config import ImitationConfig, TrainConfig

TINY = """
name: imitation-tiny
map: {generator: random, width: 8, height: 8, density: 0.2}
agents: {count: 4}
dynamics: {collision_system: soft, on_target: restart, max_episode_steps: 16}
observation: {radius: 2, channels: [obstacles, agents, goal, path]}
reward: {scheme: directional}
"""


TINY_TRAIN = dict(
    num_envs=4,
    rollout_length=8,
    chunk_length=4,
    epochs=1,
    num_minibatches=2,
    checkpoint_every=1,
    eval_episodes=0,
    seed=2,
)
TINY_IMITATION = dict(
    expert_episodes=8,
    expert_envs=4,
    lanes=4,
    bc_epochs=2,
    dagger_iterations=2,
    dagger_episodes=4,
    dagger_keep=1,
    finetune_agent_steps=4 * 8 * 4 * 2,
    finetune_lr=2e-4,
)


def tiny_config(**overrides) -> TrainConfig:
    return TrainConfig(**{"model": "srmt", "device": "cpu", **TINY_TRAIN, **overrides})


def tiny_imitation(**overrides) -> ImitationConfig:
    return ImitationConfig(**{**TINY_IMITATION, **overrides})
