"""CI draws the same hypothesis examples on every run and keeps no example database; local runs explore."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPOSITORY = Path(__file__).parents[1]


def test_the_ci_profile_is_derandomized_without_a_database_and_the_dev_profile_explores():
    ci, dev = settings.get_profile("ci"), settings.get_profile("dev")
    assert ci.derandomize is True and ci.database is None
    assert dev.derandomize is False and dev.database is not None


@pytest.mark.parametrize(("environment", "profile"), [({"CI": "1"}, "ci"), ({}, "dev")])
def test_the_environment_variable_ci_selects_the_ci_profile(environment, profile):
    probe = "import tests.conftest; from hypothesis import settings; print(settings._current_profile)"
    base = {key: value for key, value in os.environ.items() if key not in ("CI", "HYPOTHESIS_PROFILE")}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**base, **environment},
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == profile, result.stderr


def test_the_ci_script_runs_every_test_command_with_ci_set():
    script = (REPOSITORY / ".ci" / "run").read_text()
    exported = re.search(r"^export .*\bCI=1\b", script, re.MULTILINE)
    first_test = script.index("pytest")
    assert exported and exported.start() < first_test
