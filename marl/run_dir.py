"""The run directory: resolved config, metrics log, checkpoints, curves.

```
RUN_DIR/config.yaml            the resolved TrainConfig, the policy config and the scenario's source
RUN_DIR/metrics.jsonl          one JSON object per logged update
RUN_DIR/checkpoints/latest.pt  the newest checkpoint; best.pt the best by config.best_metric
RUN_DIR/curves.png             training curves
RUN_DIR/eval.csv, eval.json    the final evaluation table
```
Checkpoints hold only tensors and plain types (torch.save of a dict; the metadata is a JSON string) and
are loaded with torch.load(weights_only=True), so loading never runs pickled code. Every write is atomic:
a temporary file in the same directory, fsync, rename.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
import yaml

CHECKPOINT_FORMAT = "gridswarm-mappo-1"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or belongs to another model or format (one-line message)."""


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file next to `path` and move it into place only when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    with atomic_writer(path) as handle:
        yaml.safe_dump(data, handle, sort_keys=False)


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line (non-finite floats become null so every line stays valid JSON)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    with path.open("a") as handle:
        handle.write(json.dumps(clean) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: Path, last_update: int) -> None:
    """Drop lines logged after `last_update` (a resumed run repeats the updates after its checkpoint)."""
    rows = [row for row in read_metrics(path) if row["update"] <= last_update]
    with atomic_writer(path) as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def save_checkpoint(path: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """torch.save of {tensors..., "meta": JSON string}; atomic."""
    payload = {**tensors, "meta": json.dumps({"format": CHECKPOINT_FORMAT, **meta})}
    with atomic_writer(path, "wb") as handle:
        torch.save(payload, handle)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, meta) of a checkpoint written by save_checkpoint; anything else is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(payload.pop("meta"))
    except Exception as error:  # torch raises many types for a damaged or foreign file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a readable GridSwarm checkpoint ({reason[:160]})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                              f"expected {CHECKPOINT_FORMAT!r}")
    return payload, meta


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

