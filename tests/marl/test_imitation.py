"""Learning from an expert (marl.imitation): cloning learns the expert's actions, DAgger's rollouts hold the
learner's trajectory with the expert's labels, fine-tuning starts from the cloned weights, and the whole
recipe resumes exactly after a stop or kill -9."""

from __future__ import annotations

import dataclasses
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import scenarios
from marl.envs import make_training_envs
from marl.imitation import Imitation, clone_epoch, dagger_rollout, record_expert
from marl.learner import build_policy, load_init_weights
from marl.offline import ChunkConfig, ExpertChunks
from marl.run_dir import CheckpointError, latest_checkpoint, load_checkpoint, read_metrics
from marl.train import train
from sim.baselines import make_baseline
from sim.env import GridEnv
from sim.episodes import Recorder
from sim.episodes import open as open_store
from tests.marl.helpers import TINY, TINY_IMITATION, TINY_TRAIN, tiny_config, tiny_imitation

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def held_out_fit(policy, store: Path) -> tuple[float, float, float]:
    """Over the active agent-steps of a store: how often the policy's most probable action is the expert's,
    the mean cross-entropy of the expert's actions, and the share of the expert's most frequent action."""
    hits = total = 0
    loss = 0.0
    counts = torch.zeros(5, dtype=torch.int64)
    state = None
    with torch.no_grad():
        for chunk in ExpertChunks([store], ChunkConfig(4, lanes=8, shuffle=False)):
            E, N = chunk["labels"].shape[1:]
            if chunk["first"]:
                state = policy.initial_state(E, N)
            logits, _, state = policy.unroll(chunk["obs"], state, chunk["reset"], None, chunk["active"])
            labels, active = chunk["labels"], chunk["active"]
            losses = torch.nn.functional.cross_entropy(
                logits.flatten(0, 2), labels.flatten(), reduction="none"
            )
            loss += float(losses.view(labels.shape)[active].sum())
            hits += int(((logits.argmax(-1) == labels) & active).sum())
            total += int(active.sum())
            counts += torch.bincount(labels[active], minlength=5)
    return hits / total, loss / total, float(counts.max()) / total


def clone(scenario, expert: str, tmp_path: Path, train_episodes: int, epochs: int):
    """Record `expert` on training and held-out episodes (other seeds), clone a fresh SRMT on the training
    ones; the held-out fit before and after, and the training losses per epoch."""
    record_expert(scenario, expert, train_episodes, 16, seed=1, store=tmp_path / "train.zarr")
    record_expert(scenario, expert, 16, 16, seed=2, store=tmp_path / "held_out.zarr")
    torch.manual_seed(0)
    policy = build_policy(tiny_config(), (4, 5, 5), 5, CPU)
    before = held_out_fit(policy, tmp_path / "held_out.zarr")
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    data = ExpertChunks([tmp_path / "train.zarr"], ChunkConfig(4, lanes=8))
    losses = []
    for epoch in range(epochs):
        data.set_epoch(epoch)
        losses.append(clone_epoch(policy, optimizer, data, CPU, max_grad_norm=4.0)["loss"])
    return before, held_out_fit(policy, tmp_path / "held_out.zarr"), losses


@pytest.mark.slow
def test_cloning_learns_the_experts_actions_on_held_out_episodes(tmp_path):
    before, after, losses = clone(scenarios.loads(TINY), "greedy", tmp_path, 48, 4)
    assert losses[-1] < losses[0] - 0.3
    assert before[0] < 0.45 and after[0] > 0.8, (before, after)


def test_cloning_pibt_lowers_the_held_out_loss_and_agrees_with_it_well_above_chance(tmp_path):
    """PIBT's actions depend on the other agents and on its priorities, which the learner does not see; from
    its local view the clone still predicts most of them on episodes it never trained on."""
    before, after, _ = clone(scenarios.loads(TINY), "pibt", tmp_path, 32, 3)
    (accuracy_before, loss_before, majority), (accuracy, loss, _) = before, after
    assert loss < loss_before - 0.5, (before, after)  # untrained: about ln 5 = 1.61
    assert accuracy > max(majority, 1 / 5) + 0.3 and accuracy > accuracy_before + 0.3, (before, after)


