"""CI draws the same hypothesis examples on every run and keeps no example database; local runs explore.
And property tests draw only valid cases: the map-growth test's batches never start an episode without
room for its agents."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from scenarios import ScenarioError
from sim import GridEnv
from sim.seeds import episode_seed as _episode_seed
from tests.sim.test_map_growth import ENVS, STEPS, curriculum, every_episode_fits

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


def test_the_map_growth_cases_are_batches_the_simulator_can_play():
    scenario = curriculum([(3, 3), (3, 4)], [2, 2], "finish")
    verdicts = {seed: every_episode_fits(scenario, seed) for seed in range(40)}
    assert not all(verdicts.values()), "tiny maps are sometimes full: the filter must have work to do"
    for seed, fits in list(verdicts.items())[:12]:
        if fits:  # the batch plays STEPS steps (every episode ends after 2: at most STEPS + 1 start)
            env = GridEnv(scenario, num_envs=ENVS, seed=seed)
            env.reset()
            for _ in range(STEPS):
                env.step(np.zeros((ENVS, 2), dtype=np.int64))
        else:  # one of the episodes the filter looked at is one the simulator refuses
            alone = GridEnv(scenario, num_envs=1, auto_reset=False)
            refused = 0
            for env_index in range(ENVS):
                for episode in range(STEPS + 1):
                    try:
                        alone.reset(episode_seeds=np.array([_episode_seed(seed, env_index, episode)]))
                    except ScenarioError:
                        refused += 1
            assert refused, seed
