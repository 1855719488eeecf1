"""Watching a run while it trains: every logged row also goes to TensorBoard (by default) and W&B (opt-in).

`metrics.jsonl` stays the run's own record; a sink gets the same row at each logged update, keyed by
agent-steps. Tags are grouped as TensorBoard shows them: `episodes/CSR`, `losses/value_loss`,
`optimizer/lr`, `speed/agent_steps_per_s`, ... (`tag_of`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from optdeps import require

EPISODE_KEYS = frozenset({"CSR", "ISR", "ep_length", "SoC", "makespan", "avg_throughput", "episodes"})
LOSS_KEYS = frozenset({"policy_loss", "value_loss", "entropy", "explained_variance"})
OPTIMIZER_KEYS = frozenset({"lr", "grad_norm", "approx_kl", "clip_fraction", "minibatch_steps"})
NOT_LOGGED = frozenset({"update", "agent_steps"})  # the axes, not values


class MetricSink(Protocol):
    """Somewhere the rows of metrics.jsonl also go."""

    def log(self, row: Mapping[str, Any], agent_steps: int) -> None: ...

    def close(self) -> None: ...


def tag_of(key: str) -> str:
    """The grouped tag of a metrics.jsonl key."""
    if key in EPISODE_KEYS:
        return f"episodes/{key}"
    if key in LOSS_KEYS:
        return f"losses/{key}"
    if key in OPTIMIZER_KEYS:
        return f"optimizer/{key}"
    return f"speed/{key}" if key.endswith(("_per_s", "_seconds")) else f"other/{key}"


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    return {
        tag_of(key): float(value)
        for key, value in row.items()
        if key not in NOT_LOGGED
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


class TensorBoardSink:
    """TensorBoard event files under `directory` (`tensorboard --logdir RUN_DIR/tensorboard`).

    `resume_from`: the agent-steps of the checkpoint a resumed run continues from; events the earlier
    process wrote after it are purged, since the resumed run logs those updates again. The event file is
    opened at the first row (written after metrics.jsonl has it): a run that fails before its first row
    leaves no file behind."""

    def __init__(self, directory: Path, resume_from: int | None = None) -> None:
        self._directory = directory
        self._purge = None if resume_from is None else resume_from + 1
        self._writer: Any = None

    def log(self, row: Mapping[str, Any], agent_steps: int) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self._directory), purge_step=self._purge)
        for tag, value in _scalars(row).items():
            self._writer.add_scalar(tag, value, global_step=agent_steps)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class WandbSink:
    """A Weights & Biases run (the `wandb` extra). Without an API key and without
    WANDB_MODE it runs offline: the run is stored under RUN_DIR/wandb and `wandb sync` uploads it later."""

    def __init__(self, run_dir: Path, project: str, config: Mapping[str, Any], resume: bool) -> None:
        wandb = require("wandb", "wandb", "--wandb")
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self._wandb = wandb
        self._run = wandb.init(
            project=project,
            dir=str(run_dir),
            name=run_dir.name,
            id=_wandb_id(run_dir),
            config=dict(config),
            mode=mode,
            resume="allow" if resume else None,
        )

    def log(self, row: Mapping[str, Any], agent_steps: int) -> None:
        self._run.log({**_scalars(row), "agent_steps": agent_steps})

    def close(self) -> None:
        self._run.finish()


def _wandb_id(run_dir: Path) -> str:
    """A stable W&B run id per run directory, so that a resumed run continues the same W&B run."""
    import hashlib

    return hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
