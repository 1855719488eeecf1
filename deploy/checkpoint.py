"""Read the policy out of a training run or checkpoint file, never executing pickled code.

The file format is marl's run-directory checkpoint: an `hpc.checkpoint` file (length- and SHA-256-checked,
loaded with `torch.load(weights_only=True)`) whose metadata has "format": "gridswarm-mappo-2" and the
"policy_config". deploy does not import marl (one-way imports), so the few lines that read it live here.
"""

from __future__ import annotations

from pathlib import Path

import hpc
import memory
from deploy.errors import ExportError
from memory import SwarmPolicy

CHECKPOINT_FORMAT = "gridswarm-mappo-2"
RUN_DIR_CHECKPOINTS = ("checkpoints/best", "checkpoints")


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or the best (else newest) checkpoint of a run directory."""
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        for name in RUN_DIR_CHECKPOINTS:
            found = hpc.list_checkpoints(path / name)
            if found:
                return found[-1][1]
        raise ExportError(f"{path}: a directory without checkpoints ({path}/checkpoints/step-*.ckpt)")
    raise ExportError(f"{path}: no such run directory or checkpoint file")


def load_policy(source: str | Path) -> tuple[SwarmPolicy, dict]:
    """(policy in eval mode, the checkpoint's metadata plus its "checkpoint" path)."""
    path = resolve_checkpoint(source)
    try:
        payload, meta = hpc.load_checkpoint(path)
    except hpc.CheckpointError as error:
        raise ExportError(f"not a readable GridSwarm checkpoint: {error}") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ExportError(f"{path}: checkpoint format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    try:
        policy = memory.policy_from_config(meta["policy_config"])
        policy.load_state_dict(payload["policy"])
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        reason = str(error).strip().splitlines()[0][:160]
        raise ExportError(f"{path}: the policy does not match its config ({reason})") from None
    return policy.eval(), {**meta, "checkpoint": str(path)}
