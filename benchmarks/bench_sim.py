"""Simulator throughput vs POGEMA 1.4.0 (the targets' setting; see gridswarm/commands/bench.py).

Usage: NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sim.py [--quick]
Prints a Markdown table (machine and date first) for docs/benchmarks.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one thread, before numba is imported

import argparse
import datetime
import platform

from gridswarm.commands.bench import FULL_CASES, QUICK_CASES, run_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 64 and 1,024 agents")
    args = parser.parse_args()
    print(f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    run_cases(QUICK_CASES if args.quick else FULL_CASES, against_pogema=True)


if __name__ == "__main__":
    main()
