"""Start-up cost of the `gridswarm` command: CPU and wall seconds of `--help`, `scenario list` and
`scenario check bottleneck`, each a fresh process.

Usage: .venv/bin/python benchmarks/bench_startup.py [--rounds R] [--against REV]

Each command runs as `python -m gridswarm.cli ARGS` (output discarded) with the measured tree as working
directory and first on the import path; its CPU time is the child's user + system time. The median of R
rounds counts, after one warm-up round per tree that is not counted (it fills the tree's numba cache and
the page cache). `--against REV` extracts git revision REV of this repository into a temporary directory
(as benchmarks/bench_train.py does) and alternates the rounds between it and this tree, printing each
command's ratio; CPU seconds move much less with the machine's load than wall seconds do.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_train import commit_of, extract

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (("--help",), ("scenario", "list"), ("scenario", "check", "bottleneck"))


def run_once(tree: Path, arguments: tuple[str, ...]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `python -m gridswarm.cli ARGUMENTS` on `tree`'s code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gridswarm.cli", *arguments],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def measure(trees: dict[str, Path], rounds: int) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Per (side, command): the (CPU, wall) seconds of each counted round, the sides alternating."""
    for tree in trees.values():
        for arguments in COMMANDS:
            run_once(tree, arguments)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for side, tree in trees.items():
            for arguments in COMMANDS:
                results.setdefault((side, " ".join(arguments)), []).append(run_once(tree, arguments))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds per tree (median)")
    parser.add_argument("--against", metavar="REV", help="measure git revision REV side by side")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; date {datetime.datetime.now().isoformat(timespec='minutes')}; "
        f"this tree {commit_of('HEAD')}"
        + (f" vs {args.against} ({commit_of(args.against)})" if args.against else "")
        + f"; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-startup-ref-") as temp:
        trees = {"this tree": ROOT}
        if args.against:
            extract(args.against, Path(temp))
            trees = {args.against: Path(temp), **trees}
        results = measure(trees, args.rounds)
    for arguments in COMMANDS:
        command = " ".join(arguments)
        cells = []
        for side in trees:
            cpu = statistics.median(r[0] for r in results[(side, command)])
            wall = statistics.median(r[1] for r in results[(side, command)])
            cells.append(f"{side} {cpu:.2f} s CPU, {wall:.2f} s wall")
        line = f"gridswarm {command}: " + "; ".join(cells)
        if args.against:
            ratios = [
                statistics.median(r[k] for r in results[(args.against, command)])
                / statistics.median(r[k] for r in results[("this tree", command)])
                for k in (0, 1)
            ]
            line += f" ({ratios[0]:.1f}x less CPU, {ratios[1]:.1f}x less wall)"
        print(line)
    print(f"load average {os.getloadavg()[0]:.1f} (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
