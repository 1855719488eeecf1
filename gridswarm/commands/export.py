"""`gridswarm export SOURCE --out DIR`: a trained policy as ONNX, C99, manifest, golden vectors, waypoints.

SOURCE is a run directory (its best, else latest, checkpoint), a checkpoint file, or `new:NAME` for a freshly
initialized policy (with --obs-shape, --preset, --scope, --seed), e.g. to size a model before training it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import scenarios
from deploy.errors import ExportError
from fsio import open_regular
from gridswarm.arguments import integer, number, seed

if TYPE_CHECKING:
    from scenarios import Scenario

USER_ERRORS = ("deploy.errors.ExportError", "marl.run_dir.CheckpointError", "scenarios.errors.ScenarioError")
plan_value = number(0, 1000, low_open=True)  # a flight plan's length, speed or duration: positive, finite


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a policy for drones: ONNX, C99, manifest, waypoints"
    )
    parser.add_argument("source", help="run directory, checkpoint file, or new:NAME (a fresh policy)")
    parser.add_argument("--out", required=True, type=Path, help="export directory (must not exist)")
    parser.add_argument(
        "--format", default="onnx,c", help="comma list of onnx, c, waypoints (default onnx,c)"
    )
    parser.add_argument("--int8", action="store_true", help="int8 weights with one scale per output row")
    parser.add_argument("--neighbours", type=integer(1, 1024), default=8, help="message slots K (default 8)")
    parser.add_argument(
        "--target",
        choices=("crazyflie", "host"),
        default="crazyflie",
        help="crazyflie enforces the STM32F405 budgets; host skips them",
    )
    parser.add_argument(
        "--scenario",
        help="scenario whose rollouts give verification observations, channel names and --rollout waypoints "
        "(default: the run's own scenario)",
    )
    parser.add_argument(
        "--mcu",
        choices=("auto", "on", "off"),
        default="auto",
        help="build and run the self-test firmware on an emulated STM32F405: auto (default) when "
        "arm-none-eabi-gcc, newlib and qemu-system-arm are installed, on (required), off",
    )
    parser.add_argument(
        "--verify-samples", type=integer(1, 10**6), default=1000, help="observations checked (1000)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier export directory (one holding only an export's files and manifest.json)",
    )
    fresh = parser.add_argument_group("new:NAME policies")
    fresh.add_argument("--obs-shape", default="3,11,11", help="C,F,F (default 3,11,11)")
    fresh.add_argument("--preset", default="drone", help="size preset (default drone)")
    fresh.add_argument("--scope", default="local", help="memory scope (default local)")
    fresh.add_argument("--seed", type=seed, default=0, help="weight and verification seed (default 0)")
    plans = parser.add_argument_group("waypoints (with --format ...,waypoints): one source")
    plans.add_argument("--positions", type=Path, help=".npy of (steps+1, drones, 2) grid cells (row, col)")
    plans.add_argument("--episodes", type=Path, help="episode store (sim.episodes) with --episode ID")
    plans.add_argument("--episode", help="episode id in --episodes")
    plans.add_argument("--rollout", action="store_true", help="a live rollout of the policy in --scenario")
    plans.add_argument("--cell-size", type=plan_value, default=0.5, help="metres per cell (default 0.5)")
    plans.add_argument("--origin", default="0,0", help="x,y of the grid's top-left corner in metres")
    plans.add_argument(
        "--altitude", type=plan_value, default=1.0, help="flight altitude in metres (default 1.0)"
    )
    plans.add_argument("--max-speed", type=plan_value, default=0.5, help="m/s (default 0.5)")
    plans.add_argument(
        "--max-accel", type=plan_value, default=2.0, help="m/s^2 of the smooth trajectories (default 2.0)"
    )
    plans.add_argument(
        "--step-duration",
        type=plan_value,
        default=None,
        help="seconds per step (default: the shortest that keeps --max-speed and --max-accel)",
    )
    plans.add_argument("--safety-distance", type=number(0, 1000), default=0.25, help="metres (default 0.25)")
    parser.set_defaults(handler=run)


def _numbers(option: str, text: str, count: int, kind: type) -> tuple:
    try:
        values = tuple(kind(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(value) and abs(value) < 1e9 for value in values):
        raise ExportError(f"{option} {text!r}: expected {count} comma-separated finite {kind.__name__}s")
    return values


def _policy(args: argparse.Namespace):
    """(policy in eval mode, what the manifest says of its source, the checkpoint's metadata or {})."""
    import memory
    from marl.run_dir import load_policy

    if not args.source.startswith("new:"):
        policy, meta = load_policy(args.source)
        source = {key: meta.get(key) for key in ("checkpoint", "format", "step", "agent_steps", "scenario")}
        return policy, source, meta
    name = args.source.removeprefix("new:")
    obs_shape = _numbers("--obs-shape", args.obs_shape, 3, int)
    try:
        policy = memory.make_policy(name, obs_shape, preset=args.preset, scope=args.scope, seed=args.seed)
    except ValueError as error:
        raise ExportError(str(error)) from None
    fresh = {"checkpoint": None, "fresh": {"name": name, "preset": args.preset, "seed": args.seed}}
    return policy.eval(), fresh, {}


def _plan_cells(args: argparse.Namespace, rollout_positions: np.ndarray | None) -> np.ndarray:
    sources = [args.positions is not None, args.episodes is not None, args.rollout]
    if sum(sources) != 1:
        raise ExportError(
            "--format waypoints needs exactly one of --positions, --episodes/--episode, --rollout"
        )
    if args.positions is not None:
        try:
            with open_regular(args.positions) as file:
                return np.load(file, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ExportError(f"{args.positions}: cannot read positions ({error})") from None
    if args.episodes is not None:
        from sim import episodes

        if args.episode is None:
            raise ExportError("--episodes needs --episode ID (see gridswarm episodes ls)")
        try:
            return np.asarray(episodes.open(args.episodes)[args.episode].positions)
        except (episodes.EpisodeStoreError, KeyError) as error:
            raise ExportError(f"{args.episodes}: {error}") from None
    if rollout_positions is None:
        raise ExportError("--rollout needs --scenario")
    return rollout_positions


def _run_scenario(meta: dict) -> Scenario:
    """The scenario a checkpoint's run trained on, as it was loaded then; ExportError when unreadable."""
    from marl.run_dir import CheckpointError, run_scenario
    from scenarios.errors import ScenarioError

    try:
        return run_scenario(meta, meta["checkpoint"])
    except (CheckpointError, ScenarioError) as error:
        raise ExportError(f"the run's scenario cannot be read ({error}); name one with --scenario") from None


def run(args: argparse.Namespace) -> int:
    from deploy.agent import AgentStep
    from deploy.export import CRAZYFLIE, FORMATS, ExportOptions, export_policy
    from deploy.manifest import describe_sizes
    from deploy.radio import check_addressable
    from deploy.rollout import ROLLOUT_ENVS, decentralized_rollout
    from deploy.verify import torch_runner
    from deploy.waypoints import GridToWorld, make_plan, plan_summary
    from sim.maps import largest_map_shape

    formats = tuple(part.strip() for part in args.format.split(",") if part.strip())
    if not formats or set(formats) - set(FORMATS):
        raise ExportError(f"--format {args.format!r}: expected a comma list of {', '.join(FORMATS)}")
    policy, source, meta = _policy(args)
    observations = channels = positions = None
    scenario_name = source.get("scenario") if args.scenario is None else args.scenario
    if scenario_name is not None:
        scenario = scenarios.load(args.scenario) if args.scenario is not None else _run_scenario(meta)
        channels = scenario.observation.channels
        check_addressable(scenario.agents.count, largest_map_shape(scenarios.expand_variants(scenario)))
        step = AgentStep(policy, args.neighbours)
        rollout = decentralized_rollout(step, torch_runner(step), scenario, ROLLOUT_ENVS, seed=args.seed)
        observations, positions = rollout.observations, rollout.positions
    plan = summary = None
    transform = GridToWorld(args.cell_size, _numbers("--origin", args.origin, 2, float), args.altitude)
    timing = {"max_speed_mps": args.max_speed, "max_accel_mps2": args.max_accel}
    if "waypoints" in formats:
        plan = make_plan(
            _plan_cells(args, positions),
            transform,
            max_speed_mps=args.max_speed,
            max_accel_mps2=args.max_accel,
            step_duration_s=args.step_duration,
            safety_distance_m=args.safety_distance,
        )
        summary = plan_summary(plan, args.safety_distance)
        timing["step_duration_s"] = plan.step_duration_s
    options = ExportOptions(
        formats=formats,
        int8=args.int8,
        max_neighbours=args.neighbours,
        budget=CRAZYFLIE if args.target == "crazyflie" else None,
        verify_samples=args.verify_samples,
        seed=args.seed,
        overwrite=args.force,
        protected=(source["checkpoint"],) if source.get("checkpoint") else (),
        mcu=args.mcu,
        extra={"source": source | {"scenario": scenario_name}, "grid_to_world": transform.to_dict() | timing},
    )
    manifest = export_policy(policy, args.out, options, observations, plan, summary, channels)
    checks = manifest["verification"]
    print(f"exported {', '.join(formats)} to {args.out}")
    print(f"  {describe_sizes(manifest)}")
    print(
        f"  C vs torch: max |error| {checks['c']['max_abs_error']:.2e}, same action "
        f"{100 * checks['c']['same_action']:.2f}% of {checks['c']['samples']}"
    )
    if "onnx" in checks:
        print(f"  ONNX vs torch: max |error| {checks['onnx']['max_abs_error']:.2e}")
    if summary is not None:
        shown = ("num_drones", "num_steps", "step_duration_s")
        print(f"  waypoints: {json.dumps({k: summary[k] for k in shown})}")
    return 0
