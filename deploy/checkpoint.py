"""Read the policy out of a training run or checkpoint file, never executing pickled code.

The file format is marl's run-directory checkpoint (torch.save of tensors plus a JSON "meta" string with
"format": "gridswarm-mappo-1" and the "policy_config"); deploy does not import marl (one-way imports), so the
few lines that read it live here, with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import memory
from deploy.errors import ExportError
from memory import SwarmPolicy

CHECKPOINT_FORMAT = "gridswarm-mappo-1"
RUN_DIR_CHECKPOINTS = ("checkpoints/best.pt", "checkpoints/latest.pt")


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or the best (else latest) checkpoint of a run directory."""
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        for name in RUN_DIR_CHECKPOINTS:
            if (path / name).is_file():
                return path / name
        raise ExportError(f"{path}: a directory without {' or '.join(RUN_DIR_CHECKPOINTS)}")
    raise ExportError(f"{path}: no such run directory or checkpoint file")


def load_policy(source: str | Path) -> tuple[SwarmPolicy, dict]:
    """(policy in eval mode, the checkpoint's metadata plus its "checkpoint" path)."""
    path = resolve_checkpoint(source)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(payload["meta"])
    except Exception as error:  # torch raises many types for damaged, foreign or unsafe files
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ExportError(f"{path}: not a readable GridSwarm checkpoint ({reason})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ExportError(f"{path}: checkpoint format {found!r}, expected {CHECKPOINT_FORMAT!r}")
    try:
        policy = memory.policy_from_config(meta["policy_config"])
        policy.load_state_dict(payload["policy"])
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        reason = str(error).strip().splitlines()[0][:160]
        raise ExportError(f"{path}: the policy does not match its config ({reason})") from None
    return policy.eval(), {**meta, "checkpoint": str(path)}
