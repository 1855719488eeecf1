"""`gridswarm slurm submit|eval|status`: render the sbatch templates of slurm/, submit them, follow a run.

gridswarm slurm submit bottleneck --nodes 2 --ntasks-per-node 4 --time 12:00:00 --site cluster.yaml
gridswarm slurm submit bottleneck --sweep seed=0,1,2 --sweep lr=1e-4,3e-4 --max-parallel 4 --dry-run
gridswarm slurm submit bottleneck --train-args='--model gru --steps 5000000'
gridswarm slurm eval runs/bottleneck-20250101-120000 --episodes 100
gridswarm slurm status runs/bottleneck-20250101-120000
"""

from __future__ import annotations

import argparse
import itertools
import math
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

import scenarios
from fsio import path_component
from gridswarm.arguments import seed
from marl.config import ConfigError, TrainConfig, apply_overrides

if TYPE_CHECKING:
    from hpc.slurm import SlurmSettings

USER_ERRORS = ("hpc.errors.HpcError",)
MAX_ARRAY_TASKS = 10_000
"""At most this many array tasks per job (SLURM's own default MaxArraySize is 1001)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("slurm", help="submit training, sweeps and evaluation to SLURM")
    commands = parser.add_subparsers(dest="slurm_command", required=True, metavar="SUBCOMMAND")

    submit = commands.add_parser("submit", help="train a scenario as a (multi-node MPI) batch job or a sweep")
    submit.add_argument("scenario", help="built-in scenario name or YAML file")
    submit.add_argument("--seed", type=seed, default=0, help="training seed (without --sweep/--array)")
    submit.add_argument("--array", help="array indices (e.g. 0-7%%4): one task per index, seed = index")
    submit.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="array over the product of values (repeatable); seed -> --seed, others -> --set KEY=V",
    )
    submit.add_argument("--max-parallel", type=int, help="at most this many sweep tasks at once (>= 1)")
    _add_common(submit)
    submit.add_argument(
        "--train-args", default="", metavar="'ARGS'", help="for gridswarm train: --train-args='--model gru'"
    )
    submit.set_defaults(handler=run_submit)

    evaluate = commands.add_parser("eval", help="evaluate a run or checkpoint as a batch job")
    evaluate.add_argument("target", type=Path, help="run directory or checkpoint")
    _add_common(evaluate)
    evaluate.add_argument(
        "--eval-args", default="", metavar="'ARGS'", help="for gridswarm eval: --eval-args='--episodes 50'"
    )
    evaluate.set_defaults(handler=run_eval)

    status = commands.add_parser("status", help="SLURM state and progress of a run directory")
    status.add_argument("run_dir", type=Path)
    status.set_defaults(handler=run_status)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, help="run directory (default: runs/<scenario>-<time>)")
    parser.add_argument("--site", type=Path, help="YAML site file: partition, account, modules, setup, ...")
    parser.add_argument("--job-name")
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--ntasks-per-node", type=int, help="MPI ranks per node")
    parser.add_argument("--cpus-per-task", type=int)
    parser.add_argument("--gpus-per-node", type=int)
    parser.add_argument("--time", help="time limit: minutes, HH:MM:SS or D-HH:MM:SS")
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument("--mem", help="memory per node, e.g. 32G")
    parser.add_argument(
        "--launcher",
        type=launcher,
        help="start the ranks with srun (default) or MPICH's mpiexec -bootstrap slurm",
    )
    parser.add_argument("--mpi", help="srun --mpi plugin (pmi2 for MPICH, pmix for Open MPI)")
    parser.add_argument("--dry-run", action="store_true", help="print the script instead of submitting it")


def launcher(text: str) -> str:
    """An argparse type: one of hpc.slurm's LAUNCHERS (imported only when --launcher is given)."""
    from hpc.slurm import LAUNCHERS

    if text not in LAUNCHERS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LAUNCHERS)}, found {text!r}")
    return text


def _settings(args: argparse.Namespace) -> SlurmSettings:
    from hpc import slurm

    site = slurm.load_site_file(args.site) if args.site else {}
    names = ("job_name", "nodes", "ntasks_per_node", "cpus_per_task", "gpus_per_node", "time", "partition")
    overrides = {name: getattr(args, name) for name in (*names, "account", "mem", "launcher", "mpi")}
    return slurm.resolve_settings(site, overrides)


def _passthrough(arguments: str, option: str) -> list[str]:
    from hpc.errors import HpcError

    try:
        return shlex.split(arguments)
    except ValueError as error:
        raise HpcError(f"{option} {arguments!r}: {error}") from None