@pytest.mark.parametrize(("expert", "beta"), [("greedy", 0.0), ("greedy", 1.0), ("pibt", 0.0), ("pibt", 0.5)])
def test_dagger_rollout_stores_the_trajectory_with_the_experts_labels(tmp_path, expert, beta):
    """beta 0: the learner's own trajectory (the same as playing it without the expert); beta 1: the
    expert's; in between a mixture. Either way every stored step carries the label a fresh expert gives that
    very state after following the same trajectory (PIBT's priorities depend on it)."""
    scenario = scenarios.loads(TINY)
    torch.manual_seed(0)
    policy = build_policy(tiny_config(), (4, 5, 5), 5, CPU)
    metrics, agreement = dagger_rollout(
        scenario,
        policy,
        expert,
        3,
        beta,
        seed=4,
        store=tmp_path / "d.zarr",
        sampling_seed=9,
        device=CPU,
    )
    store = open_store(tmp_path / "d.zarr")
    assert len(store) == 3
    episodes = sorted((store[i] for i in store.ids()), key=lambda e: e.info.index)  # env order
    # the expert along the stored trajectory, from scratch: the labels are its view of each state
    env = GridEnv(scenario, 3, seed=4, auto_reset=False)
    env.reset(episode_seeds=np.array([e.info.seed for e in episodes]))
    fresh = make_baseline(expert, env, seed=4)
    executed = np.stack([e.actions for e in episodes], axis=1)  # (T, E, N)
    labels = np.stack([e.expert_actions for e in episodes], axis=1)
    active = np.stack([e.active for e in episodes], axis=1)
    for t in range(len(executed)):
        np.testing.assert_array_equal(fresh()[active[t]], labels[t][active[t]])
        env.step(executed[t].astype(np.int64))
    if beta == 1.0:
        np.testing.assert_array_equal(executed, labels)
        return
    assert (executed != labels)[active].any() and 0.0 <= agreement < 0.9
    if beta > 0.0:  # some steps of every episode follow the expert, some the learner
        followed = (executed == labels).all(axis=2)  # (T, E)
        assert followed.any(axis=0).all() and not followed.all(axis=0).any()
        return
    plain = GridEnv(scenario, 3, seed=4, auto_reset=False)
    with Recorder(plain, tmp_path / "plain.zarr") as recorder:
        from marl.evaluate import run_episodes

        alone = run_episodes(plain, policy, CPU, 9, seed=4, recorder=recorder)
    assert alone == metrics
    plain_store = open_store(tmp_path / "plain.zarr")
    plain_actions = {plain_store[i].info.seed: plain_store[i].actions for i in plain_store.ids()}
    for episode in episodes:
        np.testing.assert_array_equal(plain_actions[episode.info.seed], episode.actions)


def test_fine_tuning_starts_from_the_init_weights_and_warms_up_the_critic_first(tmp_path):
    scenario = scenarios.loads(TINY)
    torch.manual_seed(5)
    source = tmp_path / "source"
    config = tiny_config(total_agent_steps=4 * 8 * 4)
    train(
        make_training_envs(scenario, 4, 0), dataclasses.replace(config, seed=7), source, echo=lambda _: None
    )
    init, _, init_path = latest_checkpoint(source)
    warm = dataclasses.replace(config, critic_warmup_updates=1)
    train(make_training_envs(scenario, 4, 0), warm, tmp_path / "tuned", echo=lambda _: None, init=source)
    tuned, meta, _ = latest_checkpoint(tmp_path / "tuned")
    assert meta["init"] == str(init_path)
    changed = {
        name for name, tensor in tuned["policy"].items() if not torch.equal(tensor, init["policy"][name])
    }
    assert changed and all(name.startswith("value_head.") for name in changed), changed
    cold = dataclasses.replace(config, critic_warmup_updates=0)
    train(make_training_envs(scenario, 4, 0), cold, tmp_path / "cold", echo=lambda _: None, init=source)
    cold_tensors = latest_checkpoint(tmp_path / "cold")[0]["policy"]
    assert not torch.equal(cold_tensors["policy_head.weight"], init["policy"]["policy_head.weight"])


