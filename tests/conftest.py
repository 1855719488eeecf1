"""Shared test configuration.

Hypothesis profiles: `ci` (chosen when the environment variable CI is set, as .ci/run does) draws the
same examples on every run and keeps no example database, so a CI run is reproducible; `dev` (local runs)
draws new examples each run and remembers failing ones in .hypothesis/. HYPOTHESIS_PROFILE overrides.
"""

import os
from collections.abc import Iterator

import pytest
import torch
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, database=None)
# Explicit, because hypothesis itself switches its defaults to derandomized and database-free whenever CI is
# set, and a profile inherits those defaults.
settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    derandomize=False,
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors on a shared CPU: one torch thread avoids thread hand-off costs (10x on a loaded box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
