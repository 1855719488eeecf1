"""The run directory: resolved config, metrics log, checkpoints, curves.

```
RUN_DIR/config.yaml            the resolved TrainConfig, the policy config, the scenario's name or file
                               (`scenario`) and the scenario itself as loaded (`scenario_spec`)
RUN_DIR/metrics.jsonl          one JSON object per logged update
RUN_DIR/checkpoints/step-U.ckpt  the newest checkpoints (hpc.checkpoint: atomic, hashed, last few kept)
RUN_DIR/checkpoints/best/       the best checkpoint by config.best_metric
RUN_DIR/curves.png             training curves
RUN_DIR/tensorboard/           the metrics as TensorBoard event files (marl.watch; wandb/ with --wandb)
RUN_DIR/eval.csv, eval.json    the final evaluation table (a last "mean" row when there are variants)
```
Wherever a checkpoint is accepted (`resolve_checkpoint`), `pretrained:NAME` names a policy shipped with
GridSwarm: `marl/pretrained/NAME.ckpt` (the policy weights and config only) with its manifest NAME.yaml
(description, training recipe and command, data, seed, metrics, size; `pretrained_policies`).
Checkpoints are hpc.checkpoint files: a header with the payload's length and SHA-256, then tensors and
plain types loaded with torch.load(weights_only=True), so loading never runs pickled code; a truncated or
corrupted newest file is skipped for the previous one. Every write is atomic (`fsio.atomic_writer`).
Checkpoints carry config.yaml's keys too, so a checkpoint file alone names its policy and scenario.
The run keeps its scenario as it was loaded when the run started (`run_scenario`): editing or removing the
YAML file afterwards changes neither a resumed run nor the evaluation of a finished one.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

import hpc
import memory
import scenarios
from fsio import atomic_write_bytes, atomic_writer, read_text_bounded

CHECKPOINT_FORMAT = "gridswarm-mappo-3"  # 3: environments and carries saved
KEEP_CHECKPOINTS = 3
PRETRAINED_PREFIX = "pretrained:"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
MAX_PRETRAINED_BYTES = 5 * 1024 * 1024
MAX_CONFIG_BYTES = 16 << 20
MANIFEST_KEYS = ("name", "description", "checkpoint", "size_bytes", "sha256", "scenario", "recipe",
                 "command", "data", "seed", "metrics")  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or belongs to another model or format (one-line message)."""


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    with atomic_writer(path) as handle:
        yaml.safe_dump(data, handle, sort_keys=False)


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/config.yaml as a mapping; a one-line CheckpointError when it is missing or unreadable."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no config.yaml (not a GridSwarm run directory)")
    try:
        saved = yaml.safe_load(read_text_bounded(path, MAX_CONFIG_BYTES))
    except (OSError, yaml.YAMLError) as error:
        raise CheckpointError(f"{path}: not a readable run configuration ({type(error).__name__})") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: not a run configuration (expected a mapping)")
    return saved


def scenario_reference(name: str) -> str:
    """What a run records as its scenario's name: a built-in's name, or a file's absolute path."""
    if not Path(name).is_file() and name in scenarios.builtin_names():
        return name
    return str(Path(name).resolve())


def scenario_meta(scenario: scenarios.Scenario, name: str) -> dict[str, Any]:
    """The run's record of its scenario (config.yaml and every checkpoint): the name it was given
    (`scenario_reference`) and the scenario as loaded (`scenarios.to_dict`, which `run_scenario` reads)."""
    return {"scenario": scenario_reference(name), "scenario_spec": scenarios.to_dict(scenario)}


