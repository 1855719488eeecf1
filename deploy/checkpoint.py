"""Read the policy out of a training run or checkpoint file, never executing pickled code.

Training runs keep `hpc.checkpoint` files (integrity-checked, read with `torch.load(weights_only=True)`):

    RUN_DIR/checkpoints/best/step-U.ckpt   the best by the run's metric (preferred)
    RUN_DIR/checkpoints/step-U.ckpt        the newest ones

and marl stores the policy's `state_dict` under "policy" and its `PolicyConfig.to_dict()` under the
metadata's "policy_config" (format "gridswarm-mappo-<version>").
"""

from __future__ import annotations

from pathlib import Path

import memory
from deploy.errors import ExportError
from hpc.checkpoint import first_non_finite, load_checkpoint, load_latest
from hpc.errors import HpcError
from memory import SwarmPolicy

FORMAT_PREFIX = "gridswarm-mappo-"


def _read(source: Path) -> tuple[dict, dict, Path]:
    """(tensors, meta, file) of a checkpoint file, a checkpoints directory or a run directory."""
    try:
        if source.is_file():
            return (*load_checkpoint(source), source)
        for directory in (source / "checkpoints" / "best", source / "checkpoints", source):
            if directory.is_dir() and any(directory.glob("step-*.ckpt")):
                return load_latest(directory)
    except HpcError as error:
        raise ExportError(str(error)) from None
    if source.is_dir():
        raise ExportError(
            f"{source}: no step-*.ckpt in checkpoints/best/, checkpoints/ or the directory itself"
        )
    raise ExportError(f"{source}: no such run directory or checkpoint file")


def load_policy(source: str | Path) -> tuple[SwarmPolicy, dict]:
    """(policy in eval mode, {"checkpoint": file, "format", "step", "scenario"} of its metadata)."""
    tensors, meta, path = _read(Path(source))
    diverged = first_non_finite(tensors.get("policy", {}), "policy")
    if diverged is not None:
        raise ExportError(
            f"{path}: non-finite weights in {diverged} (the run diverged); export another checkpoint"
        )
    found = meta.get("format")
    if not isinstance(found, str) or not found.startswith(FORMAT_PREFIX):
        raise ExportError(
            f"{path}: checkpoint format {found!r}, expected {FORMAT_PREFIX}<version> (a marl run)"
        )
    try:
        policy = memory.policy_from_config(meta["policy_config"])
        policy.load_state_dict(tensors["policy"])
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        reason = str(error).strip().splitlines()[0][:160]
        raise ExportError(f"{path}: the policy does not match its config ({reason})") from None
    info = {key: meta.get(key) for key in ("format", "step", "agent_steps", "scenario")}
    return policy.eval(), {"checkpoint": str(path), **info}