def test_init_weights_of_another_shape_or_architecture_are_one_line_errors(tmp_path):
    scenario = scenarios.loads(TINY)
    train(
        make_training_envs(scenario, 4, 0),
        tiny_config(total_agent_steps=128),
        tmp_path / "run",
        echo=lambda _: None,
    )
    wider = build_policy(tiny_config(), (5, 5, 5), 5, CPU)
    with pytest.raises(
        CheckpointError, match=r"observations of shape \(4, 5, 5\), the scenario gives \(5, 5, 5\)"
    ):
        load_init_weights(wider, tmp_path / "run")
    gru = build_policy(tiny_config(model="gru"), (4, 5, 5), 5, CPU)
    with pytest.raises(
        CheckpointError, match="differs from the configured one \\(name 'srmt' vs 'gru'"
    ) as info:
        load_init_weights(gru, tmp_path / "run")
    assert "\n" not in str(info.value)


class Interrupt(Exception):
    pass


def test_a_stopped_recipe_resumes_to_the_run_that_never_stopped(tmp_path):
    scenario = scenarios.loads(TINY)
    Imitation(
        scenario, tiny_imitation(), tiny_config(), tmp_path / "straight", "tiny", echo=lambda _: None
    ).run()

    def stop_after_stage_3(line: str) -> None:
        if line.startswith("stage 3/"):
            raise Interrupt

    stopped = Imitation(
        scenario, tiny_imitation(), tiny_config(), tmp_path / "run", "tiny", stop_after_stage_3
    )
    with pytest.raises(Interrupt):
        stopped.run()
    with pytest.raises(CheckpointError, match="already holds a run"):
        Imitation(scenario, tiny_imitation(), tiny_config(), tmp_path / "run", "tiny").run()
    with pytest.raises(CheckpointError, match="changed: bc_lr"):
        Imitation(scenario, tiny_imitation(bc_lr=0.1), tiny_config(), tmp_path / "run", "tiny").run(
            resume=True
        )
    Imitation(scenario, tiny_imitation(), tiny_config(), tmp_path / "run", "tiny", echo=lambda _: None).run(
        resume=True
    )
    assert_same_runs(tmp_path / "straight", tmp_path / "run")


def assert_same_runs(straight: Path, resumed: Path) -> None:
    for sub in ("", "mappo"):
        want, want_meta, _ = latest_checkpoint(straight / sub)
        got, got_meta, _ = latest_checkpoint(resumed / sub)
        assert want_meta["update"] == got_meta["update"]
        for name, tensor in want["policy"].items():
            assert torch.equal(tensor, got["policy"][name]), f"{sub or 'imitation'}: {name}"
    timing = {"seconds", "cpu_seconds", "agent_steps_per_s"}
    rows = [
        [{k: v for k, v in row.items() if k not in timing} for row in read_metrics(run / "metrics.jsonl")]
        for run in (straight, resumed)
    ]
    assert rows[0] == rows[1]
    assert [row["phase"] for row in rows[1]] == ["expert", "bc", "bc", "dagger", "dagger"]
    stores = sorted(path.name for path in (resumed / "dagger").iterdir())
    assert stores == ["iteration-001.zarr", "iteration-002.zarr"]  # nothing left of a killed try
    evaluated = ["episodes.zarr", "eval.csv", "eval.json"] if (resumed / "eval.csv").exists() else []
    expected = ["checkpoints", "config.yaml", "dagger", "experts.zarr", "mappo", "metrics.jsonl", *evaluated]
    assert sorted(path.name for path in resumed.iterdir()) == sorted(expected)
    for store in (resumed / "dagger" / "iteration-001.zarr", resumed / "experts.zarr"):
        assert (
            len(open_store(store)) == (4 if "dagger" in str(store) else 8)
            and not open_store(store).incomplete
        )
    assert latest_checkpoint(resumed / "mappo")[1]["train_config"]["lr"] == 2e-4  # finetune_lr


