"""Preemption: a signal sets a flag, the training loop stops at a safe point, checkpoints, and requeues.

SLURM warns a job before its time limit with the signal of `--signal` (the templates use B:USR1@90 and the
batch shell forwards it to the training step) and preempts with SIGTERM. A handler may run at any
bytecode, so it only records the signal; the loop polls `stop_requested(comm)` once per update, where the
flag is all-reduced (max) so that every rank stops at the same update. Typical use:

    with PreemptionHandler() as preemption:
        for update in range(start, total):
            ...
            if preemption.stop_requested(comm):
                if comm.is_root:
                    save_checkpoint(...)
                comm.barrier()
                if comm.is_root:
                    requeue_job()
                return
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

import numpy as np

from hpc.comm import Comm
from hpc.errors import HpcError

DEFAULT_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class PreemptionHandler:
    """Installs flag-setting handlers for `signals` (restored on `uninstall` or leaving the `with`)."""

    def __init__(self, signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS) -> None:
        self.received: signal.Signals | None = None
        self._previous = {number: signal.signal(number, self._record) for number in signals}

    def _record(self, number: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(number)

    @property
    def requested(self) -> bool:
        """Whether this process received one of the signals (no communication)."""
        return self.received is not None

    def stop_requested(self, comm: Comm) -> bool:
        """Whether any rank received a signal: a collective call, the same answer on every rank."""
        flag = np.array([1 if self.requested else 0], dtype=np.int32)
        return bool(comm.allreduce_max_numpy(flag)[0])

    def uninstall(self) -> None:
        """Give the signals back to the handlers that were installed before."""
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous = {}

    def __enter__(self) -> PreemptionHandler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()


def restart_count() -> int:
    """How many times SLURM restarted this job (SLURM_RESTART_COUNT; 0 outside SLURM or on the first run)."""
    value = os.environ.get("SLURM_RESTART_COUNT", "0")
    if not value.isdigit():
        raise HpcError(f"environment variable SLURM_RESTART_COUNT={value!r}: expected a non-negative integer")
    return int(value)


def slurm_job_ref() -> str | None:
    """The id that `scontrol requeue` needs: `<array job>_<task>` for an array task, else SLURM_JOB_ID."""
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        # The bare array job id would requeue every task of the array.
        return f"{array_job}_{array_task}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_job() -> bool:
    """Ask SLURM to requeue this job (`scontrol requeue`); False outside SLURM.

    SLURM then ends the running job and restarts the batch script from its beginning with the same job id
    and SLURM_RESTART_COUNT + 1, so the training command must resume from the run's latest checkpoint.
    """
    job = slurm_job_ref()
    if job is None:
        return False
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        raise HpcError(f"scontrol requeue {job} failed: {message}")
    print(f"gridswarm.hpc: requeued SLURM job {job}", file=sys.stderr)
    return True
