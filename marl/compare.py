"""Several runs side by side: learning curves as the mean and spread over the seeds of each model, and a
table of final metrics (`gridswarm runs compare RUN...`).

A run's final metrics are its closing evaluation (eval.json: the mean row over the variants, or its only
row), else the episode metrics of its last `FINAL_WINDOW` logged updates. Runs are grouped by model (and by
scenario when the runs cover several).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fsio import atomic_writer
from marl.run_dir import CheckpointError, read_metrics, read_run_config

FINAL_KEYS = ("CSR", "ISR", "ep_length", "avg_throughput")
CURVE_KEYS = ("CSR", "ISR", "ep_length", "avg_throughput", "entropy", "explained_variance")
FINAL_WINDOW = 10


@dataclass(frozen=True)
class Run:
    """One run directory's record."""

    path: Path
    model: str
    seed: int
    scenario: str
    rows: list[dict[str, Any]]  # metrics.jsonl
    final: dict[str, float]  # final metrics
    final_source: str  # "eval" or "last N updates"

    @property
    def agent_steps(self) -> int:
        return int(self.rows[-1]["agent_steps"]) if self.rows else 0


def load_run(path: Path) -> Run:
    """A run directory's config, metrics log and final metrics; CheckpointError if it is not a run."""
    config_path, metrics_path = path / "config.yaml", path / "metrics.jsonl"
    if not config_path.is_file() or not metrics_path.is_file():
        raise CheckpointError(f"{path}: not a run directory (expected config.yaml and metrics.jsonl)")
    config = read_run_config(path)
    try:
        train_config = config["train_config"]
        model, seed, scenario = str(train_config["model"]), int(train_config["seed"]), str(config["scenario"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(
            f"{config_path}: expected train_config.model, train_config.seed, scenario"
        ) from None
    rows = read_metrics(metrics_path)
    final, source = _final_metrics(path, rows)
    return Run(path, model, seed, Path(scenario).stem, rows, final, source)


def _final_metrics(path: Path, rows: list[dict[str, Any]]) -> tuple[dict[str, float], str]:
    evaluation = path / "eval.json"
    if evaluation.is_file():
        try:
            table = json.loads(evaluation.read_text())
        except json.JSONDecodeError:
            raise CheckpointError(f"{evaluation}: not valid JSON") from None
        if not isinstance(table, list) or not all(isinstance(row, dict) for row in table):
            raise CheckpointError(f"{evaluation}: expected a list of evaluation rows")
        summary = next((row for row in table if row.get("variant") == "mean"), table[-1] if table else {})
        return {k: float(summary[k]) for k in FINAL_KEYS if isinstance(summary.get(k), int | float)}, "eval"
    recent = rows[-FINAL_WINDOW:]
    final = {}
    for key in FINAL_KEYS:
        values = [row[key] for row in recent if row.get(key) is not None]
        if values:
            final[key] = float(np.mean(values))
    return final, f"last {len(recent)} updates"


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs by model, or by "scenario model" when they cover several scenarios (in first-seen order)."""
    several = len({run.scenario for run in runs}) > 1
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(f"{run.scenario} {run.model}" if several else run.model, []).append(run)
    return groups


def smoothed_curve(run: Run, key: str, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(agent-steps, the trailing mean of `key` over `window` logged updates), where `key` was logged."""
    points = [(row["agent_steps"], row[key]) for row in run.rows if row.get(key) is not None]
    if not points:
        return np.zeros(0), np.zeros(0)
    steps, values = (np.asarray(column, dtype=np.float64) for column in zip(*points, strict=True))
    sums = np.cumsum(np.insert(values, 0, 0.0))
    starts = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    return steps, (sums[1:] - sums[starts]) / (np.arange(1, len(values) + 1) - starts)


def group_curve(runs: Sequence[Run], key: str, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(agent-steps, mean, std) over the runs of a group, on the agent-steps every run covers (each run's
    smoothed curve interpolated onto the first run's points there)."""
    curves = [smoothed_curve(run, key, window) for run in runs]
    curves = [curve for curve in curves if curve[0].size]
    if not curves:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    low, high = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
    grid = curves[0][0][(curves[0][0] >= low) & (curves[0][0] <= high)]
    stacked = np.stack([np.interp(grid, steps, values) for steps, values in curves])  # (runs, points)
    return grid, stacked.mean(axis=0), stacked.std(axis=0)


def final_table(groups: dict[str, list[Run]]) -> list[dict[str, Any]]:
    """One row per run, then one per group with several runs: "mean ± std" of each final metric."""
    table = []
    for label, runs in groups.items():
        for run in runs:
            row = {"run": str(run.path), "model": label, "seed": run.seed, "agent_steps": run.agent_steps}
            table.append({**row, **{k: f"{v:.3g}" for k, v in run.final.items()}, "final": run.final_source})
        if len(runs) > 1:
            summary: dict[str, Any] = {"run": f"{label}: {len(runs)} seeds", "model": label, "seed": ""}
            summary["agent_steps"] = ""
            for key in FINAL_KEYS:
                values = [run.final[key] for run in runs if key in run.final]
                if values:
                    summary[key] = f"{np.mean(values):.3g} ± {np.std(values):.2g}"
            table.append(summary)
    return table


def plot_groups(groups: dict[str, list[Run]], keys: Sequence[str], window: int, out: Path) -> list[str]:
    """A PNG with one panel per key logged by any run: each group's mean curve and a ±1 std band over its
    seeds. Returns the keys drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [
        k for k in keys if any(row.get(k) is not None for rs in groups.values() for r in rs for row in r.rows)
    ]
    if not drawn:
        return []
    figure, axes = plt.subplots(len(drawn), 1, figsize=(7, 2.4 * len(drawn)), sharex=True, squeeze=False)
    for axis, key in zip(axes[:, 0], drawn, strict=True):
        for label, runs in groups.items():
            steps, mean, std = group_curve(runs, key, window)
            if steps.size:
                (line,) = axis.plot(steps, mean, label=f"{label} (n={len(runs)})")
                axis.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[0, 0].legend(loc="best", fontsize=8, title=f"mean ± std over seeds, {window}-update mean")
    axes[-1, 0].set_xlabel("agent-steps")
    figure.tight_layout()
    with atomic_writer(out, "wb") as handle:
        figure.savefig(handle, format="png", dpi=90)
    plt.close(figure)
    return drawn
