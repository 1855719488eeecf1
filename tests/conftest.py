"""Shared test configuration.

Hypothesis profiles: `ci` (chosen when the environment variable CI is set, as .ci/run does) draws the
same examples on every run and keeps no example database, so a CI run is reproducible; `dev` (local runs)
draws new examples each run and remembers failing ones in .hypothesis/. HYPOTHESIS_PROFILE overrides.
"""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, database=None)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
