"""Atomic, integrity-checked checkpoints that never execute pickled code.

File layout of `step-<12-digit step>.ckpt`:

    line 1  b"GRIDSWARM-CKPT <schema version>\\n"
    line 2  b"<payload length> <SHA-256 of the payload, hex>\\n"
    rest    the payload: torch.save({"tensors": ..., "meta_json": str})

The payload is read back only with `torch.load(weights_only=True)`, which refuses any pickled object other
than tensors and plain containers. A file is written to a temporary name in the same directory, fsynced,
renamed over its final name, and the directory is fsynced, so a reader sees either the whole checkpoint or
none; a truncated or corrupted file (disk full, bit rot, a copy cut short) fails the length or hash check
and `load_latest` falls back to the previous one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hpc.errors import HpcError

SCHEMA_VERSION = 1
MAGIC = b"GRIDSWARM-CKPT"
CHECKPOINT_NAME = re.compile(r"^step-(\d{12})\.ckpt$")
TEMPORARY_NAME = re.compile(r"^\.step-\d{12}\.ckpt\.(?P<host>[^.]+)\.(?P<pid>\d+)\.tmp$")
PLAIN_TYPES = (int, float, bool, str, type(None))


class CheckpointError(HpcError):
    """A checkpoint file that is incomplete, corrupted, unsafe or of an unknown schema."""


class NoCheckpointError(HpcError):
    """A directory that holds no loadable checkpoint."""


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """Where the checkpoint of `step` lives in `directory`."""
    return Path(directory) / f"step-{step:012d}.ckpt"


def save_checkpoint(
    directory: str | Path, step: int, tensors: Mapping[str, Any], meta: Mapping[str, Any], keep: int = 3
) -> Path:
    """Write the checkpoint of `step` atomically, keep the newest `keep`, and return its path.

    `tensors` maps names to tensors or nested dicts/lists of tensors and plain numbers (a model or
    optimizer `state_dict`, value-normalizer statistics, RNG states). `meta` is JSON (counters, the
    resolved config, the model identity); `step` and `schema_version` are added to it.
    """
    if step < 0 or step >= 10**12:
        raise CheckpointError(f"checkpoint step {step}: expected 0 <= step < 10**12")
    if keep < 1:
        raise CheckpointError(f"keep={keep}: expected at least 1 checkpoint to keep")
    _require_loadable_types(tensors, "tensors")
    try:
        meta_json = json.dumps({**meta, "step": step, "schema_version": SCHEMA_VERSION}, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint metadata is not JSON: {error}") from None
    buffer = io.BytesIO()
    torch.save({"tensors": dict(tensors), "meta_json": meta_json}, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    header = b"%s %d\n%d %s\n" % (MAGIC, SCHEMA_VERSION, len(payload), digest)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(directory, step)
    temporary = directory / f".{final.name}.{socket.gethostname().split('.')[0]}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as file:
            file.write(header)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    _prune(directory, keep)
    return final


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict]:
    """Read one checkpoint: (tensors, meta). Raises `CheckpointError` if it fails any check."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            magic_line = file.readline(64)
            size_line = file.readline(128)
            payload = file.read()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror})") from None
    parts = magic_line.split()
    if len(parts) != 2 or parts[0] != MAGIC:
        raise CheckpointError(f"{path}: not a GridSwarm checkpoint (no {MAGIC.decode()} header)")
    if parts[1] != str(SCHEMA_VERSION).encode():
        version = parts[1].decode(errors="replace")
        raise CheckpointError(f"{path}: schema version {version}, expected {SCHEMA_VERSION}")
    size_and_hash = size_line.split()
    if len(size_and_hash) != 2 or not size_and_hash[0].isdigit():
        raise CheckpointError(f"{path}: damaged header")
    if len(payload) != int(size_and_hash[0]):
        raise CheckpointError(f"{path}: truncated ({len(payload)} of {int(size_and_hash[0])} payload bytes)")
    if hashlib.sha256(payload).hexdigest().encode() != size_and_hash[1]:
        raise CheckpointError(f"{path}: corrupted (SHA-256 of the payload does not match its header)")
    try:
        content = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
        meta = json.loads(content["meta_json"])
        return content["tensors"], meta
    except Exception as error:
        # weights_only refuses any global outside torch's allow-list: arbitrary code never runs.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: refused to load ({first_line})") from None


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """The (step, path) of every finished checkpoint file in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = CHECKPOINT_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def load_latest(
    directory: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict, Path]:
    """The newest checkpoint that passes every check: (tensors, meta, path).

    A damaged newer file is reported on stderr and skipped. Raises `NoCheckpointError` when none loads.
    """
    candidates = list_checkpoints(directory)
    for _, path in reversed(candidates):
        try:
            tensors, meta = load_checkpoint(path, map_location)
        except CheckpointError as error:
            print(f"gridswarm.hpc: skipping checkpoint: {error}", file=sys.stderr)
            continue
        return tensors, meta, path
    reason = f"{len(candidates)} damaged checkpoint(s)" if candidates else "no checkpoint files"
    raise NoCheckpointError(f"{directory}: no loadable checkpoint ({reason})")


def _require_loadable_types(value: Any, where: str) -> None:
    # Checked at save time so that a run never writes a checkpoint that weights_only loading refuses.
    if isinstance(value, (torch.Tensor, *PLAIN_TYPES)):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise CheckpointError(f"checkpoint {where}: key {key!r} must be a str or int")
            _require_loadable_types(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _require_loadable_types(item, f"{where}[{index}]")
        return
    raise CheckpointError(
        f"checkpoint {where}: {type(value).__name__} is not a tensor, number, string or container of them"
    )


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _prune(directory: Path, keep: int) -> None:
    for _, path in list_checkpoints(directory)[:-keep]:
        path.unlink(missing_ok=True)
    host = socket.gethostname().split(".")[0]
    for entry in directory.iterdir():
        match = TEMPORARY_NAME.match(entry.name)
        # Leftovers of writers killed mid-write on this host; a live writer's file is left alone.
        if match and match.group("host") == host and not _process_alive(int(match.group("pid"))):
            entry.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
