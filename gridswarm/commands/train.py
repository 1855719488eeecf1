"""`gridswarm train SCENARIO [--model ...] [--steps N] [--seed S] [--out DIR] [--device ...] [--set k=v]`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import scenarios
from marl.config import MODEL_NAMES, ConfigError, parse_assignments, resolve_config
from marl.envs import make_training_envs
from marl.evaluate import evaluate_scenario, format_table, write_report
from marl.run_dir import CheckpointError, load_checkpoint
from marl.train import pick_device, train

USER_ERRORS = (ConfigError, CheckpointError, scenarios.ScenarioError)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train", help="train a swarm policy with MAPPO on a scenario",
        description="Hyperparameters come from marl.config.TrainConfig, then the scenario's train block, "
        "then --set key=value and the flags below. The run directory gets config.yaml, metrics.jsonl, "
        "checkpoints/latest.pt and best.pt, curves.png and the evaluation table (eval.csv, eval.json).")
    parser.add_argument("scenario", help="built-in scenario name or YAML file")
    parser.add_argument("--model", choices=MODEL_NAMES, help="policy architecture (default: srmt)")
    parser.add_argument("--steps", type=int, help="training length in agent-steps")
    parser.add_argument("--seed", type=int, help="seed of environments, initialization and sampling")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/SCENARIO-MODEL-sSEED)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the policy runs")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from latest.pt")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="any TrainConfig field, e.g. --set lr=3e-4 (repeatable)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    scenario = scenarios.load(args.scenario)
    if scenario.observation.type != "default":
        raise ConfigError(f"scenario {scenario.name!r}: observation.type {scenario.observation.type!r}; "
                          "training needs 'default'")
    flags = {"model": args.model, "total_agent_steps": args.steps, "seed": args.seed, "device": args.device}
    overrides = {**parse_assignments(args.assignments), **{k: v for k, v in flags.items() if v is not None}}
    config = resolve_config(scenario.train, overrides, scenario.source or scenario.name)
    out = args.out or Path("runs") / f"{scenario.name}-{config.model}-s{config.seed}"
    device = pick_device(config.device)
    try:
        env = make_training_envs(scenario, config.num_envs, config.seed)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    print(f"training {config.model} on {scenario.name} ({env.num_envs} envs x {env.num_agents} agents, "
          f"{config.total_agent_steps:,} agent-steps, {device}) -> {out}")
    scenario_id = {"scenario": scenario.source or scenario.name}
    learner = train(env, config, out, resume=args.resume, extra_meta=scenario_id)
    if config.eval_episodes > 0:
        policy = learner.policy
        best = out / "checkpoints" / "best.pt"
        if best.exists():
            policy.load_state_dict(load_checkpoint(best)[0]["policy"])
        evaluate_and_report(scenario, policy, config.eval_episodes, config.seed, device, out / "eval")
    return 0


def evaluate_and_report(scenario: Any, policy: Any, episodes: int, seed: int, device: Any,
                        stem: Path) -> None:
    """Evaluate on every variant, print the table, save it as CSV and JSON."""
    from sim.env import GridEnv

    # evaluation seeds are disjoint from training's (which start at the training seed)
    rows = evaluate_scenario(scenario, policy, episodes, seed + 1_000_003, device,
                             lambda s, n, k: GridEnv(s, n, seed=k))
    print(format_table(rows))
    write_report(rows, stem)
    print(f"evaluation: {stem.with_suffix('.csv')}, {stem.with_suffix('.json')}")
