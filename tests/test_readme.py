"""The README is a contract: its commands work verbatim on a fresh copy of the repository.

`test_every_readme_command_is_valid_as_written` (fast) takes every `gridswarm` and
`benchmarks/lifelong_table.py` command of the README's first line and command tour exactly as written and
parses it with the real argument parser; where a command names a scenario it loads it, a site file must exist,
and a `train` line's `--set` values are resolved into a TrainConfig over the scenario's own, as written and as
the slow test shortens them. It runs none of them.

`test_the_readme_runs_on_a_fresh_copy` (slow) copies the repository (the files a commit of this working tree
holds) to a scratch directory and runs the README's first command there (it creates `.venv` and installs with
pip as written), then every line of the command tour and the Python snippet, in order, in that virtual
environment. The lines that install, list, check, run the greedy baseline, benchmark (`bench --quick`),
resume, inspect, render or export episodes and policies, submit with `--dry-run` or show status run exactly as
written, and so does the Python snippet. The lines whose cost is a training length or an episode count run
with the arguments of `SHORTER` appended (argparse lets a later option replace an earlier value, so the line's
own arguments stay in place and are still parsed): a training is one update of 16 environments (one per
variant of the bottleneck) with a final evaluation of one episode per variant, an `eval` plays one episode per
variant, and `lifelong_table.py` one episode with 8 agents. Those lines are not run at their written length
here (that takes hours of CPU; docs/results.md reports runs of the trainings), and the `eval` line on
bottleneck-test (`NOT_RUN`) is only parsed, not run. A server line (`tensorboard`, `SERVERS`) runs for a
minute and must be serving when it is stopped; the `--wandb` line, whose extra cannot share this environment
(`NEEDS_ANOTHER_VENV`), must stop with one line naming that extra's install. A line fails the test by a
non-zero exit, a traceback in its output, a `pip check` conflict after it installs something, or a file it
leaves outside the paths git ignores. Before the tour installs its extras, a feature that needs pogema must
stop with one line naming a `pip install`; that command, run as printed, must leave `pip check` clean. The
README's test command (its second line) is what .ci/run runs; here it is only checked to be the same install.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import scenarios
from gridswarm.cli import build_parser
from marl.config import TrainConfig, parse_assignments, resolve_config
from tests.benchmarks.helpers import benchmark_script

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHORTER: tuple[tuple[str, str], ...] = (
    (r"\bgridswarm train\b(?!.*--resume)", "--steps 1 --set num_envs=16 --set eval_episodes=1"),
    (r"\bgridswarm train --resume\b.*--steps\b", f"--steps {2 * 16 * 2 * 64}"),
    (r"\bgridswarm eval\b", "--episodes 1"),
    (r"\bbenchmarks/lifelong_table\.py\b", "--episodes 1 --agents 8"),
)
"""(pattern, arguments appended to a command matching it) for the slow test: a `gridswarm train` that
starts a run (not `--resume`, which continues the run's own length) is one update of 16 environments (one
per variant of the bottleneck) whose final evaluation plays one episode per variant; a `--resume` that
extends a run with `--steps` extends that one-update bottleneck run (16 envs x 2 agents x 64 steps) by one
update; evaluations play one episode per variant."""
NOT_RUN = (r"\bgridswarm eval\b.*--scenario bottleneck-test\b",)
"""Tour lines the slow test does not run (the fast test parses them as written): `eval` on bottleneck-test
plays its 58 variants one after another, about 8 CPU-minutes even at one episode each (2-core VM at load
10, 2026-12-07), more than all the other lines together; the `--in-pogema` eval line runs the command."""
SERVERS = (r"^tensorboard\b",)
"""Tour lines that start a server: the slow test runs each for `SERVE_S` seconds and checks that it is still
serving (it printed its http:// address and did not exit), then stops it."""
SERVE_S = 60
NEEDS_ANOTHER_VENV = {r"--wandb\b": "wandb"}
"""Tour lines whose extra cannot share the tour's environment (wandb needs pydantic 2, pogema 1.4.0 pins
pydantic 1): there the line must stop with one line naming the `pip install` of that extra."""
LINE_TIMEOUT_S = 1800
TRACEBACK = "Traceback (most recent call last)"


def code_blocks(markdown: str, language: str) -> list[str]:
    """The bodies of the markdown's fenced code blocks of `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def command_lines(block: str) -> list[str]:
    """The non-empty lines of a shell block (each README line is one complete command)."""
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def shortened(line: str) -> str:
    """`line` with the arguments of `SHORTER` appended to each `&&`-joined command that matches, before any
    trailing comment."""
    comment = re.search(r"\s+#\s.*$", line)
    command = line[: comment.start()] if comment else line
    parts = []
    for part in command.split(" && "):
        for pattern, arguments in SHORTER:
            if re.search(pattern, part):
                part = f"{part.rstrip()} {arguments}"
        parts.append(part)
    return " && ".join(parts) + (comment.group(0) if comment else "")


def test_shortened_appends_only_to_long_commands():
    train = "--steps 1 --set num_envs=16 --set eval_episodes=1"
    assert (
        shortened("gridswarm train bottleneck --out runs/b0")
        == f"gridswarm train bottleneck --out runs/b0 {train}"
    )
    assert shortened("gridswarm train --resume runs/b0 --steps 8000000") == (
        "gridswarm train --resume runs/b0 --steps 8000000 --steps 4096"
    )
    assert (
        shortened("gridswarm train --resume runs/b0   # continue")
        == "gridswarm train --resume runs/b0   # continue"
    )
    assert shortened("mpiexec -n 4 gridswarm train random --out runs/r4   # MPI") == (
        f"mpiexec -n 4 gridswarm train random --out runs/r4 {train}   # MPI"
    )
    assert shortened("a && . .venv/bin/activate && gridswarm train bottleneck") == (
        f"a && . .venv/bin/activate && gridswarm train bottleneck {train}"
    )
    assert (
        shortened("gridswarm eval runs/b0 --episodes 10")
        == "gridswarm eval runs/b0 --episodes 10 --episodes 1"
    )
    assert shortened("python benchmarks/lifelong_table.py runs/lm   # x") == (
        "python benchmarks/lifelong_table.py runs/lm --episodes 1 --agents 8   # x"
    )
    assert (
        shortened("gridswarm episodes ls runs/b0/episodes.zarr")
        == "gridswarm episodes ls runs/b0/episodes.zarr"
    )


def readme_commands() -> list[list[str]]:
    """The argv of every command of the README's first line and command tour, as written, without comments
    and without `mpiexec -n R` in front (each of its ranks runs the command)."""
    setup, tour = code_blocks(README.read_text(), "bash")[:2]
    commands = []
    for line in command_lines(setup)[:1] + command_lines(tour):
        for part in line.split(" && "):
            argv = shlex.split(part, comments=True)
            commands.append(argv[3:] if argv[:2] == ["mpiexec", "-n"] else argv)
    return commands


def parsed_as_written(parse: Callable[[list[str]], argparse.Namespace], argv: list[str], command: str):
    try:
        return parse(argv)
    except SystemExit as stop:  # argparse's way of refusing
        raise AssertionError(f"README command does not parse (exit {stop.code}): {command}") from None


def train_config(args: argparse.Namespace, scenario: scenarios.Scenario) -> TrainConfig:
    """The TrainConfig that `gridswarm train` resolves from these arguments for a new run of `scenario`."""
    flags = {"model": args.model, "total_agent_steps": args.steps, "seed": args.seed, "device": args.device}
    overrides = {**parse_assignments(args.assignments), **{k: v for k, v in flags.items() if v is not None}}
    return resolve_config(scenario.train, overrides, scenario.name)


def test_every_readme_command_is_valid_as_written(monkeypatch):
    monkeypatch.chdir(REPO)  # the README's paths (scenarios/library/..., slurm/...) are the checkout's
    parser = build_parser()
    parsed = 0
    for argv in readme_commands():
        command = shlex.join(argv)
        if argv[0] in ("python3", ".", "pip") or argv[:2] == ["python", "-m"]:
            continue  # the venv and its installs: the slow test runs them
        if argv[0] == "python":
            assert argv[1] == "benchmarks/lifelong_table.py", (
                f"a README script the test does not know: {command}"
            )
            with benchmark_script("lifelong_table") as table:
                args = parsed_as_written(table.parse_args, argv[2:], command)
            assert args.episodes > 0 and all(count > 0 for count in args.agents), command
            parsed += 1
            continue
        if argv[0] == "tensorboard":
            assert argv[1:2] == ["--logdir"] and len(argv) == 3, command
            parsed += 1
            continue
        assert argv[0] == "gridswarm", f"a README command the test does not know: {command}"
        args = parsed_as_written(parser.parse_args, argv[1:], command)
        site = getattr(args, "site", None)
        assert site is None or site.is_file(), f"{command}: the site file {site} is not in the repository"
        name = getattr(args, "scenario", None)
        if args.command == "train" and name is not None:
            scenario = scenarios.load(name)
            train_config(args, scenario)
            short = train_config(parser.parse_args(shlex.split(shortened(command))[1:]), scenario)
            variants = len(scenarios.expand_variants(scenario))
            assert short.num_envs >= variants, f"SHORTER gives {name!r} fewer environments than variants"
        elif name is not None:
            scenarios.load(name)
        parsed += 1
    assert parsed >= 15, "the README's command tour was not found"


def fresh_shell_environment() -> dict[str, str]:
    """This process's environment as a new login shell has it: no virtual environment active."""
    env = dict(os.environ)
    active = env.pop("VIRTUAL_ENV", None)
    paths = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in paths if not active or not p.startswith(active))
    env.pop("PYTHONPATH", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def copy_of_repository(target: Path) -> Path:
    """The files a commit of the working tree would hold (tracked and untracked, not ignored), copied to
    `target` and committed there, so that `git status` later shows what the commands left behind."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-c", "user.name=readme-test", "-c", "user.email=readme-test@localhost"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run([*git, *command], cwd=target, check=True, capture_output=True)
    return target


class Shell:
    """Runs README lines in the copy, in a fresh shell or with the README's `.venv` active."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = fresh_shell_environment()
        self.log: list[str] = []

    def run(self, line: str, activate: bool = True) -> subprocess.CompletedProcess[str]:
        script = (". .venv/bin/activate && " if activate else "") + line
        started = time.monotonic()
        process = subprocess.Popen(
            ["bash", "-c", script], cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=LINE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the line's every process (mpiexec's ranks too)
            process.communicate()
            raise AssertionError(f"README line ran over {LINE_TIMEOUT_S} s: {line}") from None
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        self.log.append(f"$ {line}\n[exit {done.returncode}]\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        print(f"{time.monotonic() - started:7.1f} s  {line}", flush=True)  # shown with -s or on failure
        return done

    def check(self, line: str, activate: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `line`; it must exit 0 and print no traceback."""
        done = self.run(line, activate)
        output = done.stdout + done.stderr
        assert done.returncode == 0 and TRACEBACK not in output, self.failure(line)
        return done

    def serve(self, line: str) -> None:
        """Start `line` (a server), check after SERVE_S seconds that it serves, then stop it."""
        process = subprocess.Popen(
            ["bash", "-c", ". .venv/bin/activate && " + line], cwd=self.root, env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            output, _ = process.communicate(timeout=SERVE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            output, _ = process.communicate()
        else:
            raise AssertionError(
                f"README server line exited ({process.returncode}): {line}\n{output[-3000:]}"
            )
        self.log.append(f"$ {line}\n[served {SERVE_S} s]\n{output[-3000:]}")
        assert "http://" in output and TRACEBACK not in output, self.failure(line)

    def pip_check(self, after: str) -> None:
        done = self.run("pip check")
        assert done.returncode == 0, f"pip check after `{after}`:\n{done.stdout}{done.stderr}"

    def failure(self, line: str) -> str:
        return f"README line failed: {line}\n\n" + "\n".join(self.log[-3:])


@pytest.mark.slow
def test_the_readme_runs_on_a_fresh_copy(tmp_path):
    readme = README.read_text()
    setup, tour = code_blocks(readme, "bash")[:2]
    (snippet,) = code_blocks(readme, "python")
    first_command, test_command = command_lines(setup)[:2]
    ci_install = re.search(r'pip install [^\n&]*"\.\[[^\]]*\]"', test_command)
    assert (
        ci_install
        and ci_install.group(0).replace("pip install ", "pip install -q ")
        in (REPO / ".ci" / "run").read_text()
    ), "the README's test command and .ci/run install different things"

    shell = Shell(copy_of_repository(tmp_path / "clone"))
    started = time.monotonic()
    shell.check(shortened(first_command), activate=False)
    shell.pip_check(first_command)

    # Before the tour's extras: a feature needing pogema names the install, which leaves pip check clean.
    done = shell.run("gridswarm bench --against-pogema --quick")
    (message,) = done.stderr.splitlines()
    assert done.returncode == 2 and TRACEBACK not in done.stdout, shell.failure("bench without pogema")
    install = message.partition("needs the optional package pogema: ")[2]
    assert install.startswith("pip install "), message
    shell.check(install)
    shell.pip_check(install)
    shell.check('python -c "import pogema"')

    for line in command_lines(tour):
        if any(re.search(pattern, line) for pattern in NOT_RUN):
            print(f"{'-':>7} s  {line}   (not run: see NOT_RUN)", flush=True)
            continue
        if any(re.search(pattern, line) for pattern in SERVERS):
            shell.serve(line)
            continue
        extra = next((name for pattern, name in NEEDS_ANOTHER_VENV.items() if re.search(pattern, line)), None)
        if extra is not None:
            done = shell.run(shortened(line))
            error = done.stderr.strip().splitlines()[-1:]  # before it: the launcher note of gridswarm.hpc
            assert done.returncode == 2 and TRACEBACK not in done.stdout + done.stderr, shell.failure(line)
            assert error and f'pip install -e ".[{extra}]"' in error[0], shell.failure(line)
            continue
        shell.check(shortened(line))
        if line.startswith("pip install"):
            shell.pip_check(line)

    (shell.root / "readme_snippet.py").write_text(snippet)
    shell.check("python readme_snippet.py")
    (shell.root / "readme_snippet.py").unlink()
    shell.pip_check("the whole README")

    left = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=shell.root,
        capture_output=True,
        text=True,
    ).stdout
    assert left == "", f"the README's commands left files that git does not ignore:\n{left}"
    print(f"{time.monotonic() - started:7.1f} s  the whole README", flush=True)
