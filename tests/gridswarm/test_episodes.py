"""`gridswarm episodes`, `gridswarm render` on stored episodes, and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gridswarm.cli import main
from sim.episodes import EpisodeWriter
from sim.render import agent_colours
from tests.sim.episode_data import SCENARIO, synthetic_episode, write_episode


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "store.zarr"
    writer = EpisodeWriter(path, scenario=SCENARIO, policy="greedy", flush_every=4)
    for seed in range(3):
        write_episode(writer, synthetic_episode(seed, 6 + seed, 3), seed)
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ls_lists_every_episode_with_its_numbers(store, capsys):
    code, out, _ = run_cli(capsys, "episodes", "ls", store)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["episode", "scenario", "agents", "steps", "policy", "metrics"]
    for index, line in enumerate(lines[1:4]):
        fields = line.split()
        metrics = synthetic_episode(index, 6 + index, 3).metrics
        assert fields[:5] == [f"0/{index}", "synthetic", "3", str(6 + index), "greedy"]
        assert f"CSR={metrics['CSR']:.4g}" in fields
    assert lines[-1] == "3 episodes"


def test_show_reports_the_episode_and_its_scenario(store, capsys):
    code, out, _ = run_cli(capsys, "episodes", "show", store, "0/2", "--scenario")
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines())
    expected = synthetic_episode(2, 8, 3)
    assert fields["steps"] == "8" and fields["seed"] == "2" and fields["agents"] == "3"
    assert fields["map"].startswith(f"7x9, {int(expected.obstacles.sum())} obstacle")
    assert f"mean {expected.rewards.sum(axis=0).mean():.4g}" in fields["return"]
    assert "name: synthetic" in out.split("\n\n")[1]


def test_render_gif_and_html_from_the_store(store, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "render", store, "0/0", "--out", tmp_path / "e.gif", "--cell", 8)
    assert code == 0 and "6 steps" in out
    expected = synthetic_episode(0, 6, 3)
    with Image.open(tmp_path / "e.gif") as gif:
        assert gif.n_frames == 6
        gif.seek(5)
        frame = gif.convert("RGB")
    for agent in np.flatnonzero(expected.active[5]):
        r, c = expected.positions[5, agent]
        assert frame.getpixel((int(c) * 8 + 4, int(r) * 8 + 4)) == tuple(agent_colours(3)[agent])
    assert run_cli(capsys, "render", store, "0/0", "--out", tmp_path / "e.html")[0] == 0
    assert "const DATA" in (tmp_path / "e.html").read_text()
    assert run_cli(capsys, "render", store, "0/0", "--out", tmp_path / "f.svg")[0] == 0
    assert len(list((tmp_path / "f").glob("frame_*.svg"))) == 6


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("episodes", "show", "{store}", "0/9"), "episode '0/9' not found"),
        (("episodes", "ls", "{tmp}/missing.zarr"), "missing.zarr: no such episode store"),
        (("render", "{store}", "1/0", "--out", "{tmp}/x.avi"), "unknown format '.avi'"),
        (("replay", "{tmp}", "--verify"), "no zarr.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(store, tmp_path, capsys, argv, fragment):
    code, _, err = run_cli(capsys, *(a.format(store=store, tmp=tmp_path) for a in argv))
    assert code == 2
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "x.avi").exists()
