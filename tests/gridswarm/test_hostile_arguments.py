"""Every subcommand and every flag, given hostile values (out of range, non-finite, wrong type, a file where
a directory belongs, a FIFO, a device, a missing path, text sbatch or a shell would misread): exit status 2,
exactly one line on stderr, no traceback, and nothing written or half-written.

`HOSTILE` lists the values of every argument of every subcommand (a test fails when a parser gains an
argument without an entry); each case starts from a valid, quick invocation (`BASES`) and changes one
argument."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridswarm.cli import build_parser, main
from tests.gridswarm.helpers import IMITATE_SMALL, SMALL, TRAIN_SMALL

INT = ("-1", "abc", "", "99999999999999999999999", "nan", "1.5", "0x10")
SEED = ("-1", "9223372036854775808", "abc", "", "1e3")
FLOAT = ("nan", "inf", "-inf", "-1", "abc", "1e999", "")
POSITIVE = (*FLOAT, "0")
CHOICE = ("", "nope", "CPU")
NAME = ("", "a b", "$(touch PWNED)", "a#b", "x" * 5000)
FLAG = ("=1",)  # a store_true flag given a value
SCENARIO = ("{ws}/missing.yaml", "{ws}/file.txt", "{ws}/dir", "{ws}/fifo", "{ws}/zero", "no-such-builtin", "")
STORE = ("{ws}/missing", "{ws}/file.txt", "{ws}/dir", "{ws}/fifo", "{ws}/zero", "{ws}/run")
CHECKPOINT = ("{ws}/missing", "{ws}/file.txt", "{ws}/dir", "{ws}/fifo", "{ws}/zero", "{ws}/store.zarr")
EPISODE_ID = ("9/9", "", "0/", "/0", "x", "0/0/0", "-1")
STORE_OUT = ("{ws}/file.txt", "{ws}/full", "{ws}/file.txt/x.zarr", "{ws}/zero")
RUN_DIR = ("{ws}/file.txt", "{ws}/with space", "{ws}/a%j", "{ws}/a#b", "{ws}/q'uote", "{ws}/$(touch PWNED)")
SITE = ("{ws}/missing", "{ws}/file.txt", "{ws}/dir", "{ws}/fifo", "{ws}/zero")
SET = ("lr=nan", "lr=inf", "num_envs=1e9", "lr", "=1", "nope=1", "lr=-1", "seed=-1", "num_envs=0", "gamma=2")
SET += ("eval_episodes=-1", "max_grad_norm=0", "epochs=1e6", "torch_threads=0")
DEVICE = (*CHOICE, *(() if torch.cuda.is_available() else ("cuda",)))
EXPORT_NEW = ["export", "new:empty", "--out", "{ws}/new-export", "--verify-samples", "10"]
SLURM_COMMON = {
    "--run-dir": RUN_DIR,
    "--site": SITE,
    "--job-name": NAME,
    "--nodes": (*INT, "0", "100001"),
    "--ntasks-per-node": (*INT, "0", "10001"),
    "--cpus-per-task": (*INT, "0", "10001"),
    "--gpus-per-node": (*INT, "1025"),
    "--time": NAME,
    "--partition": NAME,
    "--account": NAME,
    "--mem": NAME,
    "--launcher": CHOICE,
    "--mpi": NAME,
    "--dry-run": FLAG,
}

# command -> (base argv, {argument: hostile values}); positionals are named "<dest>"
HOSTILE: dict[str, tuple[list[str], dict[str, tuple[str, ...]]]] = {
    "bench": (["bench", "--quick"], {"--against-pogema": FLAG, "--quick": FLAG}),
    "episodes ls": (["episodes", "ls", "{ws}/store.zarr"], {"<store>": STORE}),
    "episodes show": (
        ["episodes", "show", "{ws}/store.zarr", "0/0"],
        {"<store>": STORE, "<id>": EPISODE_ID, "--scenario": FLAG},
    ),
    "export": (
        ["export", "{ws}/run", "--out", "{ws}/new-export", "--format", "c", "--verify-samples", "10"],
        {
            "<source>": (*CHECKPOINT, "new:nope"),
            "--out": ("{ws}/file.txt", "{ws}/full", "{ws}/dir", "{ws}/file.txt/x", "{ws}/zero", "{ws}"),
            "--format": ("", "pdf", "c,pdf", ","),
            "--int8": FLAG,
            "--neighbours": (*INT, "0", "1025"),
            "--target": CHOICE,
            "--scenario": (*SCENARIO, "random"),
            "--verify-samples": (*INT, "0"),
            "--force": FLAG,
            "--seed": SEED,
            "--cell-size": POSITIVE,
            "--origin": ("", "1", "a,b", "nan,0", "inf,1", "1,2,3", "1e300,0"),
            "--altitude": POSITIVE,
            "--max-speed": POSITIVE,
            "--max-accel": POSITIVE,
            "--step-duration": POSITIVE,
            "--mcu": CHOICE,
            "--safety-distance": FLOAT,
            "--rollout": FLAG,
        },
    ),
    "export new": (
        [*EXPORT_NEW, "--format", "c"],
        {
            "--obs-shape": ("", "3,11", "a,b,c", "0,11,11", "-3,11,11", "3,99999,99999", "65,11,11"),
            "--preset": ("", "nope"),
            "--scope": ("", "nope"),
        },
    ),
    "export waypoints": (
        [*EXPORT_NEW, "--format", "c,waypoints", "--episodes", "{ws}/store.zarr", "--episode", "0/0"],
        {"--episodes": STORE, "--episode": EPISODE_ID},
    ),
    "export positions": (
        [*EXPORT_NEW, "--format", "c,waypoints", "--positions", "{ws}/cells.npy"],
        {"--positions": (*STORE, "{ws}/nan.npy", "{ws}/flat.npy", "{ws}/pickle.npy")},
    ),
    "eval": (
        ["eval", "{ws}/run", "--episodes", "1", "--device", "cpu"],
        {
            "<target>": CHECKPOINT,
            "--scenario": (*SCENARIO, "random"),
            "--episodes": (*INT, "0", "65537"),
            "--seed": SEED,
            "--greedy": FLAG,
            "--record": STORE_OUT,
            "--in-pogema": FLAG,
            "--device": DEVICE,
            "--torch-threads": (*INT, "0", "1025"),
        },
    ),
    "runs compare": (
        ["runs", "compare", "{ws}/run", "--out", "{ws}/new.png"],
        {
            "<runs>": CHECKPOINT,
            "--out": ("{ws}/file.txt/x.png", "{ws}/dir", "{ws}/noext", "{ws}/x.gif"),
            "--metrics": ("", "nope"),
            "--smooth": (*INT, "0", "1048577"),
        },
    ),
    "imitate": (
        ["imitate", "{ws}/small.yaml", "--expert", "greedy", "--out", "{ws}/imitate-out", *IMITATE_SMALL],
        {
            "<scenario>": SCENARIO,
            "--expert": ("", "nope"),
            "--expert-data": (
                "{ws}/missing",
                "{ws}/file.txt",
                "{ws}/dir",
                "{ws}/fifo",
                "{ws}/zero",
                "{ws}/run",
            ),
            "--init": CHECKPOINT,
            "--model": CHOICE,
            "--seed": SEED,
            "--out": ("{ws}/file.txt", "{ws}/file.txt/x", "{ws}/run"),
            "--device": DEVICE,
            "--resume": ("", "nope"),
            "--set": (
                *SET,
                "bc_lr=nan",
                "lanes=0",
                "beta_start=2",
                "dagger_expert_fraction=-1",
                "bc_epochs=-1",
            ),
        },
    ),
    "pretrained list": (["pretrained", "list"], {}),
    "pretrained pack": (
        [
            "pretrained",
            "pack",
            "{ws}/run",
            "--name",
            "tiny",
            "--description",
            "a test",
            "--out",
            "{ws}/packed",
        ],
        {
            "<checkpoint>": CHECKPOINT,
            "--name": NAME,
            "--description": ("", "   "),
            "--manifest": ("{ws}/missing", "{ws}/file.txt", "{ws}/dir", "{ws}/fifo", "{ws}/zero"),
            "--out": ("{ws}/file.txt", "{ws}/file.txt/x", "{ws}/zero"),
        },
    ),
    "render": (
        ["render", "{ws}/store.zarr", "0/0", "--out", "{ws}/new.gif"],
        {
            "<store>": STORE,
            "<id>": EPISODE_ID,
            "--out": ("{ws}/x.avi", "{ws}/file.txt/x.gif", "{ws}/dir", "{ws}/noext"),
            "--cell": (*INT, "3", "65", "100000"),
            "--fps": POSITIVE,
        },
    ),
    "replay": (
        ["replay", "{ws}/store.zarr"],
        {"<store>": STORE, "<id>": EPISODE_ID, "--verify": FLAG},
    ),
    "run": (
        ["run", "{ws}/small.yaml", "--episodes", "1", "--policy", "random"],
        {
            "<scenario>": SCENARIO,
            "--policy": ("", "astar", *CHECKPOINT, "pretrained:nope"),
            "--guide": ("", *CHECKPOINT, "pretrained:nope"),
            "--episodes": (*INT, "0"),
            "--envs": (*INT, "0", "65537"),
            "--seed": SEED,
            "--render": ("{ws}/file.txt/x.gif",),
            "--record": STORE_OUT,
        },
    ),
    "scenario check": (["scenario", "check", "{ws}/small.yaml"], {"<scenario>": SCENARIO}),
    "scenario list": (["scenario", "list"], {}),
    "slurm submit": (
        ["slurm", "submit", "{ws}/small.yaml", "--dry-run", "--run-dir", "{ws}/slurm-run"],
        {
            "<scenario>": SCENARIO,
            "--seed": SEED,
            "--array": ("", "x", "0-3;rm", "0-1%0", "%1", "1-"),
            "--sweep": ("lr", "=1", "lr=", "lr=1,,2", "nope=1", "lr=nan", "seed=-1", "num_envs=0"),
            "--max-parallel": (*INT, "0", "10001"),
            **SLURM_COMMON,
            "--train-args": ("'unbalanced", "--set 'x"),
        },
    ),
    "slurm eval": (
        ["slurm", "eval", "{ws}/run", "--dry-run", "--run-dir", "{ws}/slurm-run"],
        {"<target>": CHECKPOINT, **SLURM_COMMON, "--eval-args": ("'unbalanced", "--set 'x")},
    ),
    "slurm status": (
        ["slurm", "status", "{ws}/run"],
        {"<run_dir>": ("{ws}/missing", "{ws}/file.txt", "{ws}/fifo")},
    ),
    "train": (
        ["train", "{ws}/small.yaml", *TRAIN_SMALL, "--out", "{ws}/train-out"],
        {
            "<scenario>": SCENARIO,
            "--model": CHOICE,
            "--steps": (*INT, "0"),
            "--seed": SEED,
            "--out": ("{ws}/file.txt", "{ws}/file.txt/x", "{ws}/run"),
            "--device": DEVICE,
            "--resume": ("{ws}/missing", "{ws}/file.txt", "{ws}/dir", "{ws}/fifo", "{ws}/run"),
            "--init": (*CHECKPOINT, "pretrained:nope"),
            "--set": SET,
            "--no-tensorboard": FLAG,
            "--wandb": ("", "a/b", "a#b", "x" * 129, "a\nb"),
        },
    ),
}
GLOBAL_OPTIONS = {"--version"}  # prints and exits 0 by design


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A small run, an episode store and hostile paths: a file, empty and full directories, a FIFO, a
    link to /dev/zero (only ever read), and position files that are not positions."""
    ws = tmp_path_factory.mktemp("hostile")
    (ws / "small.yaml").write_text(SMALL)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", str(ws / "small.yaml"), *TRAIN_SMALL, "--out", str(ws / "run")]) == 0
        record = ["run", str(ws / "small.yaml"), "--episodes", "2", "--policy", "random"]
        assert main([*record, "--record", str(ws / "store.zarr")]) == 0
    (ws / "file.txt").write_text("hello\n")
    (ws / "dir").mkdir()
    (ws / "full").mkdir()
    (ws / "full" / "notes.txt").write_text("mine\n")
    os.mkfifo(ws / "fifo")
    (ws / "zero").symlink_to("/dev/zero")
    np.save(ws / "cells.npy", np.array([[[0, 0], [2, 2]], [[0, 1], [2, 2]], [[1, 1], [2, 2]]]))
    np.save(ws / "nan.npy", np.full((3, 2, 2), np.nan))
    np.save(ws / "flat.npy", np.zeros(5))
    np.save(ws / "pickle.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return ws


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and modification time (nothing may change)."""
    return {
        str(path.relative_to(root)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


def argv_with(command: str, argument: str, value: str, ws: Path, argv: list[str] | None = None) -> list[str]:
    """The command's base argv (or `argv`) with one argument given the hostile value."""
    base, _ = HOSTILE[command]
    argv = [part.format(ws=ws) for part in base] if argv is None else list(argv)
    value = value.format(ws=ws)
    if argument.startswith("<"):  # a positional: the n-th word after the command words
        words = len(command.split()) - (1 if command.split()[-1] in ("new", "waypoints", "positions") else 0)
        positionals = [dest for dest in _positionals(command)]
        index = words + positionals.index(argument[1:-1])
        if index < len(argv) and not argv[index].startswith("-"):
            argv[index] = value
        else:
            argv.insert(index, value)
        return argv
    if value.startswith("=") and argument in _flags(command):
        return [*argv, f"{argument}{value}"]
    if argument in argv:
        argv[argv.index(argument) + 1] = value
        return argv
    return [*argv, f"{argument}={value}"]


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in HOSTILE[command][0][: len(command.split())]:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def _positionals(command: str) -> list[str]:
    return [a.dest for a in _subparser(command)._actions if not a.option_strings]


def _flags(command: str) -> set[str]:
    return {
        option
        for action in _subparser(command)._actions
        if isinstance(action, argparse._StoreTrueAction)
        for option in action.option_strings
    }


def _every_argument() -> Iterator[tuple[str, str]]:
    """(command, argument) for every argument of every leaf subcommand of the real parser."""

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> Iterator[tuple[str, str]]:
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subcommands:
            for name, child in subcommands[0].choices.items():
                yield from walk(child, [*words, name])
            return
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            names = action.option_strings or [f"<{action.dest}>"]
            yield " ".join(words), names[-1] if action.option_strings else names[0]

    yield from walk(build_parser(), [])


def test_every_argument_of_every_subcommand_has_hostile_values():
    covered = {(command.split(" new")[0].split(" waypoints")[0].split(" positions")[0], argument)
               for command, (_, values) in HOSTILE.items() for argument in values}  # fmt: skip
    missing = [pair for pair in _every_argument() if pair not in covered and pair[1] not in GLOBAL_OPTIONS]
    assert missing == []


def run_hostile(argv: list[str], ws: Path) -> tuple[int, str, str]:
    before = snapshot(ws)
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(ws)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                status = exit_.code
    finally:
        os.chdir(previous)
    after = snapshot(ws)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert changed == [], f"{argv}: wrote {changed}"
    return status, out.getvalue(), err.getvalue()


def assert_one_line_refusal(argv: list[str], ws: Path) -> None:
    status, _, err = run_hostile(argv, ws)
    lines = [line for line in err.splitlines() if not line.startswith("gridswarm.hpc: running as a single")]
    where = " ".join(argv)
    assert status == 2, f"{where}: exit {status}, stderr {err[-2000:]!r}"
    assert len(lines) == 1 and lines[0].startswith("gridswarm"), f"{where}: stderr {err[-2000:]!r}"
    assert "Traceback" not in err


CASES = [(command, argument, value) for command, (_, values) in HOSTILE.items()
         for argument, pool in values.items() for value in pool]  # fmt: skip


FIRST_OF_EACH = list({(command, argument): (command, argument, value) for command, argument, value in
                      reversed(CASES)}.values())  # fmt: skip
"""One case per argument (its first hostile value): every argument is tried whatever hypothesis draws."""


@pytest.mark.parametrize(("command", "argument", "value"), FIRST_OF_EACH, ids=lambda part: str(part)[:40])
def test_each_argument_refuses_a_hostile_value_in_one_line(workspace, command, argument, value):
    assert_one_line_refusal(argv_with(command, argument, value, workspace), workspace)


@pytest.mark.slow
@pytest.mark.parametrize(("command", "argument", "value"), CASES, ids=lambda part: str(part)[:40])
def test_every_hostile_value_is_refused_in_one_line(workspace, command, argument, value):
    assert_one_line_refusal(argv_with(command, argument, value, workspace), workspace)


@st.composite
def hostile_invocations(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A command and one to three of its arguments, each given a hostile value."""
    command = draw(st.sampled_from([name for name, (_, values) in HOSTILE.items() if values]))
    pools = HOSTILE[command][1]
    arguments = draw(st.lists(st.sampled_from(sorted(pools)), min_size=1, max_size=3, unique=True))
    return command, [(argument, draw(st.sampled_from(pools[argument]))) for argument in arguments]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invocation=hostile_invocations())
def test_hostile_values_together_are_refused_in_one_line(workspace, invocation):
    command, changes = invocation
    argv = None
    for argument, value in changes:
        argv = argv_with(command, argument, value, workspace, argv)
    assert_one_line_refusal(argv, workspace)


def test_resuming_a_run_with_another_scenario_is_refused(workspace, capsys):
    shutil.copy(workspace / "small.yaml", workspace / "other.yaml")
    try:
        status = main(["train", str(workspace / "other.yaml"), "--resume", str(workspace / "run")])
    finally:
        (workspace / "other.yaml").unlink()
    err = capsys.readouterr().err
    assert status == 2 and "the run trains on" in err, err
