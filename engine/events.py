"""The versioned JSON-lines event stream shared by every long job (prep, train).

One JSON object per line, flushed as it is written. Every object has:
  "v"    schema version (SCHEMA_VERSION)
  "ts"   UNIX time in seconds (float)
  "type" what happened ("log", "progress", "state", "step", ...; see docs/events.md)
A reader that meets a newer "v" than it knows should still show the types it knows.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def _default(obj: Any) -> Any:
    # numpy scalars and paths appear in payloads; JSON has no type for them
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def encode(event_type: str, **fields: Any) -> str:
    record = {"v": SCHEMA_VERSION, "ts": round(time.time(), 3), "type": event_type}
    record.update(fields)
    return json.dumps(record, ensure_ascii=False, default=_default)


class EventWriter:
    """Appends events to a file, one line each, written with a single system call; safe to call from
    several threads.

    A failed write (disk full, file system gone read-only) does not raise: the job goes on and
    reports the problem its own way; `write_error` keeps the first such error. A line torn by a
    failed write is ended before the next one, so a reader loses only that line.
    """

    def __init__(self, path: str | os.PathLike, echo=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self._echo = echo  # optional file-like (e.g. sys.stdout) that gets the same lines
        self._torn = False
        self.write_error: OSError | None = None

    def emit(self, event_type: str, **fields: Any) -> dict:
        line = encode(event_type, **fields)
        with self._lock:
            if self._fd is not None:
                self._write(("\n" if self._torn else "") + line + "\n")
            if self._echo is not None:
                self._echo.write(line + "\n")
                self._echo.flush()
        return json.loads(line)

    def _write(self, text: str) -> None:
        data = text.encode("utf-8")
        try:
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
            self._torn = False
        except OSError as exc:
            self._torn = True
            if self.write_error is None:
                exc.filename = exc.filename or str(self.path)
                self.write_error = exc

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_events(path: str | os.PathLike, offset: int = 0, max_bytes: int | None = None) -> tuple[list[dict], int]:
    """Complete lines from `offset` on; returns (events, new_offset). A torn last line is left for later.

    `max_bytes` bounds one read (a reader replaying a huge file calls again from the new offset);
    a single line longer than `max_bytes` is still read whole.
    """
    events: list[dict] = []
    p = Path(path)
    if not p.exists():
        return events, offset
    with open(p, "rb") as fh:
        fh.seek(offset)
        data = fh.read() if max_bytes is None else fh.read(max_bytes)
        if max_bytes is not None and len(data) == max_bytes and b"\n" not in data:
            data += fh.readline()
    end = data.rfind(b"\n")
    if end < 0:
        return events, offset
    for raw in data[: end + 1].splitlines():
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue  # a line damaged by a crash: skip it, never stop reading
        if isinstance(obj, dict) and "type" in obj:
            events.append(obj)
    return events, offset + end + 1


def iter_events(path: str | os.PathLike) -> Iterator[dict]:
    events, _ = read_events(path)
    yield from events
