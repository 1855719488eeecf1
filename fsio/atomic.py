"""Atomic file writes: a reader sees either the old file or the whole new one, never a part of it.

A write goes to a temporary file in the target's directory (so the rename never crosses file systems), is
flushed and fsynced, renamed over the target, and then the directory is fsynced so that the rename itself
survives a power loss. The file gets the permissions a plain `open()` gives a new file (0666 less the
umask: 0644 under umask 022), not `mkstemp`'s 0600, so colleagues on a cluster can read run outputs. On any
failure the temporary file is removed and the target is left as it was. Only a process killed between the
write and the rename leaves its temporary file behind; `abandoned_temporaries` finds such leftovers.

Temporary names are `.<target>.<host>.<pid>.<random>.tmp`: hidden, unique across hosts sharing a file
system, and telling which process wrote them.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMPORARY = re.compile(r"^\..+\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
_SHOWN_TARGET_CHARACTERS = 100  # the target's name is cut in the temporary name to stay under NAME_MAX


def _host() -> str:
    return socket.gethostname().split(".")[0] or "host"


def temporary_path(target: Path) -> Path:
    """A fresh temporary name next to `target` (nothing is created)."""
    name = target.name[:_SHOWN_TARGET_CHARACTERS]
    return target.with_name(f".{name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """fsync a directory, which makes the renames and creations inside it durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(directory: str | os.PathLike[str]) -> None:
    """fsync every file under `directory` and the directories themselves, before the tree is renamed into
    place as a whole (a directory that appears complete must be complete on disk too)."""
    for root, _, files in os.walk(directory):
        for name in files:
            _fsync_file(Path(root) / name)
        fsync_directory(root)


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `target` for a writer that takes a file name (Pillow, ffmpeg); when
    the block ends without an exception the file is fsynced and renamed over `target`.

    The temporary file already exists (empty, mode 0666 less the umask) when the block starts: writers
    that open it with "wb" keep that mode. The target's directory is created if missing.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(target)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    os.close(descriptor)
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


@contextmanager
def atomic_writer(
    target: str | os.PathLike[str], mode: str = "w", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Yield a file object (`mode` "w" or "wb") whose content replaces `target` when the block ends
    without an exception; on an exception `target` is left untouched."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer mode {mode!r}: expected 'w' or 'wb'")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(target) as temporary, open(temporary, mode, encoding=encoding) as handle:
        yield handle
        handle.flush()


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Replace `target` with `data` atomically."""
    with atomic_writer(target, "wb") as handle:
        handle.write(data)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Replace `target` with `text` (UTF-8) atomically."""
    with atomic_writer(target, "w") as handle:
        handle.write(text)


@contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new, empty staging directory next to `target`; when the block ends without an exception,
    everything in it is fsynced and the directory is renamed to `target`, so `target` appears complete or
    not at all. If `target` exists by then (and is not empty), FileExistsError is raised: another writer
    made it first. The staging directory is removed on every failure."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_path(target)
    staging.mkdir(mode=0o777)  # the umask applies, as for a plain mkdir
    try:
        yield staging
        fsync_tree(staging)
        try:
            os.rename(staging, target)
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise FileExistsError(errno.EEXIST, "made by another writer first", os.fspath(target)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(target.parent)


def abandoned_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Temporary files in `directory` left by writers on this host that are no longer running (killed
    between write and rename); a live writer's file is never listed."""
    host = _host()
    found = []
    for entry in Path(directory).iterdir():
        match = TEMPORARY.match(entry.name)
        if match and match["host"] == host and not _process_alive(int(match["pid"])):
            found.append(entry)
    return found


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
