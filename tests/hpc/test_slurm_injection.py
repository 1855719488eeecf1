"""Rendered sbatch scripts never execute what a user typed: every value reaches the job's command as one
intact argument, and a value that cannot be carried safely (control characters; in #SBATCH lines anything
sbatch would read differently) is refused with one line before any script exists.

The scripts are run under bash with stub `srun`, `mpiexec` and `python` executables that record their argv,
so a value that breaks out of its quoting would create a file or change an argument."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridswarm.cli import main
from scenarios.loader import LIBRARY

PAYLOADS = (
    "$(touch PWNED)",
    "`touch PWNED`",
    "x;touch PWNED",
    "x' ; touch PWNED ; '",
    'x" ; touch PWNED ; "',
    "x && touch PWNED",
    "${IFS}touch${IFS}PWNED",
    "x|touch PWNED",
    "x\\",
    "-x --out /elsewhere",
    "a  b c",
    "ü*?[x]",
)
STUB = """#!/bin/bash
# records its argv, one NUL-terminated argument each, and succeeds
printf '%s\\0' "$@" > "$STUB_LOG/$(basename "$0").$$"
"""


def install_stubs(root: Path) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name in ("srun", "mpiexec", "python", "sbatch", "module"):
        stub = bin_dir / name
        stub.write_text(STUB)
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    (root / "site.yaml").write_text(f"python: {bin_dir / 'python'}\n")
    return bin_dir


def run_script(script: str, root: Path, bin_dir: Path) -> list[list[str]]:
    """Run a rendered script as SLURM would (array task 1) in `root`; the argv of every stub call."""
    log = root / "stub-log"
    log.mkdir(exist_ok=True)
    environment = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "SLURM_ARRAY_TASK_ID": "1",
        "SLURM_NTASKS": "2",
        "HOME": str(root),
    }
    result = subprocess.run(
        ["bash", "-c", script], cwd=root, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    calls = [entry.read_bytes().decode().split("\0")[:-1] for entry in sorted(log.iterdir())]
    shutil.rmtree(log)
    return calls


def render(capsys, *arguments: str) -> tuple[int, str, str]:
    status = main(["slurm", *arguments, "--dry-run"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_refused(status: int, out: str, err: str) -> None:
    assert status == 2 and out == ""
    assert err.startswith("gridswarm") and err.count("\n") == 1, err


def nothing_executed(root: Path) -> bool:
    return not any(path.name == "PWNED" for path in root.rglob("*"))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path, install_stubs(tmp_path)


def option_value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def render_and_run(capsys, root: Path, bin_dir: Path, *argv: str) -> list[str]:
    """Render `gridswarm slurm argv --dry-run`, run the script; the argv of its one launched command."""
    status, script, err = render(capsys, *argv)
    assert status == 0, err
    (call,) = run_script(script, root, bin_dir)
    return call


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_values_arrive_as_one_intact_argument(capsys, workspace, payload):
    from marl.run_dir import save_run_checkpoint

    root, bin_dir = workspace
    scenario = root / f"sc{payload.replace('/', '_')}.yaml"
    shutil.copy(LIBRARY / "bottleneck.yaml", scenario)
    common = ["--run-dir", str(root / "run"), "--site", str(root / "site.yaml")]
    # train: the scenario file's path and --train-args carry the payload
    train_args = f"--train-args=--set {shlex.quote('name=' + payload)}"
    call = render_and_run(capsys, root, bin_dir, "submit", str(scenario), *common, train_args)
    assert call[call.index("train") + 1] == str(scenario)
    assert option_value(call, "--set") == f"name={payload}"
    assert option_value(call, "--out") == str(root / "run")
    # sweep: a swept value carries it, launched by mpiexec
    # (best_metric: a free-text key; preset and model are checked against their names before submitting)
    sweep = ["--launcher", "mpiexec", "--sweep", f"best_metric=CSR,{payload.replace(',', ';')}"]
    call = render_and_run(capsys, root, bin_dir, "submit", "bottleneck", *common, *sweep)
    assert call[:4] == ["-bootstrap", "slurm", "-n", "2"]
    assert option_value(call, "--set") == f"best_metric={payload.replace(',', ';')}"
    assert option_value(call, "--out") == f"{root / 'run'}/task-1"
    # eval: the target's path and --eval-args carry it
    target = root / f"t{payload.replace('/', '_')}"
    save_run_checkpoint(target, 1, {"policy": {}}, {}, best=False)
    eval_args = f"--eval-args=--scenario {shlex.quote(payload)}"
    call = render_and_run(capsys, root, bin_dir, "eval", str(target), *common, eval_args)
    assert call[call.index("eval") + 1] == str(target)
    assert option_value(call, "--scenario") == payload
    assert nothing_executed(root)


def test_an_array_run_directory_is_quoted_in_the_task_arguments(capsys, workspace):
    root, bin_dir = workspace
    run_dir = root / "runs" / "a,b=c:d@e+f~g"
    status, script, err = render(
        capsys, "submit", "bottleneck", "--array", "0-1", "--run-dir", str(run_dir),
        "--site", str(root / "site.yaml"),
    )  # fmt: skip
    assert status == 0, err
    (call,) = run_script(script, root, bin_dir)
    assert option_value(call, "--out") == f"{run_dir}/task-1"
    assert option_value(call, "--seed") == "1"


@pytest.mark.parametrize(
    "run_dir",
    ["r$(touch PWNED)", "r\n#SBATCH --qos=high", "r\ntouch PWNED", "with space", "r%j", "r#x", "r'q", 'r"q'],
)
@pytest.mark.parametrize("command", ["submit-train", "submit-array", "submit-sweep", "eval"])
def test_a_run_directory_that_sbatch_would_misread_is_refused(capsys, workspace, run_dir, command):
    from marl.run_dir import save_run_checkpoint

    root, _ = workspace
    save_run_checkpoint(root / "target", 1, {"policy": {}}, {}, best=False)  # what slurm eval needs
    kind, _, mode = command.partition("-")
    target = ["bottleneck"] if kind == "submit" else [str(root / "target")]
    extra = {"array": ["--array", "0-1"], "sweep": ["--sweep", "seed=0,1"]}.get(mode, [])
    status, out, err = render(capsys, kind, *target, "--run-dir", run_dir, *extra)
    assert_refused(status, out, err)
    assert "control character" in err or "expected a path of letters" in err, err
    assert sorted(path.name for path in root.iterdir()) == ["bin", "site.yaml", "target"]


def test_a_hostile_scenario_file_name_gives_a_safe_default_run_directory(capsys, workspace):
    root, bin_dir = workspace
    scenario = root / "sc$(touch PWNED)\n#SBATCH --qos=x.yaml"
    shutil.copy(LIBRARY / "bottleneck.yaml", scenario)
    status, script, err = render(capsys, "submit", str(scenario), "--site", str(root / "site.yaml"))
    assert status == 2 and "control character" in err and err.count("\n") == 1
    scenario = scenario.rename(root / "sc$(touch PWNED).yaml")
    status, script, err = render(capsys, "submit", str(scenario), "--site", str(root / "site.yaml"))
    assert status == 0, err
    (call,) = run_script(script, root, bin_dir)
    out = Path(option_value(call, "--out"))
    assert out.parent == root / "runs" and out.name.startswith("sc__touch_PWNED_-")
    assert call[call.index("train") + 1] == str(scenario)
    assert nothing_executed(root)


@pytest.mark.parametrize(
    "arguments",
    [
        ["--max-parallel", "-1", "--sweep", "seed=0,1"],
        ["--max-parallel", "0", "--sweep", "seed=0,1"],
        ["--job-name", "x\n"],
        ["--time", "10\n"],
        ["--partition", "gpu\n"],
        ["--mpi", "pmi2\n"],
        ["--train-args=--set\nname=x"],
        ["--sweep", "lr=1e-4,\x1b[2J"],
    ],
)
def test_values_with_control_characters_or_out_of_range_never_reach_a_script(capsys, workspace, arguments):
    assert_refused(*render(capsys, "submit", "bottleneck", *arguments))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(codec="utf-8", exclude_characters="\0,"), min_size=1, max_size=30))
def test_any_value_either_arrives_intact_or_is_refused(capsys, workspace, value):
    root, bin_dir = workspace
    site = str(root / "site.yaml")
    run_dir = root / "run"
    status, script, err = render(
        capsys,
        "submit",
        "bottleneck",
        "--run-dir",
        str(run_dir),
        "--site",
        site,
        "--sweep",
        f"best_metric=a,{value}",
    )
    if status != 0:
        assert_refused(status, script, err)
        assert any(ord(character) < 32 or 127 <= ord(character) < 160 for character in value)
        return
    (call,) = run_script(script, root, bin_dir)
    assert option_value(call, "--set") == f"best_metric={value}"
    assert nothing_executed(root)


@pytest.mark.parametrize(
    "line",
    [
        'job_name: "x\\n"',
        'time: "10\\n"',
        'account: "lab\\n"',
        'mem: "4G\\n"',
        'mpi: "pmi2\\n"',
        'modules: ["gcc\\n"]',
        'extra_directives: ["--qos=high\\u2028--x"]',
        'setup: ["source env\\u001b[2J"]',
        'python: "/usr/bin/python\\r"',
    ],
)
def test_site_file_values_ending_in_a_line_break_or_holding_control_characters_are_refused(
    capsys, workspace, line
):
    root, _ = workspace
    (root / "site.yaml").write_text(line + "\n")
    assert_refused(*render(capsys, "submit", "bottleneck", "--site", str(root / "site.yaml")))
