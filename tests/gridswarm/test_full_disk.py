"""A disk that fills up (or turns read-only) while a command writes: one line naming the file and the
reason, exit status 2, and no file left behind half-written (the atomic writes remove their temporary
files; the export removes its staging directory)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from gridswarm.cli import main
from tests.gridswarm.helpers import SMALL, TRAIN_SMALL


@pytest.fixture
def store(tmp_path) -> Path:
    (tmp_path / "small.yaml").write_text(SMALL)
    argv = ["run", str(tmp_path / "small.yaml"), "--episodes", "1", "--policy", "random"]
    assert main([*argv, "--record", str(tmp_path / "store.zarr")]) == 0
    return tmp_path / "store.zarr"


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if not path.is_dir()}


@pytest.mark.parametrize("reason", [errno.ENOSPC, errno.EROFS, errno.EIO])
@pytest.mark.parametrize("command", ["train", "render", "export", "run --record"])
def test_a_failing_disk_is_one_line_and_leaves_no_partial_file(store, capsys, monkeypatch, command, reason):
    workspace = store.parent
    argv = {
        "train": ["train", str(workspace / "small.yaml"), *TRAIN_SMALL, "--out", str(workspace / "out")],
        "render": ["render", str(store), "0/0", "--out", str(workspace / "out.gif")],
        "export": ["export", "new:empty", "--out", str(workspace / "out"), "--verify-samples", "10"],
        "run --record": [
            "run",
            str(workspace / "small.yaml"),
            "--episodes",
            "1",
            "--record",
            str(workspace / "out"),
        ],
    }[command]
    before = files_under(workspace)
    capsys.readouterr()

    def failing_fsync(descriptor: int) -> None:
        raise OSError(reason, os.strerror(reason))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("gridswarm.hpc:")]
    assert len(err) == 1 and os.strerror(reason) in err[0], err
    assert files_under(workspace) == before
