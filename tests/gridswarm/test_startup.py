"""The CLI starts without importing what the command does not use: building the parser (`--help`) and
`scenario list` import neither torch nor numba, `scenario check` no torch (it builds maps with the numba
kernels); and every `USER_ERRORS` string names an exception type where it is defined, so the CLI's match by
name finds it."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from gridswarm.cli import COMMAND_MODULES, is_user_error, qualified_name

HEAVY = ("torch", "numba", "zarr", "PIL", "matplotlib", "pettingzoo", "mpi4py", "pogema", "wandb")
"""Libraries a command imports inside its handler, never at parser-building time."""

PROBE = """
import json, sys
from gridswarm.cli import main
heavy = sys.argv[1].split(",")
try:
    code = main(sys.argv[2:])
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "loaded": sorted(name for name in heavy if name in sys.modules)}))
"""


def imported_after(*argv: str) -> set[str]:
    """The HEAVY libraries a fresh interpreter has imported after running `gridswarm ARGV` (exit 0)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(HEAVY), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return set(report["loaded"])


@pytest.mark.parametrize(
    "argv", [("--help",), ("run", "--help"), ("scenario", "list"), ("scenario", "check", "--help")]
)
def test_the_parser_and_scenario_list_import_no_heavy_library(argv: tuple[str, ...]) -> None:
    assert imported_after(*argv) == set()


def test_run_help_names_every_scripted_policy_without_loading_the_simulator() -> None:
    # the names come from sim.policy_names, which `import sim` reaches without numba
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "numba,sim.env,sim.baselines,sim.planners", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"code": 0, "loaded": []}
    from sim.policy_names import POLICIES

    help_text = " ".join(" ".join(lines[:-1]).split())
    assert all(name in help_text for name in POLICIES)


def test_import_sim_is_lazy_and_keeps_its_public_names() -> None:
    probe = (
        "import json, sys, sim; before = 'numba' in sys.modules; "
        "from sim import GridEnv, MapLayout, TaskGenerationError, parallel_env; "
        "print(json.dumps([before, sorted(sim.__all__), GridEnv.__module__, 'numba' in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    before, names, home, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert not before and after  # numba arrives with the first public name read, not with `import sim`
    assert names == ["GridEnv", "MapLayout", "TaskGenerationError", "parallel_env"]
    assert home == "sim.env"


def test_scenario_check_builds_maps_without_torch() -> None:
    # the map generators and agent placement are numba kernels (sim.kernels): numba is legitimately loaded
    assert "torch" not in imported_after("scenario", "check", "bottleneck")


def user_error_names() -> list[str]:
    return [
        name
        for module in COMMAND_MODULES
        for name in importlib.import_module(f"gridswarm.commands.{module}").USER_ERRORS
    ]


@pytest.mark.parametrize("name", sorted(set(user_error_names())))
def test_user_errors_name_exception_types_where_they_are_defined(name: str) -> None:
    module, _, attribute = name.rpartition(".")
    kind = getattr(importlib.import_module(module), attribute)
    assert isinstance(kind, type) and issubclass(kind, Exception)
    assert qualified_name(kind) == name  # a re-export's name would never match a raised error's type


def test_a_named_type_and_its_subclasses_are_user_errors_others_are_not() -> None:
    from hpc.checkpoint import CheckpointError as HpcCheckpointError
    from hpc.errors import HpcError
    from sim.episode_start import TaskGenerationError

    assert is_user_error(HpcError("x"))
    assert is_user_error(HpcCheckpointError("x"))  # derives from hpc.errors.HpcError
    assert is_user_error(TaskGenerationError("x"))  # derives from scenarios.errors.ScenarioError
    assert not is_user_error(ValueError("x"))
    assert not is_user_error(KeyError("x"))
