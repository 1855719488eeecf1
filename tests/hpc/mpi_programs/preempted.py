"""Run under `mpiexec -n R preempted.py SIGNAL_AT`: rank R-1 signals itself at update SIGNAL_AT, and every
rank must stop at that same update. Prints `stopped rank <r> update <u>`."""

import os
import signal
import sys

import hpc

comm = hpc.get_comm()
signal_at = int(sys.argv[1])
with hpc.PreemptionHandler() as preemption:
    for update in range(100):
        if update == signal_at and comm.rank == comm.size - 1:
            os.kill(os.getpid(), signal.SIGUSR1)
        if preemption.stop_requested(comm):
            print(f"stopped rank {comm.rank} update {update} local {preemption.requested}", flush=True)
            break
    else:
        raise AssertionError("the preemption signal was never seen")
