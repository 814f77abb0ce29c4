"""Recognising disk-full and permission errors, and saying them in one line.

Some writers do not pass the operating system's error through: libsndfile says "System error.",
torch.save says "basic_ios::clear: iostream error" or "file write failed", ffmpeg prints its own
text. `as_os_error` turns such a failure back into an OSError with the right errno when the disk
it was writing to is (nearly) full, so callers handle one kind of exception.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
NEARLY_FULL_BYTES = 1 << 20          # a write failed and under 1 MiB is free: the disk is full


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes this process may still write on the file system holding `path` (or its nearest parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize


def nearly_full(path: str | os.PathLike) -> bool:
    free = free_bytes(path)
    return free is not None and free < NEARLY_FULL_BYTES


def is_known(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE + DENIED


def as_os_error(exc: BaseException, path: str | os.PathLike) -> OSError | None:
    """`exc` as an OSError naming `path` when it is (or hides) a disk-full or permission error."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE + DENIED:
        if exc.filename is None:
            exc.filename = str(path)
        return exc
    text = str(exc)
    if "No space left on device" in text or "Disk quota exceeded" in text or nearly_full(path):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    if "Permission denied" in text:
        return OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    return None


def describe(exc: OSError, doing: str = "writing") -> str:
    """One line: what went wrong, on which path."""
    path = exc.filename or "?"
    if exc.errno in NO_SPACE:
        return f"no space left on device while {doing} {path}"
    if exc.errno == errno.EROFS:
        return f"read-only file system: cannot write {path}"
    if exc.errno in DENIED:
        return f"permission denied: {path}"
    return f"{exc.strerror or exc} while {doing} {path}"
