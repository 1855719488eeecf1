"""Bounded reads of files a user names: the size is checked before anything is read.

A path may name anything: a device that never ends (/dev/zero), a FIFO that blocks forever, a directory, a
file of many gigabytes. `open_regular` opens without blocking and refuses everything but a regular file;
`read_bounded` also refuses a file larger than the caller's limit before reading a byte. Refusals are
`OSError`s with the path as `filename` and a one-line `strerror`.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """A binary file object open for reading on `path`, which must be a regular file (a symlink to one is
    fine). Devices, FIFOs, sockets and directories raise OSError without blocking."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
            raise OSError(errno.EINVAL, f"expected a regular file, found {kind}", os.fspath(path))
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_bounded(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of the regular file `path`; OSError (EFBIG) if it holds more than `max_bytes`."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(max_bytes + 1) if size <= max_bytes else b""
        if size > max_bytes or len(data) > max_bytes:
            raise OSError(
                errno.EFBIG,
                f"larger than the limit of {max_bytes} bytes ({max(size, len(data))} bytes)",
                os.fspath(path),
            )
        return data


def read_text_bounded(path: str | os.PathLike[str], max_bytes: int) -> str:
    """The UTF-8 text of the regular file `path` (at most `max_bytes`); OSError if it is not UTF-8."""
    data = read_bounded(path, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise OSError(
            errno.EILSEQ, f"not UTF-8 text (byte {error.start} is {data[error.start]:#04x})", os.fspath(path)
        ) from None
