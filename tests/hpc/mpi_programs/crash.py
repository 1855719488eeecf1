"""Run under `mpiexec -n 2 crash.py exit|kill`: the last rank dies while the others wait in collectives."""

import os
import signal
import sys
import time

import torch

import hpc

comm = hpc.get_comm()
flat = torch.ones(1_000)
comm.allreduce_mean_(flat)
if comm.rank == comm.size - 1:
    if sys.argv[1] == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)
# The survivors block in the next collective forever unless the launcher ends them.
while True:
    comm.allreduce_mean_(flat)
    time.sleep(0.01)
