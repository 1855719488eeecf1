"""`gridswarm export --out DIR --force` replaces only an earlier export: never a directory with anything
else in it, never the source checkpoint's directory or the working directory, never a file or a link."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import memory
from gridswarm.cli import main
from tests.gridswarm.helpers import write_checkpoint


def export(source: str, out: Path | str, *extra: str) -> list[str]:
    return ["export", source, "--out", str(out), "--format", "c", "--verify-samples", "10", *extra]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root (files with their bytes)."""
    return {
        str(path.relative_to(root)): (path.read_bytes() if path.is_file() else None)
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def earlier_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("earlier") / "drone"
    assert main(export("new:empty", out)) == 0
    return out


@pytest.fixture
def workspace(tmp_path, monkeypatch, earlier_export):
    """tmp_path with a run (checkpoints), an unrelated notes file and an earlier export, as the cwd."""
    monkeypatch.chdir(tmp_path)
    policy = memory.make_policy("empty", (3, 11, 11), preset="drone")
    write_checkpoint(tmp_path / "run" / "checkpoints", 3, policy)
    (tmp_path / "notes.txt").write_text("keep me")
    export_dir = tmp_path / "drone"
    export_dir.mkdir()
    for file in earlier_export.rglob("*"):
        if file.is_file():
            target = export_dir / file.relative_to(earlier_export)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    return tmp_path


def refused(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


@pytest.mark.parametrize(
    ("source", "out", "expected"),
    [
        ("run", ".", "holds the source checkpoint"),
        ("run", "..", "holds the source checkpoint"),
        ("run", "run", "holds the source checkpoint"),
        ("run", "run/checkpoints", "holds the source checkpoint"),
        ("new:empty", ".", "holds the working directory"),
        ("new:empty", "..", "holds the working directory"),
        ("new:empty", "run", "no manifest.json of an earlier export"),
        ("run", "notes.txt", "is not a directory"),
    ],
)
def test_force_never_replaces_what_is_not_an_earlier_export(capsys, workspace, source, out, expected):
    before = snapshot(workspace)
    refused(capsys, export(source, out, "--force"), expected)
    assert snapshot(workspace) == before


def test_an_earlier_export_that_holds_the_source_checkpoint_is_not_replaced(capsys, workspace):
    checkpoint = workspace / "drone" / "step-000000000003.ckpt"
    checkpoint.write_bytes((workspace / "run" / "checkpoints" / checkpoint.name).read_bytes())
    manifest = json.loads((workspace / "drone" / "manifest.json").read_text())
    manifest["files"][checkpoint.name] = {}
    (workspace / "drone" / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(workspace)
    refused(capsys, export(str(checkpoint), "drone", "--force"), "holds the source checkpoint")
    os.chdir(workspace / "drone")
    refused(capsys, export("new:empty", workspace / "drone", "--force"), "holds the working directory")
    assert snapshot(workspace) == before


def test_an_export_directory_with_a_file_of_its_own_is_not_replaced(capsys, workspace):
    (workspace / "drone" / "flight-log.txt").write_text("measured on the real drone")
    before = snapshot(workspace)
    refused(capsys, export("run", "drone", "--force"), "holds 'flight-log.txt', which no export wrote")
    assert snapshot(workspace) == before


def test_a_directory_with_a_foreign_manifest_is_not_replaced(capsys, workspace):
    (workspace / "drone" / "manifest.json").write_text(json.dumps({"format": "someone-else", "files": {}}))
    before = snapshot(workspace)
    refused(capsys, export("run", "drone", "--force"), "no manifest.json of an earlier export")
    assert snapshot(workspace) == before


def test_a_symbolic_link_is_not_followed_or_replaced(capsys, workspace):
    (workspace / "link").symlink_to(workspace / "drone")
    before = snapshot(workspace)
    refused(capsys, export("run", "link", "--force"), "is a symbolic link")
    assert snapshot(workspace) == before


def test_without_force_nothing_existing_is_replaced(capsys, workspace):
    before = snapshot(workspace)
    refused(capsys, export("run", "drone"), "already exists")
    assert snapshot(workspace) == before


def test_force_replaces_an_earlier_export(capsys, workspace):
    old = json.loads((workspace / "drone" / "manifest.json").read_text())
    assert main(export("run", "drone", "--force")) == 0, capsys.readouterr().err
    new = json.loads((workspace / "drone" / "manifest.json").read_text())
    assert old["source"]["checkpoint"] is None
    assert new["source"]["checkpoint"].endswith("run/checkpoints/step-000000000003.ckpt")
    assert (workspace / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in workspace.iterdir() if p.name.startswith(".")) == []
