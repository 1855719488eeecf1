"""The run directory: resolved config, metrics log, checkpoints, curves.

```
RUN_DIR/config.yaml            the resolved TrainConfig, the policy config and the scenario's source
RUN_DIR/metrics.jsonl          one JSON object per logged update
RUN_DIR/checkpoints/step-U.ckpt  the newest checkpoints (hpc.checkpoint: atomic, hashed, last few kept)
RUN_DIR/checkpoints/best/       the best checkpoint by config.best_metric
RUN_DIR/curves.png             training curves
RUN_DIR/tensorboard/           the metrics as TensorBoard event files (marl.watch; wandb/ with --wandb)
RUN_DIR/eval.csv, eval.json    the final evaluation table (a last "mean" row when there are variants)
```
Checkpoints are hpc.checkpoint files: a header with the payload's length and SHA-256, then tensors and
plain types loaded with torch.load(weights_only=True), so loading never runs pickled code; a truncated or
corrupted newest file is skipped for the previous one. Every write is atomic (`fsio.atomic_writer`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

import hpc
from fsio import atomic_writer

CHECKPOINT_FORMAT = "gridswarm-mappo-3"  # 3: environments and carries saved
KEEP_CHECKPOINTS = 3


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or belongs to another model or format (one-line message)."""


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    with atomic_writer(path) as handle:
        yaml.safe_dump(data, handle, sort_keys=False)


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line (non-finite floats become null so every line stays valid JSON)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    with path.open("a") as handle:
        handle.write(json.dumps(clean) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a metrics log (a last line cut short by a killed run is left out)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(path: Path, last_update: int) -> None:
    """Drop lines logged after `last_update` (a resumed run repeats the updates after its checkpoint)."""
    rows = [row for row in read_metrics(path) if row["update"] <= last_update]
    with atomic_writer(path) as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def save_run_checkpoint(
    run_dir: Path, update: int, tensors: dict[str, Any], meta: dict[str, Any], best: bool
) -> Path:
    """Write the checkpoint of `update` (keeping the newest KEEP_CHECKPOINTS), and into best/ when `best`."""
    stamped = {"format": CHECKPOINT_FORMAT, **meta}
    path = hpc.save_checkpoint(run_dir / "checkpoints", update, tensors, stamped, keep=KEEP_CHECKPOINTS)
    if best:
        hpc.save_checkpoint(run_dir / "checkpoints" / "best", update, tensors, stamped, keep=1)
    return path


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, meta) of one checkpoint file written by save_run_checkpoint; else a CheckpointError."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        tensors, meta = hpc.load_checkpoint(path)
    except hpc.CheckpointError as error:
        raise CheckpointError(str(error)) from None
    return _require_finite(path, tensors), _require_format(path, meta)


def has_checkpoints(run_dir: Path) -> bool:
    """Whether the run directory holds checkpoint files (intact or not)."""
    return bool(hpc.list_checkpoints(run_dir / "checkpoints"))


def latest_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """The newest intact checkpoint of a run: (tensors, meta, path); damaged newer ones are skipped with a
    message on stderr."""
    try:
        tensors, meta, path = hpc.load_latest(run_dir / "checkpoints")
    except hpc.HpcError as error:
        raise CheckpointError(str(error)) from None
    return _require_finite(path, tensors), _require_format(path, meta), path


def latest_update(run_dir: Path) -> int:
    """The update of the run's newest checkpoint file (0 when there is none)."""
    found = hpc.list_checkpoints(run_dir / "checkpoints")
    return found[-1][0] if found else 0


def resolve_checkpoint(target: Path) -> Path:
    """A checkpoint file as given; for a run directory its best checkpoint, else its newest one."""
    target = Path(target)
    if not target.is_dir():
        return target
    for directory in (target / "checkpoints" / "best", target / "checkpoints"):
        found = hpc.list_checkpoints(directory)
        if found:
            return found[-1][1]
    raise CheckpointError(
        f"{target}: a directory without checkpoints (expected {target}/checkpoints/step-*.ckpt)"
    )


def _require_finite(path: Path, tensors: dict[str, Any]) -> dict[str, Any]:
    found = hpc.first_non_finite(tensors.get("policy", {}), "policy")
    if found is not None:
        raise CheckpointError(
            f"{path}: non-finite weights in {found} (the run diverged); use a checkpoint written before "
            "it did, e.g. from checkpoints/best/"
        )
    return tensors


def _require_format(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    return meta


def plot_curves(metrics_path: Path, out_path: Path, keys: tuple[str, ...]) -> None:
    """curves.png: each logged key against agent-steps (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    present = [k for k in keys if any(row.get(k) is not None for row in rows)]
    if not rows or not present:
        return
    figure, axes = plt.subplots(len(present), 1, figsize=(7, 2.2 * len(present)), sharex=True, squeeze=False)
    for axis, key in zip(axes[:, 0], present, strict=True):
        points = [(row["agent_steps"], row[key]) for row in rows if row.get(key) is not None]
        axis.plot(*zip(*points, strict=True))
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("agent-steps")
    figure.tight_layout()
    with atomic_writer(out_path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=90)
    plt.close(figure)
