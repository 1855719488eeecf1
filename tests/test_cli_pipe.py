"""`gridswarm ... | head`: a reader that leaves early ends the command quietly, as it ends `cat`."""

import os
import subprocess
import sys


def test_a_closed_stdout_ends_the_command_without_a_traceback():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the command writes its first byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gridswarm.cli", "scenario", "list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141  # what a shell reports for a process that SIGPIPE ended
