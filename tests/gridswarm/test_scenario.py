"""`gridswarm scenario check` and `gridswarm scenario list`."""

from __future__ import annotations

import pytest

import scenarios
from gridswarm.cli import main


def test_check_summarizes_a_builtin(capsys):
    assert main(["scenario", "check", "bottleneck-test"]) == 0
    out = capsys.readouterr().out
    for fact in (
        "bottleneck map",
        "2 agents placed by 'rooms'",
        "block_both",
        "106-2100 steps",
        "radius 2 (5x5",
        "reward 'sparse'",
        "58 variants of map.corridor_length",
        "dynamics.max_episode_steps varies",
    ):
        assert fact in out, fact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("map: {generator: random, widht: 8}\n", "bad.yaml:1: key 'map.widht': unknown key"),
        (
            "map: {generator: warehouse, shelf_rows: 1, shelf_columns: 1, shelf_length: 1}\n"
            "agents: {count: 500}\n",
            "key 'agents.count': expected at most",
        ),
        ("map: [\n", "bad.yaml:2: invalid YAML"),
    ],
)
def test_check_rejects_bad_files_with_one_line_and_status_2(tmp_path, capsys, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["scenario", "check", "bad.yaml"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in captured.err


def test_list_names_every_builtin_with_its_description(capsys):
    assert main(["scenario", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == scenarios.builtin_names()
    assert all(len(line.split()) > 3 for line in lines)
