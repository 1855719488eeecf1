"""The `slurm_cluster` fixture: one real localhost SLURM cluster per test session (see slurm_cluster.py)."""

import subprocess
from collections.abc import Iterator

import pytest

from tests.hpc.slurm_cluster import LocalSlurmCluster, unavailable_reason


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurmCluster]:
    """A started one-node cluster; tests pass `cluster.env` (SLURM_CONF) to sbatch/srun/scontrol."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        cluster.stop()
        pytest.skip(f"the local SLURM cluster did not start: {error}")
    yield cluster
    cluster.stop()
