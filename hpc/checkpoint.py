"""Atomic, integrity-checked checkpoints that never execute pickled code.

File layout of `step-<12-digit step>.ckpt`:

    line 1  b"GRIDSWARM-CKPT <schema version>\\n"
    line 2  b"<payload length> <SHA-256 of the payload, hex>\\n"
    rest    the payload: torch.save({"tensors": ..., "meta_json": str})

The payload is read back only with `torch.load(weights_only=True)`, which refuses any pickled object other
than tensors and plain containers. A file is written atomically (`fsio.atomic_writer`), so a reader sees
either the whole checkpoint or none; a truncated or corrupted file (disk full, bit rot, a copy cut short)
fails the length or hash check and `load_latest` falls back to the previous one. A reader checks the header
and the file's size before it reads the payload: a path that is no checkpoint (a device such as /dev/zero,
a huge file) is refused without reading it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fsio import abandoned_temporaries, atomic_writer, open_regular
from hpc.errors import HpcError

SCHEMA_VERSION = 1
MAGIC = b"GRIDSWARM-CKPT"
CHECKPOINT_NAME = re.compile(r"^step-(\d{12})\.ckpt$")
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
    final = checkpoint_path(directory, step)
    with atomic_writer(final, "wb") as file:
        file.write(header)
        file.write(payload)
    _prune(directory, keep)
    return final


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict]:
    """Read one checkpoint: (tensors, meta). Raises `CheckpointError` if it fails any check.

    The header is read and checked first, then the file's size against it: nothing but a checkpoint of the
    size its header states is read into memory.
    """
    path = Path(path)
    try:
        with open_regular(path) as file:
            file_size = os.fstat(file.fileno()).st_size
            magic_line = file.readline(64)
            size_line = file.readline(128)
            payload_size = _payload_size(path, magic_line, size_line)
            stated = len(magic_line) + len(size_line) + payload_size
            if file_size != stated:
                found = "truncated" if file_size < stated else "longer than its header states"
                raise CheckpointError(
                    f"{path}: {found} ({file_size - len(magic_line) - len(size_line)} of "
                    f"{payload_size} payload bytes)"
                )
            payload = file.read(payload_size)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror})") from None
    if len(payload) != payload_size:
        raise CheckpointError(f"{path}: truncated while reading ({len(payload)} of {payload_size} bytes)")
    if hashlib.sha256(payload).hexdigest().encode() != size_line.split()[1]:
        raise CheckpointError(f"{path}: corrupted (SHA-256 of the payload does not match its header)")
    try:
        content = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
        meta = json.loads(content["meta_json"])
        return content["tensors"], meta
    except Exception as error:
        # weights_only refuses any global outside torch's allow-list: arbitrary code never runs.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: refused to load ({first_line})") from None


def _payload_size(path: Path, magic_line: bytes, size_line: bytes) -> int:
    """The payload length the two header lines state; CheckpointError for anything but a valid header."""
    parts = magic_line.split()
    if len(parts) != 2 or parts[0] != MAGIC or not magic_line.endswith(b"\n"):
        raise CheckpointError(f"{path}: not a GridSwarm checkpoint (no {MAGIC.decode()} header)")
    if parts[1] != str(SCHEMA_VERSION).encode():
        version = parts[1].decode(errors="replace")[:20]
        raise CheckpointError(f"{path}: schema version {version!r}, expected {SCHEMA_VERSION}")
    size_and_hash = size_line.split()
    valid = len(size_and_hash) == 2 and size_and_hash[0].isdigit() and len(size_and_hash[1]) == 64
    if not valid or not size_line.endswith(b"\n"):
        raise CheckpointError(f"{path}: damaged header")
    return int(size_and_hash[0])


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


def first_non_finite(value: Any, where: str = "") -> str | None:
    """The name (e.g. "['encoder.weight']") of the first floating tensor in `value` (a tensor or nested
    dicts and lists of them) that holds a NaN or an infinity; None when every one is finite."""
    if isinstance(value, torch.Tensor):
        return where if value.is_floating_point() and not bool(torch.isfinite(value).all()) else None
    items = (
        value.items()
        if isinstance(value, Mapping)
        else enumerate(value)
        if isinstance(value, list | tuple)
        else ()
    )
    for key, item in items:
        found = first_non_finite(item, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None


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


def _prune(directory: Path, keep: int) -> None:
    for _, path in list_checkpoints(directory)[:-keep]:
        path.unlink(missing_ok=True)
    for leftover in abandoned_temporaries(directory):  # of writers killed mid-write on this host
        leftover.unlink(missing_ok=True)