def gridswarm_imitate(scenario: Path, run_dir: Path) -> list[str]:
    sets = {**TINY_TRAIN, **TINY_IMITATION, "eval_episodes": 2}
    command = [
        sys.executable,
        "-m",
        "gridswarm.cli",
        "imitate",
        str(scenario),
        "--expert",
        "greedy",
        "--device",
        "cpu",
        "--out",
        str(run_dir),
        "--resume",
        "auto",
    ]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    return command


@pytest.mark.slow
def test_a_recipe_killed_at_random_moments_resumes_to_the_uninterrupted_run(tmp_path):
    """kill -9 while recording, cloning, rolling out DAgger episodes, fine-tuning or checkpointing, twice,
    then `gridswarm imitate ... --resume auto`: the same weights, metrics and data as a run never killed."""
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    done = subprocess.run(
        gridswarm_imitate(scenario, tmp_path / "straight"), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "straight" / "eval.csv").is_file()
    chooser = random.Random()
    moments = []
    for _ in range(2):
        moments.append(chooser.uniform(2.0, 25.0))
        process = subprocess.Popen(
            gridswarm_imitate(scenario, tmp_path / "killed"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + moments[-1]
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finished = subprocess.run(
        gridswarm_imitate(scenario, tmp_path / "killed"), capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, f"killed after {moments} s: {finished.stderr}"
    assert_same_runs(tmp_path / "straight", tmp_path / "killed")
    tensors, meta = load_checkpoint(latest_checkpoint(tmp_path / "killed")[2])
    assert meta["phase"] == "dagger" and set(tensors) == {"policy", "optimizer", "rng"}


def test_dagger_trains_on_its_kept_iterations_and_a_share_of_the_expert_episodes(tmp_path):
    scenario = scenarios.loads(TINY)
    config = tiny_imitation(
        dagger_iterations=3, dagger_keep=2, dagger_expert_fraction=0.5, finetune_agent_steps=0
    )
    Imitation(scenario, config, tiny_config(), tmp_path / "run", "tiny", echo=lambda _: None).run()
    rows = [row for row in read_metrics(tmp_path / "run" / "metrics.jsonl") if row["phase"] == "dagger"]
    # 8 expert episodes, half of them per iteration; 4 learner episodes per iteration, the last 2 kept
    assert [row["aggregate_episodes"] for row in rows] == [4 + 4, 4 + 8, 4 + 8]
    assert [row["beta"] for row in rows] == [0.5, 0.25, 0.125]


def test_a_recipe_can_start_from_a_policy_cloned_before(tmp_path):
    scenario = scenarios.loads(TINY)
    first = tiny_imitation(bc_epochs=1, dagger_iterations=0, finetune_agent_steps=0)
    Imitation(scenario, first, tiny_config(), tmp_path / "first", "tiny", echo=lambda _: None).run()
    cloned = latest_checkpoint(tmp_path / "first")[0]["policy"]
    second = tiny_imitation(
        bc_epochs=0, dagger_iterations=1, finetune_agent_steps=0, init=str(tmp_path / "first")
    )
    Imitation(scenario, second, tiny_config(), tmp_path / "second", "tiny", echo=lambda _: None).run()
    start, meta = load_checkpoint(tmp_path / "second" / "checkpoints" / "step-000000000000.ckpt")
    assert meta["phase"] == "expert"
    for name, tensor in cloned.items():
        assert torch.equal(start["policy"][name], tensor), name