def _sweep_tasks(sweeps: list[str], run_dir: Path) -> list[list[str]]:
    from hpc.errors import HpcError

    axes = []
    for sweep in sweeps:
        key, separator, values = sweep.partition("=")
        if not separator or not key or not values or "" in values.split(","):
            raise HpcError(f"--sweep {sweep!r}: expected KEY=V1,V2,... (e.g. seed=0,1,2 or lr=1e-4,3e-4)")
        for value in values.split(","):  # refused here, not by a job that waited in the queue
            try:
                apply_overrides(TrainConfig(), {key: value}, f"--sweep {key}={value}: ")
            except ConfigError as error:
                raise HpcError(str(error)) from None
        axes.append([(key, value) for value in values.split(",")])
    count = math.prod(len(axis) for axis in axes)
    if count > MAX_ARRAY_TASKS:
        raise HpcError(f"--sweep: {count} combinations, more than the limit of {MAX_ARRAY_TASKS} array tasks")
    tasks = []
    for index, combination in enumerate(itertools.product(*axes)):
        arguments = ["--out", str(run_dir / f"task-{index}")]
        for key, value in combination:
            arguments += ["--seed", value] if key == "seed" else ["--set", f"{key}={value}"]
        tasks.append(arguments)
    return tasks


def _emit(script: str, run_dir: Path, kind: str, dry_run: bool) -> int:
    from hpc import slurm

    if dry_run:
        print(script, end="")
        return 0
    job_id = slurm.submit(script, run_dir, kind)
    print(f"submitted {kind} job {job_id}; follow it with: gridswarm slurm status {run_dir}")
    return 0


def _require_checkpoint(target: Path) -> None:
    """HpcError unless `target` is a checkpoint file or a run directory with one: refused here, not by a
    job that waited in the queue."""
    from hpc.errors import HpcError
    from marl.run_dir import CheckpointError, read_checkpoint

    if not (target.is_dir() or target.is_file()):
        raise HpcError(f"{target}: no such run directory or checkpoint file")
    try:
        read_checkpoint(target)
    except CheckpointError as error:
        raise HpcError(str(error)) from None


def _require_run_dir(run_dir: Path | None) -> None:
    from hpc.errors import HpcError

    if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
        raise HpcError(f"--run-dir {run_dir}: exists and is not a directory")


def run_submit(args: argparse.Namespace) -> int:
    from hpc import slurm
    from hpc.errors import HpcError

    settings = _settings(args)
    _require_run_dir(args.run_dir)
    try:
        scenarios.load(args.scenario)  # refused here, not by a job that waited in the queue
    except scenarios.ScenarioError as error:
        raise HpcError(str(error)) from None
    scenario = str(Path(args.scenario).resolve()) if Path(args.scenario).is_file() else args.scenario
    stem = path_component(Path(args.scenario).stem)
    run_dir = (args.run_dir or Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    train = [
        settings.python,
        "-m",
        "gridswarm.cli",
        "train",
        scenario,
        *_passthrough(args.train_args, "--train-args"),
        # a requeued job reruns this line: it continues the run from its checkpoints (a new job starts it)
        "--resume",
        "auto",
    ]
    log_dir = run_dir / "slurm"
    if args.sweep and args.array is not None:
        raise HpcError("--sweep and --array both choose the array tasks: give one of them")
    if args.max_parallel is not None and not 1 <= args.max_parallel <= MAX_ARRAY_TASKS:
        raise HpcError(f"--max-parallel {args.max_parallel}: expected an integer in [1, {MAX_ARRAY_TASKS}]")
    if args.sweep:
        tasks = _sweep_tasks(args.sweep, run_dir)
        limit = f"%{args.max_parallel}" if args.max_parallel else ""
        script = slurm.render_job(
            "sweep",
            settings,
            train,
            log_dir,
            array=f"0-{len(tasks) - 1}{limit}",
            task_arguments=slurm.sweep_task_arguments(tasks),
        )
        return _emit(script, run_dir, "sweep", args.dry_run)
    if args.array is not None:
        script = slurm.render_job(
            "sweep",
            settings,
            train,
            log_dir,
            array=slurm.validate_array(args.array),
            task_arguments=slurm.array_task_arguments(run_dir),
        )
        return _emit(script, run_dir, "sweep", args.dry_run)
    script = slurm.render_job(
        "train", settings, [*train, "--out", str(run_dir), "--seed", str(args.seed)], log_dir
    )
    return _emit(script, run_dir, "train", args.dry_run)


def run_eval(args: argparse.Namespace) -> int:
    from hpc import slurm

    settings = _settings(args)
    _require_run_dir(args.run_dir)
    _require_checkpoint(args.target)
    target = args.target.resolve()
    run_dir = (args.run_dir or (target if target.is_dir() else target.parent)).resolve()
    command = [
        settings.python,
        "-m",
        "gridswarm.cli",
        "eval",
        str(target),
        *_passthrough(args.eval_args, "--eval-args"),
    ]
    script = slurm.render_job("eval", settings, command, run_dir / "slurm")
    return _emit(script, run_dir, "eval", args.dry_run)


def run_status(args: argparse.Namespace) -> int:
    from hpc import slurm
    from hpc.errors import HpcError
    from marl.run_dir import progress_lines

    run_dir = args.run_dir.resolve()
    if not run_dir.is_dir():
        raise HpcError(f"run directory {run_dir} does not exist")
    jobs = slurm.submitted_jobs(run_dir)
    if not jobs:
        print(f"{run_dir}: no SLURM jobs were submitted from this run directory")
    for job in jobs:
        submitted = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["submitted"]))
        print(f"{job['kind']} job {job['job_id']} (submitted {submitted})")
        for line in slurm.job_states(job["job_id"]):
            print(f"  {line}")
    for line in progress_lines(run_dir):
        print(line)
    return 0
