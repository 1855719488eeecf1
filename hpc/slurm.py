"""Rendering, submission and status of the sbatch scripts in slurm/.

Nothing cluster-specific lives here: partition, account, resources, modules and environment activation
come from `SlurmSettings`, filled from a site file (YAML, keys = the field names) and then the command
line. Templates use `{{name}}` placeholders (bash keeps `$`); a placeholder without a value, or a value
without a placeholder, is an error, and every value is validated before it reaches a script.

What a user typed never runs as shell code: every argument of the job's command is `shlex.quote`d, and no
value may hold a control character (a newline would end its line and start another). `#SBATCH` lines are
read by sbatch, not by bash, which splits them at spaces, reads quotes and backslashes, stops at `#` and
expands `%j`-style patterns in file names: a path there (the log directory) must be plain characters.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import shlex
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coercion import CoercionError, coerce, conforms, field_hints
from fsio import atomic_write_text, control_character, read_text_bounded
from hpc.errors import HpcError


def _template_dir() -> Path:
    """slurm/ of the source checkout, else the copy a wheel installs under <prefix>/share/gridswarm/."""
    checkout = Path(__file__).resolve().parent.parent / "slurm"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "gridswarm" / "slurm"


TEMPLATE_DIR = _template_dir()
JOBS_FILE = "jobs.jsonl"
MAX_SITE_FILE_BYTES = 1 << 20

# Patterns are used with fullmatch: `$` would also accept a value that ends in a newline.
NAME = re.compile(r"[A-Za-z0-9_.+-]{1,128}")
NAME_LIST = re.compile(r"(?=.{1,1024}$)[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*", re.DOTALL)
TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}")  # minutes, m:s, h:m:s, d-h, d-h:m, d-h:m:s (sbatch --time)
MEMORY = re.compile(r"\d+[KMGT]?")
ARRAY = re.compile(r"\d+(-\d+(:\d+)?)?(,\d+(-\d+(:\d+)?)?)*(%[1-9]\d*)?")
SBATCH_PATH = re.compile(r"[A-Za-z0-9_./+,:@=~-]+")
"""What a path in an #SBATCH line may hold: nothing sbatch splits, unquotes, cuts as a comment or expands."""


