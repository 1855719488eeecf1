"""Stale numba caches: numba's `cache=True` keys a compiled function on its own source file only, but the
machine code it stores has every callee from other files inlined. Edit `observe.py` (or `git pull` a change
to it into an editable checkout) and `step.py`'s cached `step_env` keeps running the old `observe`, silently.

`clear_stale_caches(package_dir)` fixes that for a source tree: it hashes every `.py` file under the
directory (and numba's version), and when the hash differs from the one recorded at the last import it
deletes the tree's numba cache files (`__pycache__/*.nbi`, `*.nbc`), so the next call compiles afresh and
numba caches it again. It runs when `sim` is imported, before any kernel is called. It covers caches that
numba writes next to the sources (its default); a tree that is not writable is left alone (numba then
caches under NUMBA_CACHE_DIR or the user's cache directory, and pip's reinstall of every file renews every
source stamp anyway).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from importlib.metadata import version
from pathlib import Path

from fsio import atomic_write_text

STAMP_NAME = "numba-sources.sha256"


def sources_digest(package_dir: Path) -> str:
    """sha256 over numba's version and the relative path and bytes of every `.py` file under package_dir."""
    digest = hashlib.sha256(version("numba").encode())  # the installed version, without importing numba
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def clear_stale_caches(package_dir: Path) -> bool:
    """Deletes the numba cache files under package_dir if its sources changed since the last call; returns
    whether it deleted. The stamp is written atomically after the deletion, so an interrupted run clears
    again next time."""
    stamp = package_dir / "__pycache__" / STAMP_NAME
    current = sources_digest(package_dir)
    try:
        if stamp.read_text() == current:
            return False
    except OSError:
        pass
    if not os.access(package_dir, os.W_OK):
        return False
    for pattern in ("*.nbi", "*.nbc"):
        for cached in package_dir.rglob(f"__pycache__/{pattern}"):
            cached.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        atomic_write_text(stamp, current)
    return True
