"""Shipped policies: `pretrained pack` writes a small weights-only checkpoint and its manifest, `pretrained
list` shows one line per policy, and `pretrained:NAME` works wherever a checkpoint is accepted; trained
policies play in `gridswarm run --policy`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import marl.run_dir
import scenarios
from gridswarm.cli import main
from marl.envs import make_training_envs
from marl.evaluate import PolicyActor, mean_metrics, run_episodes
from marl.run_dir import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_policy,
    pretrained_policies,
    run_scenario,
)
from marl.train import train
from sim.baselines import play_episodes
from sim.env import GridEnv
from tests.marl.helpers import TINY, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny MAPPO run on the TINY scenario (a YAML file): (run directory, scenario file)."""
    root = tmp_path_factory.mktemp("trained")
    scenario_file = root / "tiny.yaml"
    scenario_file.write_text(TINY)
    scenario = scenarios.load(scenario_file)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train(
        make_training_envs(scenario, 4, 0),
        tiny_config(total_agent_steps=4 * 8 * 4 * 2),
        root / "run",
        echo=lambda _: None,
        extra_meta={"scenario": str(scenario_file)},
    )
    torch.set_num_threads(threads)
    return root / "run", scenario_file


@pytest.fixture
def library(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "pretrained"
    monkeypatch.setattr(marl.run_dir, "PRETRAINED_DIR", folder)
    return folder


def pack(run: Path, library: Path, name: str = "tiny-srmt") -> None:
    manifest = library.parent / "extra.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "recipe": "MAPPO",
                "command": "gridswarm train tiny",
                "seed": 2,
                "data": "generated maps",
                "metrics": {"avg_throughput": 0.5},
            }
        )
    )
    assert (
        main(
            [
                "pretrained",
                "pack",
                str(run),
                "--name",
                name,
                "--description",
                "a tiny test policy",
                "--manifest",
                str(manifest),
                "--out",
                str(library),
            ]
        )
        == 0
    )


def test_a_packed_policy_is_listed_and_loads_weights_only_with_its_manifest(trained, library, capsys):
    run, scenario_file = trained
    assert main(["pretrained", "list"]) == 0
    assert "no pretrained policies are shipped" in capsys.readouterr().out
    pack(run, library)
    assert main(["pretrained", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"tiny-srmt  {library / 'tiny-srmt.ckpt'}  a tiny test policy"
    (policy,) = pretrained_policies()
    manifest = yaml.safe_load((library / "tiny-srmt.yaml").read_text())
    data = (library / "tiny-srmt.ckpt").read_bytes()
    assert manifest["size_bytes"] == len(data) <= 5 * 1024 * 1024
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["scenario"] == str(scenario_file) and manifest["metrics"] == {"avg_throughput": 0.5}
    tensors, meta = load_checkpoint(policy.checkpoint)
    assert set(tensors) == {"policy"} and "rng" not in meta  # no optimizer, environments or RNG states
    source = load_checkpoint(marl.run_dir.resolve_checkpoint(run))[0]
    loaded, loaded_meta = load_policy("pretrained:tiny-srmt")
    for name, tensor in source["policy"].items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert loaded_meta["checkpoint"] == str(library / "tiny-srmt.ckpt")


def test_pretrained_names_work_in_eval_run_and_train_init(trained, library, tmp_path, capsys, monkeypatch):
    run, scenario_file = trained
    pack(run, library)
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "pretrained:tiny-srmt", "--episodes", "2", "--device", "cpu"]) == 0
    assert "evaluation: pretrained-tiny-srmt-eval-imitation-tiny.csv" in capsys.readouterr().out
    assert sorted(p.name for p in library.iterdir()) == ["tiny-srmt.ckpt", "tiny-srmt.yaml"]
    assert main(["run", str(scenario_file), "--policy", "pretrained:tiny-srmt", "--episodes", "2"]) == 0
    assert "tiny-srmt" not in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                str(scenario_file),
                "--init",
                "pretrained:tiny-srmt",
                "--out",
                str(tmp_path / "t"),
                "--steps",
                "128",
                "--set",
                "num_envs=4",
                "--set",
                "rollout_length=8",
                "--set",
                "chunk_length=4",
                "--set",
                "eval_episodes=0",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert latest_checkpoint(tmp_path / "t")[1]["init"] == str(library / "tiny-srmt.ckpt")
    for command in (
        ["eval", "pretrained:nope"],
        ["run", "random", "--policy", "pretrained:nope"],
        ["train", "random", "--init", "pretrained:nope", "--out", str(tmp_path / "u")],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1 and "pretrained:nope: no such pretrained policy (shipped: tiny-srmt)" in err
        )


def test_packing_refuses_a_policy_over_the_size_limit(trained, library, monkeypatch):
    monkeypatch.setattr(marl.run_dir, "MAX_PRETRAINED_BYTES", 1000)
    with pytest.raises(CheckpointError, match="over 1,000"):
        marl.run_dir.pack_pretrained(trained[0], library, "big", "too big", {})
    assert not (library / "big.ckpt").exists() and not (library / "big.yaml").exists()


def test_every_shipped_policy_is_complete_small_and_intact():
    for policy in pretrained_policies():
        data = policy.checkpoint.read_bytes()
        assert len(data) == policy.manifest["size_bytes"] <= 5 * 1024 * 1024, policy.name
        assert hashlib.sha256(data).hexdigest() == policy.manifest["sha256"], policy.name
        assert all(policy.manifest[key] is not None for key in marl.run_dir.MANIFEST_KEYS), policy.name
        loaded, meta = load_policy(f"pretrained:{policy.name}")
        scenario = run_scenario(meta, policy.checkpoint)
        assert tuple(loaded.config.obs_shape) == GridEnv(scenario, 1).obs_shape, policy.name


def test_a_trained_policy_plays_in_run_as_in_evaluation(trained):
    """`gridswarm run --policy CHECKPOINT` (PolicyActor reading the env's state) plays the very episodes
    that evaluation plays (run_episodes) with the same sampling stream."""
    run, scenario_file = trained
    scenario = scenarios.load(scenario_file)
    policy, _ = load_policy(run)
    env = GridEnv(scenario, 3, seed=11, auto_reset=False)
    evaluated = run_episodes(env, policy, torch.device("cpu"), 4, seed=11)
    played_env = GridEnv(scenario, 3, seed=11)
    played = play_episodes(played_env, PolicyActor(policy, played_env, 4), 3)
    assert mean_metrics(played) == mean_metrics(evaluated)
    assert np.isfinite(mean_metrics(played)["avg_throughput"])


def test_a_policy_that_cannot_read_the_scenario_is_a_one_line_error(trained, capsys):
    run, _ = trained
    assert main(["run", "random", "--policy", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reads observations of shape (4, 5, 5), scenario 'random' gives" in err