@dataclass(frozen=True)
class SlurmSettings:
    """Resources and site set-up of a job; every field can come from a site file or the command line."""

    job_name: str = "gridswarm"
    nodes: int = 1
    ntasks_per_node: int = 1
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    mem: str | None = None
    launcher: str = "srun"
    """How the job starts its MPI ranks: `srun` (`srun --mpi=<mpi>`, the scheduler's PMI), or `mpiexec`
    (MPICH's Hydra inside the allocation: `mpiexec -bootstrap slurm`, srun only starts its proxies and
    Hydra does PMI itself; for an MPICH whose PMI does not match the site's srun plugins)."""
    mpi: str = "pmi2"
    """`srun --mpi=` plugin: pmi2 for MPICH (the mpich wheel), pmix for Open MPI (launcher srun)."""
    signal_seconds: int = 90
    """Seconds before the time limit at which the job is asked to checkpoint (SLURM may be 60 s early)."""
    modules: tuple[str, ...] = ()
    """Environment modules loaded before anything else (`module load <name>`)."""
    setup: tuple[str, ...] = ()
    """Shell lines run before the job's command, e.g. `source ~/venvs/gridswarm/bin/activate`."""
    extra_directives: tuple[str, ...] = ()
    """Further sbatch options, each starting with `--` (e.g. `--constraint=a100`)."""
    python: str = sys.executable
    """The interpreter that runs `-m gridswarm.cli` on the compute nodes."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _validate(field.name, getattr(self, field.name)))


NAME_PATH = re.compile(r"[A-Za-z0-9_.+/-]{1,1024}")
LAUNCHERS = ("srun", "mpiexec")

# What each setting's value (already of its field's type) must satisfy, and how the error says it.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "job_name": (lambda value: bool(NAME.fullmatch(value)), "letters, digits and _.+-"),
    "nodes": (lambda value: 1 <= value <= 100_000, "an integer in [1, 100000]"),
    "ntasks_per_node": (lambda value: 1 <= value <= 10_000, "an integer in [1, 10000]"),
    "cpus_per_task": (lambda value: 1 <= value <= 10_000, "an integer in [1, 10000]"),
    "gpus_per_node": (lambda value: 0 <= value <= 1024, "an integer in [0, 1024]"),
    "time": (lambda value: bool(TIME.fullmatch(value)), "minutes, HH:MM:SS or D-HH:MM:SS"),
    "partition": (lambda value: value is None or bool(NAME_LIST.fullmatch(value)), "a name"),
    "account": (lambda value: value is None or bool(NAME.fullmatch(value)), "a name"),
    "mem": (lambda value: value is None or bool(MEMORY.fullmatch(value)), "e.g. 16G or 4000M"),
    "launcher": (lambda value: value in LAUNCHERS, f"one of {', '.join(LAUNCHERS)}"),
    "mpi": (lambda value: bool(NAME.fullmatch(value)), "an srun --mpi plugin such as pmi2 or pmix"),
    "signal_seconds": (lambda value: 0 <= value <= 65535, "seconds in 0..65535"),
    "modules": (lambda value: all(NAME_PATH.fullmatch(item) for item in value), "module names"),
    "setup": (lambda value: all(map(_printable, value)), "a list of single shell lines"),
    "extra_directives": (
        lambda value: all(_printable(item) and item.startswith("--") for item in value),
        "a list of sbatch options starting with --",
    ),
    "python": (lambda value: _printable(value) and value != "", "a path to python"),
}


def _validate(key: str, value: Any) -> Any:
    """`value` as setting `key`'s type (`coercion.coerce`, strict: a list becomes a tuple), checked
    against its rule; HpcError naming the key, the value and what was expected."""
    valid, expected = _RULES[key]
    try:
        typed = coerce(value, field_hints(SlurmSettings)[key])
        ok = valid(typed)
    except CoercionError:
        ok = False
    if not ok:
        raise HpcError(f"slurm setting {key}={value!r}: expected {expected}") from None
    return typed


def _printable(value: str) -> bool:
    return control_character(value) is None


def sbatch_path(path: str | os.PathLike[str], what: str) -> str:
    """`path` as text for an #SBATCH line; HpcError if sbatch would read it differently."""
    text = os.fspath(path)
    if not SBATCH_PATH.fullmatch(text):
        raise HpcError(
            f"{what} {text!r}: expected a path of letters, digits and _ . / + , : @ = ~ - "
            "(sbatch reads it in an #SBATCH line, where spaces, quotes, #, % and control characters "
            "change its meaning)"
        )
    return text


SETTING_NAMES = tuple(field.name for field in dataclasses.fields(SlurmSettings))


def load_site_file(path: str | Path) -> dict[str, Any]:
    """Read a site file: a YAML mapping from setting names to values. Errors name the file, line and key."""
    path = Path(path)
    try:
        text = read_text_bounded(path, MAX_SITE_FILE_BYTES)
        root = yaml.compose(text)
    except OSError as error:
        raise HpcError(f"site file {path}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise HpcError(
            f"site file {path}{where}: not valid YAML ({getattr(error, 'problem', error)})"
        ) from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise HpcError(f"site file {path}: expected a mapping of setting names to values")
    values = yaml.safe_load(text)
    settings: dict[str, Any] = {}
    for key_node, _ in root.value:
        key = key_node.value
        if key not in SETTING_NAMES:
            close = difflib.get_close_matches(str(key), SETTING_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(SETTING_NAMES)}"
            raise HpcError(f"site file {path} line {key_node.start_mark.line + 1}: unknown key {key!r}{hint}")
        try:
            settings[key] = _validate(key, _as_setting(key, values[key]))
        except HpcError as error:
            raise HpcError(f"site file {path} line {key_node.start_mark.line + 1}: {error}") from None
    return settings


