"""How often does a 2-task MPI step start under SLURM, per launcher and netmod?

Starts a local one-node SLURM cluster (tests/hpc/slurm_cluster.py, needs root and the slurm packages),
then for each variant submits `--starts` consecutive 2-task jobs whose step imports what `gridswarm train`
imports (torch, numba, the simulator) and then initializes MPI and does one Allreduce. A job that has not
finished `--hang-after` seconds after it started running counts as a hang and is cancelled.

    .venv/bin/python benchmarks/bench_slurm_start.py --starts 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.hpc.slurm_cluster import LocalSlurmCluster, unavailable_reason

BIN = Path(sys.executable).parent
PROGRAM = (
    "import torch, numba, sim, hpc; comm = hpc.get_comm(); "
    "import numpy as np; total = comm.allreduce_sum_numpy(np.ones(1)); "
    "print('rank', comm.rank, 'of', comm.size, 'sum', total[0], flush=True)"
)
OFI = "export MPIR_CVAR_CH4_NETMOD=ofi FI_PROVIDER=tcp"
VARIANTS = {
    "srun --mpi=pmi2 (ucx)": ("", "srun --mpi=pmi2 --kill-on-bad-exit=1"),
    "srun --mpi=pmi2 (ofi tcp)": (OFI, "srun --mpi=pmi2 --kill-on-bad-exit=1"),
    "mpiexec -bootstrap slurm (ucx)": ("", f"{BIN / 'mpiexec'} -bootstrap slurm -n $SLURM_NTASKS"),
    "mpiexec -bootstrap slurm (ofi tcp)": (OFI, f"{BIN / 'mpiexec'} -bootstrap slurm -n $SLURM_NTASKS"),
}


def one_start(
    cluster: LocalSlurmCluster, directory: Path, name: str, setup: str, launch: str, hang_after: float
) -> str:
    script = directory / f"{name}.sbatch"
    script.write_text(
        f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --ntasks=2\n#SBATCH --time=5\n"
        f"#SBATCH --output={directory}/{name}.out\n{setup}\n"
        f"export NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1\ncd {Path.cwd()}\n"
        f'{launch} {sys.executable} -c "{PROGRAM}"\n'
    )
    job = cluster.run("sbatch", "--parsable", str(script)).stdout.strip().split(";")[0]
    cluster.wait_for_state(job, ("RUNNING", "COMPLETED", "FAILED"), timeout=120)
    deadline = time.monotonic() + hang_after
    while time.monotonic() < deadline:
        state = cluster.job_state(job)
        if state not in ("RUNNING", "COMPLETING"):
            output = (directory / f"{name}.out").read_text(errors="replace")
            if state == "COMPLETED" and output.count(" sum 2.0") == 2:
                return "ok"
            last_line = output.strip().splitlines()[-1][:160] if output.strip() else "no output"
            return f"failed ({state}: {last_line})"
        time.sleep(0.25)
    cluster.cancel_all()
    return "hang"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--hang-after", type=float, default=45.0)
    parser.add_argument("--only", default="", help="run the variants whose name contains this")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as temp, LocalSlurmCluster(temp) as cluster:
        for index, (variant, (setup, launch)) in enumerate(VARIANTS.items()):
            if args.only not in variant:
                continue
            results = []
            started = time.monotonic()
            for start in range(args.starts):
                results.append(
                    one_start(cluster, Path(temp), f"v{index}-{start}", setup, launch, args.hang_after)
                )
            hangs = results.count("hang")
            failed = sum(result.startswith("failed") for result in results)
            print(
                f"{variant}: {args.starts} starts, {hangs} hangs, {failed} failed "
                f"({time.monotonic() - started:.0f} s) {results}",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
