"""`gridswarm eval RUN_DIR_OR_CHECKPOINT [--scenario ...] [--episodes K] [--record OUT.zarr] [--in-pogema]`:
POGEMA's metrics per scenario variant, as a table and as CSV/JSON."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import scenarios
from fsio import path_component
from gridswarm.arguments import MAX_ENVS, integer, seed
from marl.config import UPPER_BOUNDS, ConfigError
from marl.threads import TORCH_THREADS
from optdeps import require

USER_ERRORS = ("marl.config.ConfigError", "marl.run_dir.CheckpointError", "scenarios.errors.ScenarioError")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a trained policy: POGEMA's metrics per scenario variant",
        description="Plays K episodes per variant with the policy (sampled actions, batched over agents "
        "and episodes) and prints the table; also writes it as CSV and JSON next to the checkpoint.",
    )
    parser.add_argument(
        "target",
        help="a run directory (its best, else newest checkpoint), a .ckpt file or pretrained:NAME (the "
        "report then goes to the current directory)",
    )
    parser.add_argument("--scenario", help="scenario to evaluate on (default: the one trained on)")
    parser.add_argument("--episodes", type=integer(1, MAX_ENVS), default=20, help="episodes per variant")
    parser.add_argument("--seed", type=seed, default=0, help="evaluation seed")
    parser.add_argument(
        "--greedy", action="store_true", help="take the most probable action (default: sample)"
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="OUT.zarr",
        help="also write every evaluation episode to this episode store (sim.episodes)",
    )
    parser.add_argument(
        "--in-pogema",
        action="store_true",
        help="play the same tasks in GridSwarm and inside real pogema_v0 environments and "
        "report both side by side (scenarios POGEMA can express: maps of '.' and '#')",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--torch-threads",
        type=integer(1, UPPER_BOUNDS["torch_threads"]),
        default=TORCH_THREADS,
        help=f"torch's CPU threads (default {TORCH_THREADS}, as in training)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from marl.evaluate import evaluate_in_pogema
    from marl.learner import pick_device
    from marl.run_dir import PRETRAINED_PREFIX, load_policy, resolve_checkpoint
    from marl.threads import use_torch_threads

    checkpoint = resolve_checkpoint(args.target)
    if args.in_pogema and args.record is not None:
        raise ConfigError("--record writes GridSwarm's own evaluation; run it without --in-pogema")
    use_torch_threads(args.torch_threads)
    try:
        device = pick_device(args.device)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    policy, meta = load_policy(checkpoint, device)
    name = args.scenario if args.scenario is not None else meta.get("scenario")
    if name is None:
        raise ConfigError(f"{checkpoint}: no scenario recorded; pass --scenario")
    scenario = scenarios.load(name)
    checkpoints = next((parent for parent in checkpoint.parents if parent.name == "checkpoints"), None)
    # one report per (checkpoint, scenario, mode): evaluating best/ and the final step, or sampled and
    # greedy actions, must not overwrite each other
    suffix = ("-pogema" if args.in_pogema else "") + ("-greedy" if args.greedy else "")
    which = "best" if checkpoint.parent.name == "best" else checkpoint.stem
    if str(args.target).startswith(PRETRAINED_PREFIX):  # never write into the installed package
        stem = Path(path_component(f"pretrained-{checkpoint.stem}-eval-{scenario.name}{suffix}"))
    elif checkpoints:
        stem = checkpoints.parent / path_component(f"eval-{scenario.name}-{which}{suffix}")
    else:
        stem = checkpoint.with_name(path_component(f"{checkpoint.stem}-eval-{scenario.name}{suffix}"))
    if args.in_pogema:
        require("pogema", "pogema", "--in-pogema")
        try:
            rows = evaluate_in_pogema(
                scenario, policy, args.episodes, args.seed, device, greedy=args.greedy, progress=True
            )
        except ValueError as error:
            raise ConfigError(f"--in-pogema: scenario {scenario.name!r}: {error}") from None
        _report(rows, stem, meta)
        return 0
    _require_policy_fits(scenario, policy, checkpoint)
    evaluate_and_report(
        scenario,
        policy,
        args.episodes,
        args.seed,
        device,
        stem,
        greedy=args.greedy,
        record=args.record,
        meta=meta,
    )
    return 0


def _require_policy_fits(scenario: Any, policy: Any, checkpoint: Path) -> None:
    """ConfigError when the scenario's observations are not what the policy was trained to read."""
    from sim.env import GridEnv

    shape = tuple(GridEnv(scenario, num_envs=1, seed=0).obs_shape)
    if shape != tuple(policy.config.obs_shape):
        raise ConfigError(
            f"scenario {scenario.name!r} gives observations of shape {shape}, the policy of {checkpoint} "
            f"reads {tuple(policy.config.obs_shape)} (evaluate it on scenarios like the one it learned)"
        )


def policy_identity(meta: dict[str, Any]) -> str:
    """What episode stores record as the policy: its kind and the checkpoint it came from."""
    kind = meta.get("policy_config", {}).get("name", "policy")
    return f"{kind} {meta.get('checkpoint', '')}".strip()


def checkpoint_label(meta: dict[str, Any]) -> str:
    """Which checkpoint a table evaluates: its path, whether it is best/ or a step, and its update."""
    path = Path(meta.get("checkpoint", ""))
    which = "best/" if path.parent.name == "best" else path.stem
    update = meta.get("update")
    return f"{path} ({which}" + (f", update {update})" if update is not None else ")")


def evaluate_and_report(
    scenario: Any,
    policy: Any,
    episodes: int,
    seed: int,
    device: Any,
    stem: Path,
    greedy: bool = False,
    record: Path | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Evaluate on every variant, print the table, save it as CSV and JSON (and the episodes to `record`).
    `meta`: the evaluated checkpoint's metadata (named above the table and in the recorded episodes)."""
    from marl.evaluate import evaluate_scenario

    meta = meta or {}
    # evaluation seeds are disjoint from training's (which start at the training seed)
    rows = evaluate_scenario(
        scenario,
        policy,
        episodes,
        seed + 1_000_003,
        device,
        greedy=greedy,
        record=record,
        policy_name=policy_identity(meta),
        progress=True,
    )
    _report(rows, stem, meta)
    if record is not None:
        print(f"episodes: {record}")


def evaluate_final_policy(
    scenario: Any, checkpoint: Path, episodes: int, seed: int, device: Any, run_dir: Path
) -> None:
    """The closing evaluation of a training run: the policy of `checkpoint` on every variant, reported as
    RUN_DIR/eval.csv and eval.json, its episodes in RUN_DIR/episodes.zarr."""
    from marl.run_dir import load_policy

    policy, meta = load_policy(checkpoint, device)
    evaluate_and_report(
        scenario,
        policy,
        episodes,
        seed,
        device,
        run_dir / "eval",
        record=run_dir / "episodes.zarr",
        meta=meta,
    )


def _report(rows: list[dict[str, Any]], stem: Path, meta: dict[str, Any]) -> None:
    from marl.evaluate import format_table, with_mean_row, write_report

    rows = with_mean_row(rows)
    if meta.get("checkpoint"):
        print(f"checkpoint: {checkpoint_label(meta)}")
    print(format_table(rows))
    write_report(rows, stem)
    print(f"evaluation: {stem.with_suffix('.csv')}, {stem.with_suffix('.json')}")
