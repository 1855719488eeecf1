"""Default run directories are built from a scenario's name as one safe file name: whatever the name holds,
the run lands inside runs/."""

from __future__ import annotations

from gridswarm.cli import main
from tests.gridswarm.helpers import SMALL, TRAIN_SMALL


def test_a_scenario_name_never_puts_a_default_run_directory_outside_runs(tmp_path, monkeypatch, capsys):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "s.yaml").write_text("name: 'x[map.path=../../../escaped]'\n" + SMALL)
    monkeypatch.chdir(tmp_path / "work")
    assert main(["train", "s.yaml", *TRAIN_SMALL]) == 0, capsys.readouterr().err
    (run,) = (tmp_path / "work" / "runs").iterdir()
    assert run.name == "x_map.path_.._.._.._escaped_-gru-s0"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["work"]
