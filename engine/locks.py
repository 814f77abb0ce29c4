"""One lock per dataset folder and per run folder, held for the whole job.

The lock is `fcntl.flock` on `<folder>/.lock`: the kernel drops it when the holder exits, however
it exits (Ctrl-C, SIGKILL, power loss), so there is never a stale lock to delete by hand. The file
also records who holds it (pid, job, start time), so a refused job can name the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


class Busy(Exception):
    """The folder is held by another job; the message names it (one line)."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


def holder(folder: str | os.PathLike) -> dict | None:
    """Who holds the folder's lock now ({"pid", "job", "started", "host"}), or None when it is free."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _holder_info(path)
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _holder_info(path: Path, wait_s: float = 0.5) -> dict:
    """The record of a held lock. Its holder writes it just after taking the lock: a job refused in
    that instant reads it again for a moment rather than name no one."""
    info = _read_info(path)
    deadline = time.monotonic() + wait_s
    while not info.get("pid") and time.monotonic() < deadline:
        time.sleep(0.02)
        info = _read_info(path)
    return info


def busy_message(folder: Path, info: dict) -> str:
    job = info.get("job") or "another xtts-ft job"
    pid = info.get("pid")
    when = ""
    if isinstance(info.get("started"), (int, float)):
        when = ", started " + time.strftime("%H:%M:%S", time.localtime(info["started"]))
    who = f"{job} (pid {pid}{when})" if pid else job
    host = info.get("host")
    if host and host != socket.gethostname():
        who += f" on {host}"
    return f"{folder} is in use by {who}; wait for it to finish or stop it first"


@contextlib.contextmanager
def hold(folder: str | os.PathLike, job: str) -> Iterator[Path]:
    """Hold `folder`'s lock for the block; raises Busy at once when another process has it."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                info = _holder_info(path)
                raise Busy(busy_message(folder, info), info) from None
            raise
        info = {"pid": os.getpid(), "job": job, "started": time.time(), "host": socket.gethostname()}
        with contextlib.suppress(OSError):      # the record is informative; a full disk must not stop the job
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)      # closing the descriptor releases the lock
