"""The drone policies on the emulated STM32F405: flash, RAM, stack, instructions per step, self-test error.

    .venv/bin/python benchmarks/bench_mcu.py [--models srmt,rmt,gru,neighbour_attention] [--obs-shape 3,11,11]
        [--checkpoint RUN_DIR ...]

Each policy is exported twice (float32 and int8 weights) with `gridswarm export`'s pipeline and the MCU check
required (arm-none-eabi-gcc, newlib, qemu-system-arm); the numbers are what the manifest records. Fresh
drone-preset policies get perturbed weights first: a fresh policy's equal zero biases are stored once and
would look smaller. Prints a markdown table for docs/deploy.md with the machine, date and commit.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for tests.deploy

from deploy.export import ExportOptions, export_policy
from deploy.mcu import TARGET
from marl.run_dir import load_policy
from tests.deploy.helpers import decisive_policy


def row(label: str, int8: bool, manifest: dict) -> str:
    section, estimate = manifest["mcu"], manifest["estimate"]
    return (
        f"| {label} | {'int8' if int8 else 'fp32'} | {manifest['parameters']:,} | "
        f"{section['flash_bytes']:,} | {section['ram_bytes']:,} | {section['stack_bytes']:,} | "
        f"{section['instructions_per_step']:,} | {section['instructions_per_message']:,} | "
        f"{section['estimated_decision_ms']:.1f} | {section['estimated_rate_hz']:.0f} | "
        f"{estimate['estimated_ms']:.1f} | {section['selftest']['max_abs_error']:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="srmt,rmt,gru,neighbour_attention")
    parser.add_argument("--obs-shape", default="3,11,11")
    parser.add_argument("--checkpoint", action="append", default=[], help="a trained run or checkpoint too")
    parser.add_argument("--verify-samples", type=int, default=1000)
    args = parser.parse_args()
    obs_shape = tuple(int(v) for v in args.obs_shape.split(","))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    print(
        f"{platform.node()} {platform.machine()}, {datetime.date.today()}, commit {commit.strip()}, load "
        f"{os.getloadavg()[0]:.1f}; {TARGET}"
    )
    print(
        "| policy | weights | params | flash B | RAM B | of which stack B | instructions per step | "
        "+ message encoder | ms at 168 MHz | Hz | MAC estimate ms | self-test max error |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    policies = [
        (f"{name} (drone, {args.obs_shape})", decisive_policy(name, obs_shape, 4, perturb=0.02))
        for name in args.models.split(",")
    ]
    policies += [(f"trained {Path(source).name}", load_policy(source)[0]) for source in args.checkpoint]
    with tempfile.TemporaryDirectory() as scratch:
        for index, (label, policy) in enumerate(policies):
            for int8 in (False, True):
                options = ExportOptions(
                    formats=("c",), int8=int8, verify_samples=args.verify_samples, mcu="on"
                )
                manifest = export_policy(policy, Path(scratch) / f"{index}-{int8}", options)
                print(row(label, int8, manifest), flush=True)


if __name__ == "__main__":
    main()