def _as_setting(key: str, value: Any) -> Any:
    if key == "time" and conforms(value, int):
        return str(value)  # YAML reads `time: 30` as an integer number of minutes
    return value


def resolve_settings(site: Mapping[str, Any], overrides: Mapping[str, Any]) -> SlurmSettings:
    """Defaults, then the site file's values, then the command line's (None = not given)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return SlurmSettings(**{**site, **given})


class SbatchTemplate(string.Template):
    """`{{name}}` placeholders, so that bash's `$VAR` and `${VAR}` pass through untouched."""

    delimiter = "{{"
    pattern = r"""\{\{(?:(?P<escaped>\{\{)|(?P<named>[a-z_]+)\}\}|(?P<braced>(?!))|(?P<invalid>))"""


def render_template(name: str, values: Mapping[str, str], template_dir: Path = TEMPLATE_DIR) -> str:
    """Fill slurm/<name>.sbatch. Every placeholder needs a value and every value a placeholder."""
    path = template_dir / f"{name}.sbatch"
    try:
        template = SbatchTemplate(path.read_text())
    except OSError as error:
        raise HpcError(f"sbatch template {path}: cannot read ({error.strerror})") from None
    if not template.is_valid():
        raise HpcError(f"sbatch template {path}: a '{{{{' that does not open a {{{{name}}}} placeholder")
    wanted = set(template.get_identifiers())
    unknown, unused = sorted(wanted - set(values)), sorted(set(values) - wanted)
    if unknown:
        raise HpcError(
            f"sbatch template {path}: unknown placeholder(s) {unknown}; values exist for {sorted(values)}"
        )
    if unused:
        raise HpcError(f"sbatch template {path}: no placeholder for {unused}")
    return template.substitute(values)


def directives(settings: SlurmSettings) -> str:
    """The `#SBATCH` lines of the resources in `settings`."""
    options = [
        f"--job-name={settings.job_name}",
        f"--nodes={settings.nodes}",
        f"--ntasks-per-node={settings.ntasks_per_node}",
        f"--cpus-per-task={settings.cpus_per_task}",
        f"--time={settings.time}",
    ]
    optional = {"partition": settings.partition, "account": settings.account, "mem": settings.mem}
    options += [f"--{key}={value}" for key, value in optional.items() if value is not None]
    if settings.gpus_per_node:
        options.append(f"--gpus-per-node={settings.gpus_per_node}")
    options += settings.extra_directives
    return "\n".join(f"#SBATCH {option}" for option in options)


def setup_lines(settings: SlurmSettings) -> str:
    """Module loads, then the site's own set-up lines, then thread limits (one rank per task)."""
    lines = [f"module load {module}" for module in settings.modules]
    lines += settings.setup
    # the simulator's numba threads too: ranks x threads beyond the allocated cores slows every rank
    cpus = settings.cpus_per_task
    lines.append(f"export OMP_NUM_THREADS={cpus} MKL_NUM_THREADS={cpus} NUMBA_NUM_THREADS={cpus}")
    return "\n".join(lines)


def launch_prefix(settings: SlurmSettings) -> str:
    """The command that starts one rank per task of the allocation, in front of the job's command.

    mpiexec: the one next to `python` (the mpich wheel installs it there), else the first on PATH. Both
    launchers end the whole step when one rank fails.
    """
    if settings.launcher == "srun":
        return f"srun --mpi={settings.mpi} --kill-on-bad-exit=1"
    beside_python = Path(settings.python).parent / "mpiexec"
    mpiexec = shlex.quote(str(beside_python)) if beside_python.exists() else "mpiexec"
    return f'{mpiexec} -bootstrap slurm -n "$SLURM_NTASKS"'


def shell_command(arguments: Sequence[str]) -> str:
    """One shell-quoted command line; HpcError for an argument with a control character."""
    for argument in arguments:
        if not _printable(str(argument)):
            raise HpcError(f"argument {str(argument)!r} holds a control character; it cannot reach a job")
    return " ".join(shlex.quote(str(argument)) for argument in arguments)


