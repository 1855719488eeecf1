"""`gridswarm export`: checkpoints in, artifacts out, one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

import memory
from gridswarm.cli import main
from hpc.checkpoint import save_checkpoint
from marl.run_dir import CHECKPOINT_FORMAT
from tests.gridswarm.helpers import write_checkpoint


def test_run_dir_checkpoint_to_c_and_waypoints(tmp_path, capsys):
    policy = memory.make_policy("gru", (3, 11, 11), preset="drone", seed=2)
    write_checkpoint(
        tmp_path / "run" / "checkpoints", 5, memory.make_policy("gru", (3, 11, 11), preset="drone")
    )
    write_checkpoint(tmp_path / "run" / "checkpoints" / "best", 4, policy)
    cells = np.array([[[0, 0], [2, 2]], [[0, 1], [2, 2]], [[1, 1], [2, 2]]])
    np.save(tmp_path / "cells.npy", cells)
    code = main(
        [
            "export",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "out"),
            "--format",
            "c,waypoints",
            "--positions",
            str(tmp_path / "cells.npy"),
            "--verify-samples",
            "50",
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["source"]["checkpoint"].endswith("checkpoints/best/step-000000000004.ckpt")
    assert "policy.onnx" not in manifest["files"] and "policy.c" in manifest["files"]
    transform = manifest["grid_to_world"]
    assert [transform[k] for k in ("cell_size_m", "altitude_m")] == [0.5, 1.0]
    # the smooth pieces need longer steps than the straight lines (0.5 m at 0.5 m/s: 1 s)
    assert transform["step_duration_s"] == manifest["waypoints"]["step_duration_s"] > 1.0
    assert manifest["waypoints"]["num_drones"] == 2 and "waypoints/fly_cflib.py" in manifest["files"]
    # the exported C carries the checkpoint's weights, not fresh ones
    golden = np.load(tmp_path / "out" / "golden.npz")
    with torch.no_grad():
        logits, _ = policy.agent_step(
            torch.from_numpy(golden["obs"][:1]),
            policy.initial_agent_state(1),
            reset=torch.ones(1, dtype=torch.bool),
        )
    np.testing.assert_allclose(golden["logits"][:1], logits.numpy(), atol=1e-6)


def test_unsafe_plan_is_one_line_and_writes_nothing(tmp_path, capsys):
    np.save(tmp_path / "swap.npy", np.array([[[0, 0], [0, 1]], [[0, 1], [0, 0]]]))
    code = main(
        [
            "export",
            "new:empty",
            "--out",
            str(tmp_path / "out"),
            "--format",
            "c,waypoints",
            "--positions",
            str(tmp_path / "swap.npy"),
            "--verify-samples",
            "10",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "drones 0 and 1 come 0.000 m apart during step 0" in err
    assert not (tmp_path / "out").exists()


def test_bad_checkpoints_are_refused_in_one_line(tmp_path, capsys):
    path = write_checkpoint(tmp_path, 1, memory.make_policy("gru", (3, 5, 5), preset="drone"))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"meta": json.dumps({"format": "x"}), "policy": print}, foreign)  # a pickle of a function
    for source, message in (
        (path, "corrupted"),
        (foreign, "not a GridSwarm checkpoint"),
        (tmp_path / "missing", "no such run directory"),
    ):
        code = main(["export", str(source), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_waypoints_from_a_stored_episode(tmp_path, capsys):
    from scenarios.loader import loads
    from sim.baselines import GreedyPolicy
    from sim.env import GridEnv
    from sim.episodes import Recorder
    from sim.episodes import open as open_store

    scenario = loads(
        "name: t\nmap: {generator: random, width: 8, height: 8, density: 0.1}\nagents: {count: 3}\n"
        "dynamics: {on_target: nothing, max_episode_steps: 12}\nobservation: {radius: 2}\n"
    )
    env = GridEnv(scenario, 1, seed=4, auto_reset=False)
    recorder = Recorder(env, tmp_path / "episodes.zarr")
    recorder.reset()
    greedy = GreedyPolicy(env, seed=0)
    while not recorder.finished_ids:
        recorder.step(greedy())
    recorder.close()
    episode_id = recorder.finished_ids[0]
    positions = open_store(tmp_path / "episodes.zarr")[episode_id].positions
    code = main(
        [
            "export",
            "new:empty",
            "--obs-shape",
            "3,5,5",
            "--out",
            str(tmp_path / "out"),
            "--format",
            "c,waypoints",
            "--episodes",
            str(tmp_path / "episodes.zarr"),
            "--episode",
            episode_id,
            "--cell-size",
            "0.6",
            "--verify-samples",
            "10",
        ]
    )
    assert code == 0, capsys.readouterr().err
    rows = np.genfromtxt(tmp_path / "out" / "waypoints" / "waypoints.csv", delimiter=",", names=True)
    for drone in range(3):
        mine = rows[rows["drone"] == drone]
        np.testing.assert_array_equal(np.stack([mine["row"], mine["col"]], axis=1), positions[:, drone])
        np.testing.assert_allclose(mine["x_m"], (positions[:, drone, 1] + 0.5) * 0.6, atol=1e-5)


def test_onnx_without_its_packages_is_one_line_naming_the_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails as if it were absent
    code = main(["export", "new:empty", "--out", str(tmp_path / "out"), "--mcu", "off"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "policy.onnx (--format c leaves it out) needs the optional package onnx: pip install -e " in err
    assert err.endswith('[export]"'), err
    assert not (tmp_path / "out").exists()


def test_missing_mcu_tools_are_named_with_their_install_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("deploy.mcu.missing_tools", lambda: ["qemu-system-arm"])
    common = ["export", "new:empty", "--obs-shape", "3,5,5", "--format", "c", "--verify-samples", "10"]
    assert main([*common, "--out", str(tmp_path / "auto")]) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if "MCU check skipped" in line]
    assert len(skipped) == 1 and "qemu-system-arm not found (apt-get install gcc-arm-none-eabi " in skipped[0]
    manifest = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert manifest["mcu"]["measured"] is False and "firmware/policy_selftest.elf" not in manifest["files"]
    assert main([*common, "--out", str(tmp_path / "on"), "--mcu", "on"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "gridswarm export: error: the MCU check needs qemu-system-arm: apt-get install gcc-arm-none-eabi "
        "libnewlib-arm-none-eabi qemu-system-arm"
    )


def test_a_run_is_verified_on_observations_of_its_own_scenario(tmp_path, capsys):
    scenario = tmp_path / "small.yaml"
    scenario.write_text(
        "name: small\nmap: {generator: random, width: 8, height: 8, density: 0.1}\nagents: {count: 2}\n"
        "dynamics: {max_episode_steps: 16}\nobservation: {radius: 2}\n"
    )
    policy = memory.make_policy("gru", (3, 5, 5), preset="drone", seed=2)
    meta = {"format": CHECKPOINT_FORMAT, "policy_config": policy.config.to_dict(), "scenario": str(scenario)}
    save_checkpoint(tmp_path / "run" / "checkpoints", 3, {"policy": policy.state_dict()}, meta)
    common = ["export", str(tmp_path / "run"), "--format", "c", "--verify-samples", "50", "--mcu", "off"]
    assert main([*common, "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["verification"]["inputs"] == "recorded observations"
    assert manifest["source"]["scenario"] == str(scenario)
    assert manifest["observation"]["channels"] == ["obstacles", "agents", "goal"]
