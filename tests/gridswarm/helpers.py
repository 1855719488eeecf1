"""What the CLI tests share: a small scenario and a training run of a few seconds."""

SMALL = """\
map: {generator: random, width: 8, height: 8, density: 0.2}
agents: {count: 4}
dynamics: {max_episode_steps: 16}
observation: {radius: 2}
"""
TRAIN_SMALL = ["--model", "gru", "--device", "cpu", "--steps", "64"]
TRAIN_SMALL += [f"--set={item}" for item in ("num_envs=2", "rollout_length=8", "chunk_length=4")]
TRAIN_SMALL += ["--set=num_minibatches=1", "--set=eval_episodes=0"]
