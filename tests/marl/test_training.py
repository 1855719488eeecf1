"""Collection, chunked recurrent updates, a tiny end-to-end run that learns, and exact resume.

These run on `CorridorEnv` (tests/marl/corridor.py), a test double with GridEnv's step contract, and the
real memory policies.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from marl.buffers import RolloutBuffer
from marl.config import TrainConfig
from marl.evaluate import mean_metrics, run_episodes
from marl.learner import make_learner
from marl.minibatch import MinibatchLayout
from marl.rollout import collect, start_rollouts
from marl.run_dir import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_policy,
    read_metrics,
    resolve_checkpoint,
)
from marl.train import EpisodeMeans, TrainingPlan, TrainingStopped, _Log, train
from tests.marl.corridor import CorridorEnv

CPU = torch.device("cpu")


def collected(model, num_envs=3, steps=16, chunk=4, max_steps=5):
    torch.set_num_threads(1)
    config = TrainConfig(
        model=model,
        num_envs=num_envs,
        rollout_length=steps,
        chunk_length=chunk,
        num_minibatches=1,
        device="cpu",
    )
    env = CorridorEnv(num_envs, num_agents=3, length=4, max_steps=max_steps)
    learner = make_learner(config, env.obs_shape, env.num_actions, CPU)
    buffer = RolloutBuffer.allocate(steps, num_envs, 3, env.obs_shape, np.float32, chunk)
    carry = start_rollouts(env, learner.policy, seed=5)
    collect(env, learner.policy, learner.value_norm, buffer, carry, learner.sampling)
    return learner, buffer


@pytest.mark.parametrize("model", ["srmt", "gru", "rmt"])
def test_chunks_unrolled_from_stored_memory_reproduce_the_rollout(model):
    """Unrolling each (chunk, env) from its stored state with the stored reset masks gives exactly the
    log-probs and values seen during collection: chunk states and in-chunk memory resets are right."""
    learner, buffer = collected(model)
    assert buffer.reset_masks[1:].any(), "the rollout must cross episode boundaries inside chunks"
    layout = MinibatchLayout.of(buffer, groups=1)
    units = layout.index(np.arange(4 * 3))  # every (chunk, env)
    pick = {
        name: torch.from_numpy(layout.gather(getattr(buffer, name), units))
        for name in ("obs", "reset_masks", "active", "actions", "log_probs", "raw_values")
    }
    state0 = layout.gather_states(buffer.chunk_states, units, CPU)
    with torch.no_grad():
        logits, values, _ = learner.policy.unroll(
            pick["obs"], state0, pick["reset_masks"], active_seq=pick["active"]
        )
    log_probs = torch.log_softmax(logits, -1).gather(-1, pick["actions"].unsqueeze(-1)).squeeze(-1)
    active = pick["active"]
    torch.testing.assert_close(log_probs[active], pick["log_probs"][active], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values[active], pick["raw_values"][active], rtol=1e-5, atol=1e-5)


def test_rollout_records_truncation_bootstrap_and_masks():
    _, buffer = collected("gru", max_steps=3)
    assert buffer.truncated.any() and buffer.terminated.any()
    assert np.isfinite(buffer.final_values[buffer.truncated]).all()
    # the step after an episode's last step starts a new episode
    ended = (buffer.terminated | buffer.truncated).all(axis=2)[:-1]  # (T-1, E)
    assert np.array_equal(buffer.reset_masks[1:].all(axis=2), ended)
    # agents that finished do not act again within the episode
    finished = buffer.terminated[:-1] & ~buffer.reset_masks[1:]
    assert not buffer.active[1:][finished].any()
    for name in ("log_probs", "values", "raw_values", "rewards", "last_values"):
        assert np.isfinite(getattr(buffer, name)).all(), name


def small_config(**overrides):
    base = dict(
        model="gru",
        total_agent_steps=16 * 2 * 16 * 24,
        num_envs=16,
        rollout_length=16,
        chunk_length=8,
        epochs=2,
        num_minibatches=2,
        lr=3e-3,
        checkpoint_every=4,
        eval_episodes=0,
        device="cpu",
        seed=3,
    )
    return TrainConfig(**{**base, **overrides})


def corridor():
    return CorridorEnv(16, num_agents=2, length=5, max_steps=16)


def evaluate(policy, seed=11):
    env = CorridorEnv(64, num_agents=2, length=5, max_steps=16)
    return mean_metrics(run_episodes(env, policy, CPU, seed, seed=seed))


@pytest.mark.slow
def test_training_improves_the_policy(tmp_path):
    config = small_config()
    untrained = evaluate(make_learner(config, (3, 3, 3), 5, CPU).policy)
    train(corridor(), config, tmp_path / "run", echo=lambda line: None)
    trained_policy, meta = load_policy(latest_checkpoint(tmp_path / "run")[2])
    trained = evaluate(trained_policy)
    assert trained["CSR"] > untrained["CSR"] + 0.3
    assert trained["ep_length"] < untrained["ep_length"] - 3
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["update"] for row in rows] == list(range(1, 25))
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert meta["update"] == 24


class Interrupt(Exception):
    pass


def test_resume_continues_the_same_run(tmp_path):
    config = small_config(total_agent_steps=16 * 2 * 16 * 6, checkpoint_every=2, log_every=1)
    train(corridor(), config, tmp_path / "straight", echo=lambda line: None)

    def stop_at_update_5(line):
        if line.startswith("update 5/"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(corridor(), config, tmp_path / "resumed", echo=stop_at_update_5)
    assert latest_checkpoint(tmp_path / "resumed")[1]["update"] == 4
    train(corridor(), config, tmp_path / "resumed", resume=True, echo=lambda line: None)
    straight, _, _ = latest_checkpoint(tmp_path / "straight")
    resumed, meta, _ = latest_checkpoint(tmp_path / "resumed")
    assert meta["update"] == 6
    for name, tensor in straight["policy"].items():
        assert torch.equal(tensor, resumed["policy"][name]), name
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["update"] for line in lines] == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_a_changed_config_and_new_runs_refuse_an_old_dir(tmp_path):
    config = small_config(total_agent_steps=16 * 2 * 16 * 2, checkpoint_every=2)
    train(corridor(), config, tmp_path / "run", echo=lambda line: None)
    with pytest.raises(CheckpointError, match="changed: lr"):
        train(
            corridor(),
            small_config(total_agent_steps=16 * 2 * 16 * 2, checkpoint_every=2, lr=1e-4),
            tmp_path / "run",
            resume=True,
            echo=lambda line: None,
        )
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(corridor(), config, tmp_path / "run", echo=lambda line: None)


def test_damaged_or_foreign_checkpoints_are_one_line_errors(tmp_path):
    config = small_config(total_agent_steps=16 * 2 * 16, checkpoint_every=1)
    train(corridor(), config, tmp_path / "run", echo=lambda line: None)
    _, _, latest = latest_checkpoint(tmp_path / "run")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(latest.read_bytes()[:200])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path in (truncated, foreign, tmp_path / "missing.pt"):
        with pytest.raises(CheckpointError) as info:
            load_policy(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


TINY = Path(__file__).parents[1] / "hpc" / "tiny.yaml"


def gridswarm_train(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gridswarm.cli",
        "train",
        str(TINY),
        "--model",
        "gru",
        "--device",
        "cpu",
        "--steps",
        str(8 * 8 * 2 * 4),
        "--out",
        str(run_dir),
        "--set",
        "num_envs=2",
        "--set",
        "epochs=1",
        "--set",
        "num_minibatches=1",
        "--set",
        "rollout_length=8",
        "--set",
        "chunk_length=4",
        "--set",
        "checkpoint_every=3",
        "--set",
        "eval_episodes=0",
        "--set",
        "seed=5",
        *extra,
    ]


def wait_for_update(metrics: Path, update_index: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        rows = metrics.read_text().splitlines() if metrics.exists() else []
        if len(rows) >= update_index:
            return
        time.sleep(0.01)


@pytest.mark.slow
def test_a_run_killed_at_random_moments_resumes_to_the_parameters_of_an_uninterrupted_run(tmp_path):
    """kill -9 while rolling out, updating, logging or writing a checkpoint, twice, then `--resume auto`:
    the run ends bitwise equal to one that was never interrupted, with one metrics line per update.

    The uninterrupted run is a process of its own like the killed ones, as a user's runs are."""
    subprocess.run(gridswarm_train(tmp_path / "straight"), check=True, capture_output=True, timeout=300)
    chooser = random.Random(1)  # fixed moments, so a failure repeats: after update 1 + 0.285 s, 6 + 0.382 s
    moments = []
    for _ in range(2):
        moment = (chooser.randint(0, 6), chooser.uniform(0.0, 0.5))
        moments.append(moment)
        process = subprocess.Popen(
            gridswarm_train(tmp_path / "killed", "--resume", "auto"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_update(tmp_path / "killed" / "metrics.jsonl", moment[0], process)
        time.sleep(moment[1])
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finished = subprocess.run(
        gridswarm_train(tmp_path / "killed", "--resume", "auto"), capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, f"killed at {moments}: {finished.stderr}"
    straight, _, _ = latest_checkpoint(tmp_path / "straight")
    resumed, meta, _ = latest_checkpoint(tmp_path / "killed")
    assert meta["update"] == 8
    for name, tensor in straight["policy"].items():
        assert torch.equal(tensor, resumed["policy"][name]), f"{name} differs after kills at {moments}"
    for name in ("value_norm", "shuffle_rng", "sampling_rng"):
        assert str(straight[name]) == str(resumed[name]), name
    updates = [row["update"] for row in read_metrics(tmp_path / "killed" / "metrics.jsonl")]
    assert updates == list(range(1, 9)), moments


def test_resume_skips_a_damaged_newest_checkpoint_with_a_message(tmp_path, capsys):
    config = small_config(total_agent_steps=16 * 2 * 16 * 4, checkpoint_every=2)
    train(corridor(), config, tmp_path / "straight", echo=lambda line: None)
    train(corridor(), config, tmp_path / "run", echo=lambda line: None)
    newest = latest_checkpoint(tmp_path / "run")[2]
    newest.write_bytes(newest.read_bytes()[:-100])  # a copy cut short
    train(corridor(), config, tmp_path / "run", resume="auto", echo=lambda line: None)
    assert f"{newest.name}: truncated" in capsys.readouterr().err
    straight, _, _ = latest_checkpoint(tmp_path / "straight")
    resumed, meta, _ = latest_checkpoint(tmp_path / "run")
    assert meta["update"] == 4
    for name, tensor in straight["policy"].items():
        assert torch.equal(tensor, resumed["policy"][name]), name


def test_a_stop_signal_ends_training_after_the_update_and_the_run_resumes_exactly(tmp_path):
    """SIGUSR1 (SLURM's time-limit warning) during update 3: training checkpoints after it, between the
    periodic checkpoints, and stops (outside SLURM nothing is requeued); resuming from that checkpoint
    continues the same run: the same metrics row by row, the same best/ checkpoint, and bitwise equal
    parameters at the end."""
    config = small_config(total_agent_steps=16 * 2 * 16 * 6, checkpoint_every=2, log_every=1)
    train(corridor(), config, tmp_path / "straight", echo=lambda line: None)

    def warn_during_update_3(line):
        if line.startswith("update 3/"):
            os.kill(os.getpid(), signal.SIGUSR1)

    with pytest.raises(TrainingStopped) as stopped:
        train(corridor(), config, tmp_path / "run", echo=warn_during_update_3)
    assert not stopped.value.requeued
    assert "stopped by SIGUSR1 after update 3" in str(stopped.value)
    assert "checkpointed" in str(stopped.value)
    assert latest_checkpoint(tmp_path / "run")[1]["update"] == 3
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL, "the handler is given back"
    train(corridor(), config, tmp_path / "run", resume="auto", echo=lambda line: None)
    straight, _, _ = latest_checkpoint(tmp_path / "straight")
    resumed, meta, _ = latest_checkpoint(tmp_path / "run")
    assert meta["update"] == 6
    for name, tensor in straight["policy"].items():
        assert torch.equal(tensor, resumed["policy"][name]), name
    timing = {"agent_steps_per_s", "collect_seconds", "update_seconds"}
    rows = [read_metrics(tmp_path / run / "metrics.jsonl") for run in ("straight", "run")]
    assert [{k: v for k, v in row.items() if k not in timing} for row in rows[0]] == [
        {k: v for k, v in row.items() if k not in timing} for row in rows[1]
    ]
    best = [load_checkpoint(resolve_checkpoint(tmp_path / run))[1] for run in ("straight", "run")]
    assert (best[0]["update"], best[0]["best"]) == (best[1]["update"], best[1]["best"])


@pytest.mark.parametrize("closing_episodes", [0, 160])
def test_the_progress_line_gives_the_recent_pace_and_announces_the_closing_evaluation(
    tmp_path, monkeypatch, closing_episodes
):
    # an update of 30 s, then updates of 1 s: the time left follows the last 10
    clock = iter(np.cumsum([0.0, 20.0, 10.0] + [0.0, 0.5, 0.5] * 11).tolist())
    monkeypatch.setattr("marl.train.time", SimpleNamespace(perf_counter=lambda: next(clock)))
    lines = []
    log = _Log(
        tmp_path / "metrics.jsonl",
        TrainingPlan(num_updates=22, steps_per_update=100),
        lines.append,
        sinks=[],
        log_every=1,
        closing_episodes=closing_episodes,
    )
    learner = SimpleNamespace(optimizer=SimpleNamespace(param_groups=[{"lr": 1e-3}]))
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 1.0}
    for done in range(1, 13):
        log.start()
        log.collected()
        log.row(done, learner, 0.0, stats, EpisodeMeans(("CSR",)))
    closing = ", then a closing evaluation of 160 episodes" if closing_episodes else ""
    assert lines[0].startswith("update 1/22 | 100 agent-steps | 3 agent-steps/s")
    assert lines[0].endswith(f"| 10.5 min of training left{closing}")  # 21 x 30 s
    assert lines[-1].endswith(f"| 0.2 min of training left{closing}")  # 10 x 1 s
