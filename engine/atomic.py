"""Atomic file writes: a reader never sees a half-written file under its final name."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine import ioerrors


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it is fsynced and renamed onto `path`.

    On an exception the temporary file is removed and `path` is left as it was. A write that failed
    because the disk is full or a permission is missing comes out as an OSError naming `path`, even
    when the writer (libsndfile, torch.save) hid the system's error behind its own message.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or ".tmp", dir=final.parent)
    except OSError as exc:
        exc.filename = str(final)
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())     # mkstemp makes 0600; a final file gets the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, final)
        _fsync_dir(final.parent)
    except Exception as exc:
        # look at the disk before the temporary file is removed: that frees what filled it
        known = ioerrors.as_os_error(exc, final)
        if known is not None and known.filename == str(tmp_path):
            known.filename = str(final)
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if known is not None and known is not exc:
            raise known from exc
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM back for the block, so files written together (a manifest
    and its CSVs) are never left half-updated; a signal that came meanwhile is acted on after it.
    Outside the main thread (where handlers cannot be set) the block just runs."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {sig: signal.signal(sig, lambda signum, frame: got.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(got):
            if sig == signal.SIGINT and old[sig] is signal.default_int_handler:
                raise KeyboardInterrupt
            os.kill(os.getpid(), sig)
