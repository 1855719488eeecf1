"""File-system input and output shared by every layer: atomic writes and bounded reads.

The bottom layer of GridSwarm: it imports nothing of ours, and every package may import it.

    with fsio.atomic_writer(path) as handle: ...    # a reader sees the old file or the whole new one
    with fsio.atomic_path(path) as temporary: ...   # the same for writers that take a file name
    data = fsio.read_bounded(path, max_bytes)       # a regular file of at most max_bytes, else OSError
    fsio.control_character(name)                    # a newline or escape in a name a user typed
    fsio.path_component(name)                       # a name as one safe file name
"""

from fsio.atomic import (
    abandoned_temporaries,
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    atomic_writer,
    fsync_directory,
    fsync_tree,
)
from fsio.bounded import open_regular, read_bounded, read_text_bounded
from fsio.names import control_character, path_component

__all__ = [
    "abandoned_temporaries",
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_writer",
    "control_character",
    "fsync_directory",
    "fsync_tree",
    "open_regular",
    "path_component",
    "read_bounded",
    "read_text_bounded",
]
