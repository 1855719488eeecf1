"""`gridswarm bench`: runs without pogema (GridSwarm's columns alone, a note), refuses --against-pogema
without it in one line naming the install command, and with pogema both simulators play the same map and
task."""

import sys

import numpy as np
import pytest

from gridswarm.cli import main
from gridswarm.commands import bench
from optdeps import install_command

TINY = (bench.Case(agents=6, size=8, steps=4, pogema_steps=2, greedy_steps=3),)


@pytest.fixture
def without_pogema(monkeypatch):
    monkeypatch.setitem(sys.modules, "pogema", None)  # `import pogema` now raises ImportError


def test_runs_without_pogema_and_says_so(without_pogema, monkeypatch, capsys):
    monkeypatch.setattr(bench, "QUICK_CASES", TINY)
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "GridSwarm's numbers only (POGEMA columns '-'; --against-pogema measures them)"
    rows = [line for line in out if line.startswith("| 6 |")]
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1] == "8x8" and float(cells[2]) > 0 and float(cells[4]) > 0  # ours and greedy measured
    assert cells[5] == "-" and cells[6] == "-"  # no POGEMA numbers, no ratio


def test_against_pogema_without_pogema_is_a_one_line_error(without_pogema, capsys):
    assert main(["bench", "--against-pogema", "--quick"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    needs = f"--against-pogema needs the optional package pogema: {install_command('pogema')}"
    assert captured.err.splitlines() == [f"gridswarm bench: error: {needs}"]


def test_case_scenario_is_the_targets_setting():
    scenario = bench.case_scenario(bench.FULL_CASES[1])
    assert (scenario.agents.count, scenario.map.width, scenario.map.height) == (1024, 128, 128)
    assert scenario.dynamics.collision_system == "soft" and scenario.dynamics.on_target == "restart"
    assert scenario.observation.radius == 5 and scenario.map.density == 0.3


@pytest.mark.pogema
def test_both_simulators_play_the_same_map_and_task():
    pytest.importorskip("pogema")
    case = bench.Case(agents=20, size=16, steps=1, pogema_steps=1, greedy_steps=0)
    ours, theirs = bench.bench_env(case), bench.pogema_env(case)
    theirs.reset()
    grid = theirs.grid
    radius = grid.config.obs_radius
    their_obstacles = np.asarray(grid.obstacles)[radius:-radius, radius:-radius]
    np.testing.assert_array_equal(ours.obstacles[0], their_obstacles)
    np.testing.assert_array_equal(ours.positions[0], np.asarray(grid.positions_xy) - radius)
    np.testing.assert_array_equal(ours.goals[0], np.asarray(grid.finishes_xy) - radius)
