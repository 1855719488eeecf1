"""fsio's atomic writes: the umask's permissions, nothing left behind on failure, the old content kept by a
crash between write and rename, and the same guarantees from every writer of run outputs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fsio
from fsio.atomic import TEMPORARY

REPOSITORY = Path(__file__).parents[2]


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_a_plain_open_gives(tmp_path, mask, expected):
    with umask(mask):
        fsio.atomic_write_text(tmp_path / "a.txt", "a")
        # a writer that opens the temporary name itself
        with fsio.atomic_path(tmp_path / "b.bin") as temporary, open(temporary, "wb") as handle:
            handle.write(b"b")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("plain")
    assert mode_of(tmp_path / "plain.txt") == expected
    assert mode_of(tmp_path / "a.txt") == expected
    assert mode_of(tmp_path / "b.bin") == expected


def leftovers(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if entry.name.startswith("."))


def test_an_exception_leaves_the_old_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), fsio.atomic_writer(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("writer failed")
    with pytest.raises(OSError), fsio.atomic_path(target) as temporary:
        temporary.write_text("new")
        raise OSError("disk full")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_new_file_is_not_created_when_its_writer_fails(tmp_path):
    with pytest.raises(KeyboardInterrupt), fsio.atomic_writer(tmp_path / "new.bin", "wb") as handle:
        handle.write(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_crash_between_write_and_rename_keeps_the_old_content(tmp_path):
    target = tmp_path / "state.json"
    target.write_text('{"version": "old"}')
    # the child is killed (os._exit: no cleanup runs) exactly where the rename would happen
    child = textwrap.dedent(
        f"""
        import os
        import fsio.atomic
        fsio.atomic.os.replace = lambda *args: os._exit(9)
        fsio.atomic_write_text({str(target)!r}, '{{"version": "new"}}')
        """
    )
    result = subprocess.run([sys.executable, "-c", child], cwd=REPOSITORY, check=False)
    assert result.returncode == 9
    assert target.read_text() == '{"version": "old"}'
    abandoned = fsio.abandoned_temporaries(tmp_path)
    assert len(abandoned) == 1 and abandoned[0].read_text() == '{"version": "new"}'
    assert TEMPORARY.match(abandoned[0].name)


def test_a_live_writers_temporary_file_is_not_abandoned(tmp_path):
    with fsio.atomic_path(tmp_path / "x") as temporary:
        assert temporary.exists() and fsio.abandoned_temporaries(tmp_path) == []


@settings(max_examples=30)
@given(
    data=st.binary(max_size=4096),
    name=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=240),
)
def test_writes_round_trip_and_leave_only_the_target(tmp_path_factory, data, name):
    directory = tmp_path_factory.mktemp("atomic")
    fsio.atomic_write_bytes(directory / name, data)
    assert (directory / name).read_bytes() == data
    assert [entry.name for entry in directory.iterdir()] == [name]


# ---- every writer of run outputs goes through fsio ------------------------------------------------------


def write_config(path: Path) -> None:
    from marl.run_dir import write_yaml

    write_yaml(path, {"a": 1})


def write_checkpoint(path: Path) -> None:
    import torch

    import hpc

    written = hpc.save_checkpoint(path.parent, 7, {"w": torch.zeros(2)}, {})
    written.rename(path)


def write_report(path: Path) -> None:
    from marl.report import write_report as report

    report([{"variant": "v", "episodes": 1, "CSR": 1.0}], path.with_suffix(""))


def write_gif(path: Path) -> None:
    from sim.render import save_gif

    positions = np.zeros((2, 1, 2), dtype=np.int64)
    save_gif(path, np.zeros((3, 3), np.uint8), positions, positions)


def write_html(path: Path) -> None:
    from sim.render import save_html

    positions = np.zeros((2, 1, 2), dtype=np.int64)
    save_html(path, np.zeros((3, 3), np.uint8), positions, positions)


WRITERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "config.yaml": (write_config, "config.yaml"),
    "checkpoint": (write_checkpoint, "step.ckpt"),
    "eval report": (write_report, "eval.csv"),
    "gif": (write_gif, "ep.gif"),
    "html": (write_html, "ep.html"),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_run_outputs_are_readable_by_the_group_and_others(tmp_path, kind):
    write, name = WRITERS[kind]
    with umask(0o022):
        write(tmp_path / name)
    assert mode_of(tmp_path / name) == 0o644
    assert leftovers(tmp_path) == []