def render_job(
    kind: str, settings: SlurmSettings, command: Sequence[str], log_dir: Path, **extra: str
) -> str:
    """The sbatch script of `kind` (train, sweep or eval) running `command`."""
    values = {
        "directives": directives(settings),
        "setup": setup_lines(settings),
        "command": shell_command(command),
        "log_dir": sbatch_path(log_dir, "run directory"),
    }
    if kind != "eval":
        values |= {"launch": launch_prefix(settings), "signal_seconds": str(settings.signal_seconds)}
    return render_template(kind, {**values, **extra})


def sweep_task_arguments(tasks: Sequence[Sequence[str]]) -> str:
    """A bash `case` that sets the array `task_arguments` from SLURM_ARRAY_TASK_ID (task i = tasks[i])."""
    lines = ['case "$SLURM_ARRAY_TASK_ID" in']
    lines += [f"  {index}) task_arguments=({shell_command(task)}) ;;" for index, task in enumerate(tasks)]
    lines.append('  *) echo "gridswarm: no arguments for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;')
    lines.append("esac")
    return "\n".join(lines)


def array_task_arguments(run_dir: Path) -> str:
    """A bash line that sets `task_arguments` for an --array job: task i trains into RUN_DIR/task-i with
    seed i."""
    out = f'{shlex.quote(str(run_dir))}/task-"$SLURM_ARRAY_TASK_ID"'
    return f'task_arguments=(--out {out} --seed "$SLURM_ARRAY_TASK_ID")'


def validate_array(spec: str) -> str:
    """An sbatch --array specification such as 0-15, 0,6,16-32, 0-15:4 or 0-15%4."""
    if not ARRAY.fullmatch(spec):
        raise HpcError(f"--array {spec!r}: expected indices like 0-15, 0,6,16-32, 0-15:4 or 0-15%4")
    return spec


def submit(script: str, run_dir: Path, kind: str) -> str:
    """Write the script into `run_dir/slurm/`, submit it with sbatch, record the job id; return the id."""
    if shutil.which("sbatch") is None:
        raise HpcError("sbatch not found: the SLURM client tools are not installed on this machine")
    slurm_dir = run_dir / "slurm"
    slurm_dir.mkdir(parents=True, exist_ok=True)
    script_path = slurm_dir / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
    atomic_write_text(script_path, script)
    result = subprocess.run(
        ["sbatch", "--parsable", str(script_path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise HpcError(f"sbatch {script_path} failed: {message[-1] if message else result.returncode}")
    job_id = result.stdout.strip().split(";")[0]
    record = {"job_id": job_id, "kind": kind, "script": str(script_path), "submitted": time.time()}
    with open(slurm_dir / JOBS_FILE, "a") as jobs:
        jobs.write(json.dumps(record) + "\n")
    return job_id


def submitted_jobs(run_dir: Path) -> list[dict[str, Any]]:
    """The jobs `submit` recorded for this run directory, oldest first."""
    path = run_dir / "slurm" / JOBS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def job_states(job_id: str) -> list[str]:
    """One line per job or array task: id, state, elapsed, limit, reason (squeue, else scontrol)."""
    if shutil.which("squeue") is None:
        return [f"{job_id}: SLURM client tools are not installed on this machine"]
    queued = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%i %T elapsed=%M limit=%l %R"], capture_output=True, text=True
    )
    if queued.returncode == 0 and queued.stdout.strip():
        return queued.stdout.strip().splitlines()
    shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
    lines = []
    for record in shown.stdout.strip().splitlines():
        fields = dict(field.split("=", 1) for field in record.split() if "=" in field)
        lines.append(
            f"{fields.get('JobId')} {fields.get('JobState')} elapsed={fields.get('RunTime')} "
            f"exit={fields.get('ExitCode')} restarts={fields.get('Restarts')}"
        )
    return lines or [f"{job_id}: no longer known to SLURM (finished jobs are forgotten after MinJobAge)"]
