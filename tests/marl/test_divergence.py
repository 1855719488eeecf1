"""A diverging run (a learning rate far too high) stops at its first non-finite loss, gradient or weight
with one line naming the update; every checkpoint it leaves is finite, and eval, export and --resume
refuse a checkpoint with non-finite weights in one line."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest
import torch

import hpc
from gridswarm.cli import main
from marl.run_dir import latest_checkpoint, save_run_checkpoint

TINY = Path(__file__).parents[1] / "hpc" / "tiny.yaml"
SMALL_RUN = ["--model", "gru", "--device", "cpu", "--steps", "20000"]
SMALL_RUN += [f"--set={item}" for item in ("num_envs=2", "rollout_length=8", "chunk_length=4")]
SMALL_RUN += [f"--set={item}" for item in ("num_minibatches=1", "eval_episodes=0", "checkpoint_every=1")]


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> tuple[Path, int, str]:
    """A run with lr=1e5: (run directory, the update that diverged, stderr)."""
    run = tmp_path_factory.mktemp("diverged") / "run"
    err = io.StringIO()  # a module-scoped fixture cannot use capsys
    with contextlib.redirect_stderr(err):
        status = main(["train", str(TINY), *SMALL_RUN, "--set=lr=1e5", "--out", str(run)])
    assert status == 2
    (line,) = errors(err.getvalue())
    match = re.fullmatch(r"gridswarm train: error: update (\d+): non-finite \w+ \(.*\); .*", line)
    assert match, line
    return run, int(match[1]), line


def errors(stderr: str) -> list[str]:
    """stderr's lines but hpc's notice that a run without a launcher is one process."""
    return [line for line in stderr.splitlines() if not line.startswith("gridswarm.hpc: running as a single")]


def test_training_stops_at_the_first_non_finite_update_and_every_checkpoint_is_finite(diverged):
    run, failed_update, _ = diverged
    assert failed_update > 1, "the test needs a few finite updates before the divergence"
    checkpoints = hpc.list_checkpoints(run / "checkpoints") + hpc.list_checkpoints(
        run / "checkpoints" / "best"
    )
    assert max(step for step, _ in checkpoints) == failed_update - 1  # checkpoint_every=1
    for _, path in checkpoints:
        tensors, _ = hpc.load_checkpoint(path)
        assert hpc.first_non_finite(tensors) is None, path
    assert latest_checkpoint(run)[1]["update"] == failed_update - 1


@pytest.fixture
def nan_run(diverged, tmp_path) -> Path:
    """A copy of the diverged run whose newest checkpoint (and best/) hold a NaN weight."""
    run = tmp_path / "run"
    shutil.copytree(diverged[0], run)
    tensors, meta, _ = latest_checkpoint(run)
    name = next(iter(tensors["policy"]))
    tensors["policy"][name] = torch.full_like(tensors["policy"][name], float("nan"))
    meta = {key: value for key, value in meta.items() if key not in ("format", "step", "schema_version")}
    save_run_checkpoint(run, meta["update"] + 1, tensors, meta, best=True)
    return run


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "{run}", "--episodes", "1", "--device", "cpu"],
        ["export", "{run}", "--out", "{run}/../drone", "--format", "c", "--verify-samples", "10"],
        ["train", "--resume", "{run}"],
    ],
)
def test_non_finite_weights_are_refused_in_one_line(nan_run, capsys, argv):
    assert main([part.format(run=nan_run) for part in argv]) == 2
    (line,) = errors(capsys.readouterr().err)
    assert "non-finite weights in policy[" in line, line
    assert not (nan_run.parent / "drone").exists()