def run_scenario(meta: dict[str, Any], where: Path | str) -> scenarios.Scenario:
    """The scenario a run trained on, from its config.yaml or a checkpoint's metadata (`where` names it in
    errors): the stored `scenario_spec`, or, for a record without one, its `scenario` loaded again."""
    spec = meta.get("scenario_spec")
    if spec is None:
        name = meta.get("scenario")
        if not isinstance(name, str):
            raise CheckpointError(f"{where}: no scenario recorded; pass --scenario")
        return scenarios.load(name)
    if not isinstance(spec, dict):
        raise CheckpointError(f"{where}: scenario_spec is not a mapping of scenario keys")
    return scenarios.loads(yaml.safe_dump(spec, sort_keys=False), source=f"{where}[scenario_spec]")


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


def progress_lines(run_dir: Path) -> list[str]:
    """A run's progress in two lines: its last metrics record and its newest checkpoint."""
    rows = read_metrics(run_dir / "metrics.jsonl")
    shown = ", ".join(f"{key}={_short(value)}" for key, value in rows[-1].items()) if rows else ""
    found = hpc.list_checkpoints(run_dir / "checkpoints")
    return [
        f"metrics: {len(rows)} records; last: {shown}" if rows else "metrics: none yet",
        f"checkpoints: {len(found)}, newest step {found[-1][0]}" if found else "checkpoints: none",
    ]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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


def read_checkpoint(target: Path | str) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """(tensors, meta, path) of the checkpoint `target` names: a file; `pretrained:NAME`; a run directory
    (its best checkpoint, else its newest one) or a directory of step-*.ckpt files (its newest). In a
    directory a damaged newer file is skipped, with a message on stderr, for the previous one."""
    if str(target).startswith(PRETRAINED_PREFIX):
        path = pretrained_checkpoint(str(target)[len(PRETRAINED_PREFIX) :])
        return (*load_checkpoint(path), path)
    target = Path(target)
    if target.is_dir():
        return _load_newest(_checkpoint_directory(target))
    if not target.is_file():
        raise CheckpointError(f"{target}: no such run directory or checkpoint file")
    return (*load_checkpoint(target), target)


