"""`gridswarm train SCENARIO [--model ...] [--steps N] [--seed S] [--out DIR] [--device ...] [--set k=v]
[--resume [RUN_DIR|auto]]`, as one process or as every rank of `mpiexec -n R` / `srun`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import scenarios
from fsio import control_character, path_component
from gridswarm.arguments import TRAINING_ERRORS, integer, seed
from marl.config import ConfigError, parse_assignments, resolve_config, stored_train_config
from memory.config import POLICY_NAMES

if TYPE_CHECKING:
    from marl.train import TrainingPlan
    from marl.watch import MetricSink

USER_ERRORS = TRAINING_ERRORS


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a swarm policy with MAPPO on a scenario (one process, mpiexec or srun)",
        description="Hyperparameters come from marl.config.TrainConfig, then the scenario's train block, "
        "then --set key=value and the flags below. The run directory gets config.yaml, metrics.jsonl, "
        "checkpoints/step-*.ckpt (and best/), curves.png and the evaluation table (eval.csv, eval.json). "
        "Under mpiexec -n R or srun every rank runs its own environments; gradients are averaged and "
        "only rank 0 writes.",
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        help="built-in scenario name or YAML file (default with --resume RUN_DIR: the run's)",
    )
    parser.add_argument("--model", choices=POLICY_NAMES, help="policy architecture (default: srmt)")
    parser.add_argument(
        "--steps",
        type=integer(1, 2**62),
        help="training length in agent-steps, the total over all ranks, rounded to whole updates (printed "
        "before training starts); with --resume, a larger value extends a finished run (a linear "
        "learning-rate schedule is then stretched over the new length)",
    )
    parser.add_argument("--seed", type=seed, help="seed of environments, initialization and sampling")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/SCENARIO-MODEL-sSEED)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the policy runs")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="yes",
        metavar="RUN_DIR|auto",
        help="continue a run from its newest intact checkpoint: --resume RUN_DIR, or bare "
        "--resume for --out; 'auto' resumes --out when it holds checkpoints and starts it "
        "otherwise (what the SLURM templates use, so a requeued job continues)",
    )
    parser.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="start from the policy weights of a checkpoint, run directory or pretrained:NAME "
        "(weights only; its architecture and observation shape must match; fresh optimizer)",
    )
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any TrainConfig field, e.g. --set lr=3e-4 (repeatable)",
    )
    parser.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="do not write TensorBoard event files (default: RUN_DIR/tensorboard)",
    )
    parser.add_argument(
        "--wandb",
        nargs="?",
        const="gridswarm",
        type=wandb_project,
        metavar="PROJECT",
        help='also log to Weights & Biases (pip install "gridswarm[wandb]"); offline into RUN_DIR/wandb '
        "unless WANDB_API_KEY or WANDB_MODE says otherwise",
    )
    parser.set_defaults(handler=run)


def _resume_target(args: argparse.Namespace) -> tuple[bool | str, Path | None]:
    """(train's `resume` argument, the run directory named by --resume RUN_DIR or None)."""
    if args.resume is None:
        return False, None
    if args.resume == "auto":
        return "auto", None
    if args.resume == "yes":
        if args.out is None:
            raise ConfigError("--resume without a run directory needs --out RUN_DIR")
        return True, None
    run_dir = Path(args.resume)
    if args.out is not None and args.out.resolve() != run_dir.resolve():
        raise ConfigError(f"--resume {run_dir} and --out {args.out} name different run directories")
    return True, run_dir


def _saved_run(run_dir: Path) -> dict[str, Any]:
    from marl.run_dir import CheckpointError, read_run_config

    saved = read_run_config(run_dir)
    if not isinstance(saved.get("train_config"), dict) or not isinstance(saved.get("scenario"), str):
        raise CheckpointError(
            f"{run_dir / 'config.yaml'}: expected the keys train_config (a mapping) and scenario (a name)"
        )
    return saved


def run(args: argparse.Namespace) -> int:
    import hpc
    from marl.envs import make_training_envs, require_window_observation
    from marl.report import evaluate_final_policy
    from marl.run_dir import (
        final_checkpoint_meta,
        has_checkpoints,
        latest_update,
        run_scenario,
        scenario_meta,
        scenario_reference,
    )
    from marl.train import TrainingPlan, TrainingStopped, train

    resume, resume_dir = _resume_target(args)
    saved = _saved_run(resume_dir) if resume_dir is not None else None
    scenario_name = args.scenario or (saved["scenario"] if saved else None)
    if scenario_name is None:
        raise ConfigError("name a scenario (or resume a run directory with --resume RUN_DIR)")
    scenario_ref = scenario_reference(scenario_name)
    resumed = resume_dir or (args.out if resume and args.out is not None else None)
    recorded = _saved_run(resumed) if resumed is not None and (resumed / "config.yaml").is_file() else None
    if recorded is not None and recorded["scenario"] != scenario_ref:
        raise ConfigError(
            f"--resume {resumed}: the run trains on {recorded['scenario']!r}, not {scenario_ref!r} "
            "(leave the scenario out to continue it, or train into another --out)"
        )
    # a resumed run plays its scenario as it was loaded when the run started, whatever became of the file
    if recorded is None:
        scenario = scenarios.load(scenario_name)
    else:
        scenario = run_scenario(recorded, resumed / "config.yaml")
    require_window_observation(scenario)
    flags = {"model": args.model, "total_agent_steps": args.steps, "seed": args.seed, "device": args.device}
    overrides = {**parse_assignments(args.assignments), **{k: v for k, v in flags.items() if v is not None}}
    base = stored_train_config(saved["train_config"]) if saved else scenario.train
    config = resolve_config(base, overrides, scenario.source or scenario.name)
    default_out = Path("runs") / path_component(f"{scenario.name}-{config.model}-s{config.seed}")
    out = resume_dir or args.out or default_out
    comm = hpc.get_comm()
    device = hpc.device_for_rank(config.device, comm.local_rank)
    try:
        env = make_training_envs(scenario, config.num_envs, config.seed)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    say = print if comm.is_root else _quiet
    ranks = f" on each of {comm.size} ranks" if comm.size > 1 else ""
    plan = TrainingPlan.of(config, env.num_envs, env.num_agents, comm.size)
    if resume and has_checkpoints(out) and latest_update(out) >= plan.num_updates:
        say(
            f"{out}: finished ({latest_update(out)} of {plan.describe(config.total_agent_steps)}); nothing "
            "to do (a larger --steps extends it)"
        )
        return 0
    say(
        f"training {config.model} on {scenario.name} ({env.num_envs} envs x {env.num_agents} agents{ranks}, "
        f"{plan.describe(config.total_agent_steps)}, {device}) -> {out}"
    )
    resuming = bool(resume) and has_checkpoints(out)
    sinks = _sinks(args, out, config, plan, resuming) if comm.is_root else []
    try:
        learner = train(
            env,
            config,
            out,
            resume=resume,
            echo=say,
            comm=comm,
            extra_meta=scenario_meta(scenario, scenario_name),
            sinks=sinks,
            init=args.init,
            closing_episodes=config.eval_episodes * len(scenarios.expand_variants(scenario)),
        )
    except TrainingStopped as stopped:
        if comm.is_root:
            print(f"gridswarm train: {stopped}", file=sys.stderr)
        # a requeued job ends normally (SLURM restarts it); a stopped run outside SLURM did not finish
        return 0 if stopped.requeued else 1
    finally:
        for sink in sinks:
            sink.close()
    if config.eval_episodes > 0 and comm.is_root:
        # the final policy, not best/: a saturating best_metric (CSR 1.0) freezes best/ at its first hit
        final = final_checkpoint_meta(out, learner.policy, plan.num_updates)
        evaluate_final_policy(scenario, learner.policy, final, config.eval_episodes, config.seed, device, out)
    return 0


def _sinks(
    args: argparse.Namespace, out: Path, config: Any, plan: TrainingPlan, resuming: bool
) -> list[MetricSink]:
    """Where the metrics rows also go: TensorBoard unless --no-tensorboard, W&B with --wandb."""
    from marl.run_dir import latest_update
    from marl.watch import TensorBoardSink, WandbSink

    resume_from = latest_update(out) * plan.steps_per_update if resuming else None
    sinks: list[MetricSink] = []
    if args.tensorboard:
        sinks.append(TensorBoardSink(out / "tensorboard", resume_from))
        print(f"TensorBoard: tensorboard --logdir {out / 'tensorboard'}")
    if args.wandb:
        try:
            sinks.append(WandbSink(out, args.wandb, config.to_dict(), resuming))
        except ImportError as error:
            raise ConfigError(str(error)) from None
    return sinks


def wandb_project(text: str) -> str:
    """An argparse type: a W&B project name (1 to 128 characters, none of W&B's reserved / \\ # ? % :)."""
    if not 1 <= len(text) <= 128 or any(c in text for c in "/\\#?%:") or control_character(text):
        raise argparse.ArgumentTypeError(
            f"expected a W&B project name (1 to 128 characters without / \\ # ? % : or control "
            f"characters), found {text[:40]!r}"
        )
    return text


def _quiet(line: str) -> None:
    """Ranks other than 0 print nothing."""
