"""`gridswarm runs compare RUN... [--out plot.png] [--metrics K ...] [--smooth N]`: several training runs
side by side, the seeds of one model as their mean and spread."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gridswarm.arguments import integer
from marl.config import ConfigError

USER_ERRORS = ("marl.run_dir.CheckpointError", "marl.config.ConfigError")
MAX_SMOOTH = 1 << 20


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("runs", help="compare training runs (curves over seeds, final metrics)")
    commands = parser.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")
    compare = commands.add_parser(
        "compare",
        help="curves of several runs (mean and spread over each model's seeds) and a final-metrics table",
        description="Groups the runs by model (by scenario and model when they differ in scenario), prints "
        "every run's final metrics (its closing evaluation, else its last 10 updates) and each group's mean "
        "± std, and with --out draws each metric's mean curve with a ±1 std band over the seeds.",
    )
    compare.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run directories")
    compare.add_argument("--out", type=Path, metavar="PLOT.png", help="draw the curves into this PNG")
    compare.add_argument(
        "--metrics",
        nargs="+",
        metavar="KEY",
        help="metrics.jsonl keys to draw (default: marl.compare's CURVE_KEYS, the success rates, episode "
        "length, throughput, entropy and explained variance)",
    )
    compare.add_argument(
        "--smooth", type=integer(1, MAX_SMOOTH), default=10, help="trailing mean over this many updates"
    )
    compare.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from marl.compare import CURVE_KEYS, final_table, group_runs, load_run, plot_groups
    from marl.report import format_table

    if args.out is not None and (args.out.suffix.lower() != ".png" or args.out.is_dir()):
        raise ConfigError(f"--out {args.out}: expected a .png file")
    groups = group_runs([load_run(path) for path in args.runs])
    print(format_table(final_table(groups)))
    if args.out is not None:
        metrics = args.metrics or list(CURVE_KEYS)
        drawn = plot_groups(groups, metrics, args.smooth, args.out)
        if not drawn:
            raise ConfigError(f"--metrics {' '.join(metrics)}: no run logged any of them")
        print(f"curves ({', '.join(drawn)}): {args.out}")
    return 0
