"""What the CLI tests share: a small scenario, a training run of a few seconds, a checkpoint writer."""

from __future__ import annotations

from hpc.checkpoint import save_checkpoint
from marl.run_dir import CHECKPOINT_FORMAT

SMALL = """\
map: {generator: random, width: 8, height: 8, density: 0.2}
agents: {count: 4}
dynamics: {max_episode_steps: 16}
observation: {radius: 2}
"""
TRAIN_SMALL = ["--model", "gru", "--device", "cpu", "--steps", "64"]
TRAIN_SMALL += [f"--set={item}" for item in ("num_envs=2", "rollout_length=8", "chunk_length=4")]
TRAIN_SMALL += ["--set=num_minibatches=1", "--set=eval_episodes=0"]
IMITATE_SMALL = [*TRAIN_SMALL[:4], "--set=num_envs=2", "--set=rollout_length=8", "--set=chunk_length=4"]
IMITATE_SMALL += [f"--set={item}" for item in ("expert_episodes=2", "expert_envs=2", "bc_epochs=1")]
IMITATE_SMALL += ["--set=dagger_iterations=0", "--set=eval_episodes=0"]


def write_checkpoint(directory, step, policy):
    """As marl's training loop writes them (hpc.checkpoint files)."""
    meta = {"format": CHECKPOINT_FORMAT, "policy_config": policy.config.to_dict(), "update": step}
    return save_checkpoint(directory, step, {"policy": policy.state_dict()}, meta)
