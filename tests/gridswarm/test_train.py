"""`gridswarm train` / `gridswarm eval` on bad input: one line on stderr, exit 2, nothing half-written."""

import numpy as np
import pytest
import torch

from gridswarm.cli import main
from tests.gridswarm.helpers import TRAIN_SMALL


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "bottleneck", "--set", "learning_rate=1"], "unknown key 'learning_rate'"),
        (["train", "bottleneck", "--set", "num_envs=lots"], "key 'num_envs': expected int"),
        (["train", "no-such-scenario"], "no-such-scenario"),
    ],
)
def test_train_rejects_bad_input_in_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_train_rejects_an_unknown_model(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "bottleneck", "--model", "lstm"])
    assert info.value.code == 2 and "invalid choice: 'lstm'" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"not a checkpoint at all", None])
def test_eval_rejects_corrupted_or_foreign_checkpoints(content, capsys, tmp_path):
    path = tmp_path / "policy.pt"
    if content is None:
        torch.save({"meta": '{"format": "something-else"}'}, path)
    else:
        path.write_bytes(content)
    assert main(["eval", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and "\n" not in err


def test_a_run_finds_its_scenario_file_from_any_directory(tmp_path, monkeypatch, capsys):
    """A scenario named by a relative path is recorded absolute: eval (which defaults to the run's scenario)
    works from another working directory."""
    import shutil
    from pathlib import Path

    import yaml

    workdir = tmp_path / "here"
    workdir.mkdir()
    shutil.copy(Path(__file__).parents[1] / "hpc" / "tiny.yaml", workdir / "tiny.yaml")
    monkeypatch.chdir(workdir)
    assert main(["train", "tiny.yaml", *TRAIN_SMALL, "--steps", "256", "--out", "run"]) == 0
    recorded = yaml.safe_load((workdir / "run" / "config.yaml").read_text())["scenario"]
    assert recorded == str((workdir / "tiny.yaml").resolve())
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(workdir / "run"), "--episodes", "2", "--device", "cpu"]) == 0
    assert "CSR" in capsys.readouterr().out


def test_a_run_keeps_its_scenario_as_loaded_when_its_file_changes(tmp_path, capsys):
    """The run directory holds the scenario as it was loaded: after its file is edited, eval gives the same
    table as before, and after it is deleted the run still resumes (from its directory alone)."""
    import dataclasses
    import json
    import shutil
    from pathlib import Path

    import yaml

    import scenarios
    from marl.run_dir import latest_update, run_scenario

    scenario_file = tmp_path / "tiny.yaml"
    shutil.copy(Path(__file__).parents[1] / "hpc" / "tiny.yaml", scenario_file)
    run = tmp_path / "run"
    assert main(["train", str(scenario_file), *TRAIN_SMALL, "--steps", "256", "--out", str(run)]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    stored = run_scenario(saved, run / "config.yaml")
    assert dataclasses.replace(stored, source=None) == dataclasses.replace(
        scenarios.load(scenario_file), source=None
    )
    evaluate = ["eval", str(run), "--episodes", "3", "--device", "cpu"]
    assert main(evaluate) == 0
    report = next(run.glob("eval-tiny-*.json"))
    before = json.loads(report.read_text())
    edited = scenario_file.read_text().replace("max_episode_steps: 16", "max_episode_steps: 2")
    scenario_file.write_text(edited)
    assert main(evaluate) == 0
    assert json.loads(report.read_text()) == before
    scenario_file.unlink()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "512"]) == 0, capsys.readouterr().err
    assert latest_update(run) == 512 // 64  # 2 envs x 4 agents x 8 steps per update


def test_steps_are_agent_steps_and_a_finished_run_is_left_alone(tmp_path, capsys):
    """--steps N runs N agent-steps rounded to whole updates and says so first; resuming a finished run
    changes nothing, and a larger --steps extends it."""
    from pathlib import Path

    from marl.run_dir import read_metrics

    run = tmp_path / "run"
    tiny = str(Path(__file__).parents[1] / "hpc" / "tiny.yaml")
    settings = ["num_envs=2", "rollout_length=8", "chunk_length=4", "num_minibatches=1", "eval_episodes=0"]
    argv = ["train", tiny, "--model", "gru", "--device", "cpu", "--out", str(run)]
    argv += [item for setting in settings for item in ("--set", setting)]
    assert main([*argv, "--steps", "150"]) == 0  # 2 envs x 4 agents x 8 steps = 64 per update
    first = capsys.readouterr().out.splitlines()[0]
    assert "2 updates x 64 = 128 agent-steps (150 asked, rounded to whole updates)" in first
    assert [row["agent_steps"] for row in read_metrics(run / "metrics.jsonl")] == [64, 128]
    files = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}

    assert main(["train", "--resume", str(run)]) == 0
    assert "finished" in capsys.readouterr().out
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == files

    assert main(["train", "--resume", str(run), "--steps", "256"]) == 0
    rows = read_metrics(run / "metrics.jsonl")
    assert [row["agent_steps"] for row in rows] == [64, 128, 192, 256]
    # TensorBoard holds every metric of every row, once, at its agent-steps
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from marl.watch import NOT_LOGGED, tag_of

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    for key in {k for row in rows for k, v in row.items() if isinstance(v, float | int)} - NOT_LOGGED:
        logged = [(e.step, e.value) for e in events.Scalars(tag_of(key))]
        expected = [(row["agent_steps"], row[key]) for row in rows if row.get(key) is not None]
        assert [step for step, _ in logged] == [step for step, _ in expected], key
        np.testing.assert_allclose([v for _, v in logged], [v for _, v in expected], rtol=1e-6, err_msg=key)
    assert {"optimizer/lr", "optimizer/grad_norm", "optimizer/approx_kl", "optimizer/clip_fraction"} <= set(
        events.Tags()["scalars"]
    )
    assert {"losses/explained_variance", "speed/agent_steps_per_s"} <= set(events.Tags()["scalars"])


def test_wandb_logs_every_row_offline_without_an_account(tmp_path, monkeypatch):
    """The W&B sink (with a stand-in for the wandb package) runs offline unless told otherwise and logs the
    same grouped metrics as TensorBoard."""
    import sys
    import types

    from marl.watch import WandbSink

    calls = {}

    class Run:
        def log(self, values):
            calls.setdefault("log", []).append(values)

        def finish(self):
            calls["finished"] = True

    fake = types.SimpleNamespace(init=lambda **kwargs: calls.update(init=kwargs) or Run())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    sink = WandbSink(tmp_path / "run", "proj", {"lr": 0.1}, resume=False)
    sink.log({"update": 1, "agent_steps": 64, "CSR": 0.5, "lr": 0.1, "entropy": float("nan")}, 64)
    sink.close()
    assert calls["init"]["mode"] == "offline" and calls["init"]["project"] == "proj"
    assert calls["init"]["dir"] == str(tmp_path / "run")
    assert calls["log"] == [{"episodes/CSR": 0.5, "optimizer/lr": 0.1, "agent_steps": 64}]
    assert calls["finished"]
