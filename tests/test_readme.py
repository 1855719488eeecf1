"""The README is a contract: its commands work verbatim on a fresh copy of the repository.

`test_the_readme_works_verbatim` copies the repository (the files a commit of this working tree holds) to a
scratch directory, runs the README's first command there exactly as written (it creates `.venv`), then every
line of the command tour and the Python snippet, in order, in that virtual environment. The only change is
an added `--steps` on each `gridswarm train` that starts a run, so that training is one update long. A line
fails the test by a non-zero exit, a traceback in its output, a `pip check` conflict after it installs
something, or a file it leaves outside the paths git ignores. Before the tour installs its extras, a feature
that needs pogema must stop with one line naming a `pip install`; that command, run as printed, must leave
`pip check` clean. The README's test command (its second line) is what .ci/run runs; here it is only
checked to be the same install.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TRAINING_STEPS = "1"
"""Agent-steps of each training in the tour: every run rounds up to one update."""
LINE_TIMEOUT_S = 1800
TRACEBACK = "Traceback (most recent call last)"


def code_blocks(markdown: str, language: str) -> list[str]:
    """The bodies of the markdown's fenced code blocks of `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def command_lines(block: str) -> list[str]:
    """The non-empty lines of a shell block (each README line is one complete command)."""
    return [line for line in block.splitlines() if line.strip()]


def shortened(line: str) -> str:
    """`line` with `--steps` added to every `gridswarm train` that starts a run (not to `--resume`, which
    continues the run's own length), before any trailing comment."""
    comment = re.search(r"\s+#\s.*$", line)
    command = line[: comment.start()] if comment else line
    parts = []
    for part in command.split(" && "):
        if re.search(r"\bgridswarm train\b", part) and "--resume" not in part:
            part = f"{part.rstrip()} --steps {TRAINING_STEPS}"
        parts.append(part)
    return " && ".join(parts) + (comment.group(0) if comment else "")


def test_shortened_adds_steps_only_to_starting_runs():
    assert (
        shortened("gridswarm train bottleneck --out runs/b0")
        == "gridswarm train bottleneck --out runs/b0 --steps 1"
    )
    assert (
        shortened("gridswarm train --resume runs/b0   # continue")
        == "gridswarm train --resume runs/b0   # continue"
    )
    assert shortened("mpiexec -n 4 gridswarm train random --out runs/r4   # MPI") == (
        "mpiexec -n 4 gridswarm train random --out runs/r4 --steps 1   # MPI"
    )
    assert shortened("a && . .venv/bin/activate && gridswarm train bottleneck") == (
        "a && . .venv/bin/activate && gridswarm train bottleneck --steps 1"
    )
    assert shortened("gridswarm eval runs/b0 --episodes 10") == "gridswarm eval runs/b0 --episodes 10"


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

    def pip_check(self, after: str) -> None:
        done = self.run("pip check")
        assert done.returncode == 0, f"pip check after `{after}`:\n{done.stdout}{done.stderr}"

    def failure(self, line: str) -> str:
        return f"README line failed: {line}\n\n" + "\n".join(self.log[-3:])


@pytest.mark.slow
def test_the_readme_works_verbatim(tmp_path):
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