def load_policy(target: Path | str, device: torch.device | str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The policy of the checkpoint `target` names (`read_checkpoint`), in eval mode on `device`, and the
    checkpoint's metadata with its path under "checkpoint"."""
    tensors, meta, path = read_checkpoint(target)
    try:
        policy = memory.policy_from_config(meta["policy_config"])
        policy.load_state_dict(tensors["policy"])
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: policy does not match its config ({reason})") from None
    return policy.to(device).eval(), {**meta, "checkpoint": str(path)}


def final_checkpoint_meta(run_dir: Path, policy: Any, update: int) -> dict[str, Any]:
    """What a report says of the policy a run ended with, its checkpoint of `update`, without reading the
    checkpoint back: the file, the update and the policy config (as `load_policy`'s metadata has them)."""
    path = hpc.checkpoint_path(run_dir / "checkpoints", update)
    return {"checkpoint": str(path), "update": update, "policy_config": policy.config.to_dict()}


def has_checkpoints(run_dir: Path) -> bool:
    """Whether the run directory holds checkpoint files (intact or not)."""
    return bool(hpc.list_checkpoints(run_dir / "checkpoints"))


def latest_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """The newest intact checkpoint of a run: (tensors, meta, path); damaged newer ones are skipped with a
    message on stderr."""
    return _load_newest(run_dir / "checkpoints")


def _load_newest(directory: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    try:
        tensors, meta, path = hpc.load_latest(directory)
    except hpc.HpcError as error:
        raise CheckpointError(str(error)) from None
    return _require_finite(path, tensors), _require_format(path, meta), path


def latest_update(run_dir: Path) -> int:
    """The update of the run's newest checkpoint file (0 when there is none)."""
    found = hpc.list_checkpoints(run_dir / "checkpoints")
    return found[-1][0] if found else 0


def resolve_checkpoint(target: Path | str) -> Path:
    """The checkpoint file `target` names without reading it: a file as given; for a run directory its
    best checkpoint, else its newest one (the newest step-*.ckpt of a directory of them); for
    `pretrained:NAME` the shipped policy NAME's checkpoint."""
    if str(target).startswith(PRETRAINED_PREFIX):
        return pretrained_checkpoint(str(target)[len(PRETRAINED_PREFIX) :])
    target = Path(target)
    if not target.is_dir():
        return target
    return hpc.list_checkpoints(_checkpoint_directory(target))[-1][1]


def _checkpoint_directory(target: Path) -> Path:
    """Where a directory keeps the checkpoints to read: checkpoints/best/, checkpoints/ or itself."""
    for directory in (target / "checkpoints" / "best", target / "checkpoints", target):
        if hpc.list_checkpoints(directory):
            return directory
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


@dataclass(frozen=True)
class PretrainedPolicy:
    """A policy shipped as package data: its checkpoint and manifest (MANIFEST_KEYS)."""

    name: str
    checkpoint: Path
    description: str
    manifest: dict[str, Any]


def pretrained_policies() -> list[PretrainedPolicy]:
    """Every shipped policy (a NAME.yaml manifest in PRETRAINED_DIR), by name."""
    policies = []
    for path in sorted(PRETRAINED_DIR.glob("*.yaml")) if PRETRAINED_DIR.is_dir() else []:
        manifest = yaml.safe_load(path.read_text())
        if not isinstance(manifest, dict) or set(MANIFEST_KEYS) - set(manifest):
            missing = sorted(set(MANIFEST_KEYS) - set(manifest)) if isinstance(manifest, dict) else []
            raise CheckpointError(f"{path}: not a pretrained-policy manifest (missing: {', '.join(missing)})")
        checkpoint = path.with_name(str(manifest["checkpoint"]))
        policies.append(PretrainedPolicy(path.stem, checkpoint, str(manifest["description"]), manifest))
    return policies


def pretrained_checkpoint(name: str) -> Path:
    """The checkpoint file of the shipped policy `name`; a one-line CheckpointError for an unknown name."""
    policies = {policy.name: policy for policy in pretrained_policies()}
    if name not in policies:
        shipped = ", ".join(policies) or "none are shipped"
        raise CheckpointError(f"{PRETRAINED_PREFIX}{name}: no such pretrained policy (shipped: {shipped})")
    return policies[name].checkpoint


def pack_pretrained(
    source: Path | str, out_dir: Path, name: str, description: str, manifest: Mapping[str, Any]
) -> PretrainedPolicy:
    """Write the policy of checkpoint `source` as a shipped policy: out_dir/NAME.ckpt (the weights, the
    policy config and the scenario; no optimizer, environments or RNG states) and out_dir/NAME.yaml (the
    manifest: `manifest`'s recipe, command, data, seed and metrics plus the size and SHA-256 of the
    file). A checkpoint over MAX_PRETRAINED_BYTES is refused."""
    tensors, meta, _ = read_checkpoint(source)
    slim_meta = {"format": CHECKPOINT_FORMAT, "pretrained": name}
    kept = ("policy_config", "scenario", "scenario_spec", "train_config")
    slim_meta |= {key: meta[key] for key in kept if key in meta}
    with tempfile.TemporaryDirectory() as staging:
        data = hpc.save_checkpoint(staging, 0, {"policy": tensors["policy"]}, slim_meta, keep=1).read_bytes()
    size = len(data)
    if size > MAX_PRETRAINED_BYTES:
        raise CheckpointError(f"{source}: the policy takes {size:,} bytes, over {MAX_PRETRAINED_BYTES:,}")
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(out_dir / f"{name}.ckpt", data)
    full = {
        **{key: None for key in MANIFEST_KEYS},
        **manifest,
        "name": name,
        "description": description,
        "checkpoint": f"{name}.ckpt",
        "size_bytes": size,
        "sha256": digest,
        "scenario": meta.get("scenario"),
    }
    write_yaml(out_dir / f"{name}.yaml", full)
    return PretrainedPolicy(name, out_dir / f"{name}.ckpt", description, full)
