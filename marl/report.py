"""Evaluation reports: the table of `marl.evaluate`'s rows (a last "mean" row over variants), printed and
written as CSV and JSON, for `gridswarm eval` and the closing evaluation of a training or imitation run
(RUN_DIR/eval.csv, eval.json, its episodes in RUN_DIR/episodes.zarr)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from fsio import atomic_writer
from marl.seeds import evaluation_seed


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
    rows = evaluate_scenario(
        scenario,
        policy,
        episodes,
        evaluation_seed(seed),
        device,
        greedy=greedy,
        record=record,
        policy_name=policy_identity(meta),
        progress=True,
    )
    report(rows, stem, meta)
    if record is not None:
        print(f"episodes: {record}")


def evaluate_final_policy(
    scenario: Any, policy: Any, meta: dict[str, Any], episodes: int, seed: int, device: Any, run_dir: Path
) -> None:
    """The closing evaluation of a run: `policy` (of the checkpoint `meta` describes) on every variant,
    reported as RUN_DIR/eval.csv and eval.json, its episodes in RUN_DIR/episodes.zarr."""
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


def report(rows: list[dict[str, Any]], stem: Path, meta: dict[str, Any]) -> None:
    """Print the checkpoint's label and the table (with its mean row) and write stem.csv and stem.json."""
    rows = with_mean_row(rows)
    if meta.get("checkpoint"):
        print(f"checkpoint: {checkpoint_label(meta)}")
    print(format_table(rows))
    write_report(rows, stem)
    print(f"evaluation: {stem.with_suffix('.csv')}, {stem.with_suffix('.json')}")


def with_mean_row(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows and, when there are several, a last row "mean": each numeric column's mean over the rows
    (every variant weighs the same) and the total episode count."""
    if len(rows) < 2:
        return rows
    columns = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in ("variant", "episodes")]
    mean: dict[str, Any] = {"variant": "mean", "episodes": sum(int(row.get("episodes", 0)) for row in rows)}
    for column in columns:
        values = [row[column] for row in rows if isinstance(row.get(column), int | float)]
        if values:
            mean[column] = float(np.mean(values))
    return [*rows, mean]


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table, one line per row, columns aligned."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_report(rows: list[dict[str, Any]], stem: Path) -> None:
    """stem.csv and stem.json, written atomically."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_writer(stem.with_suffix(".csv")) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    with atomic_writer(stem.with_suffix(".json")) as handle:
        json.dump(rows, handle, indent=1)
