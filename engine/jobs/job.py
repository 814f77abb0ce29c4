"""A job's files and their reading: the events file, process.json, and the summary of both.

A job of kind K in folder F writes:
    F/<prefix>events.jsonl    its events (engine/jobs/schema.py, docs/events.md)
    F/<prefix>process.json    its process (engine/jobs/process.py)
with prefix "" for a training run (R/events.jsonl, R/process.json) and "<kind>_" for the others
(D/prep_events.jsonl, D/prep_process.json, ...).

    job = Job("prep", dataset, prefix="prep_")
    job.start(cmd=sys.argv)            # process.json (this process) + state running
    job.emit("progress", stage=..., done=..., total=...)
    job.end("finished")                # or end("stopped", reason=...) / end("failed", reason=...)
"""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.events import EventWriter
from engine.jobs import process as jp
from engine.jobs import states

PREFIX = {"train": ""}  # every other kind: "<kind>_"


def prefix_of(kind: str) -> str:
    return PREFIX.get(kind, f"{kind}_")


@dataclass(frozen=True)
class JobFiles:
    kind: str
    folder: Path

    @property
    def events(self) -> Path:
        return self.folder / f"{prefix_of(self.kind)}events.jsonl"

    @property
    def process(self) -> Path:
        return self.folder / f"{prefix_of(self.kind)}process.json"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.kind}.log"

    def alive(self) -> bool:
        return jp.alive(self.process)


def hear_sigint() -> None:
    """`stop` sends SIGINT. A process started from a shell's background (`cmd &` without job
    control, nohup scripts, a service) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt: the job could not be stopped. Give it the default handler back."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Job:
    """The running job's side of the protocol (one per job process)."""

    def __init__(self, kind: str, folder: str | os.PathLike, writer: EventWriter | None = None):
        self.kind = kind
        self.files = JobFiles(kind, Path(folder))
        self.files.folder.mkdir(parents=True, exist_ok=True)
        self.events = writer or EventWriter(self.files.events)
        self.ended: str | None = None

    def start(self, cmd: list[str] | None = None, state: str = "running", stop_signal: str = "SIGINT",
              **fields) -> None:
        """Record this process in process.json (unless its starter already did) and emit the first state."""
        if stop_signal == "SIGINT":
            hear_sigint()
        info = jp.read_process(self.files.process)
        if not info or info.get("pid") != os.getpid():
            jp.write_process(self.files.process, os.getpid(), self.kind, cmd=cmd, events=self.files.events,
                             stop_signal=stop_signal)
        self.state(state, **fields)

    def emit(self, event_type: str, **fields) -> dict:
        return self.events.emit(event_type, **fields)

    def state(self, state: str, **fields) -> dict:
        assert state in states.STATES, state
        return self.emit("state", state=state, job=self.kind, **fields)

    def end(self, state: str, reason: str | None = None, **fields) -> None:
        assert state in states.FINAL, state
        self.ended = state
        self.state(state, **({"reason": reason} if reason else {}), **fields)

    def close(self) -> None:
        self.events.close()


def summarize(files: JobFiles, tail_bytes: int | None = None, fold=None, latest_only: bool = False,
              extra: dict | None = None) -> dict:
    """State, reason, process and times of a job from its events (the last `tail_bytes` only when
    given: cheap on a huge file) and process.json. `fold(summary, event)` adds a job's own fields.
    `latest_only`: only the events of the latest start (a prep appends to its dataset's file);
    `extra`: the job's own fields with their values before any event."""
    info = jp.read_process(files.process) or {}
    s: dict = {"kind": files.kind, "folder": str(files.folder), "state": states.NEW, "reason": None,
               "alive": jp.alive(files.process), "pid": info.get("pid"), "started": None, "updated": None,
               "events": 0, "warnings": 0, **(extra or {})}
    offset = int(info.get("offset") or 0) if latest_only and tail_bytes is None else 0
    for e in read_tail(files.events, tail_bytes, offset=offset):
        s["events"] += 1
        s["updated"] = e.get("ts", s["updated"])
        t = e.get("type")
        if t == "state":
            s["state"] = e.get("state") or s["state"]
            s["reason"] = e.get("reason")
            if s["state"] in ("preparing", "running") and s["started"] is None:
                s["started"] = e.get("ts")
        elif t == "log" and e.get("level") == "warning":
            s["warnings"] += 1
        if fold is not None:
            fold(s, e)
    settle(s, files)
    return s


def stop_job(files: JobFiles, what: str) -> int:
    """Ask the job to stop (its recorded stop signal); it saves its work and ends `stopped`. When none
    runs: ProcessLookupError with one line that says so and how the last one ended, if there was one."""
    if files.alive():
        return jp.stop(files.process)
    msg = f"no {what} is running for {files.folder}"
    if not files.process.is_file():
        raise ProcessLookupError(f"{msg} (none was started)")
    s = summarize(files, latest_only=True)
    raise ProcessLookupError(f"{msg}: the last one ended {s['state']}" + (f" ({s['reason']})" if s["reason"] else ""))


def settle(s: dict, files: JobFiles) -> None:
    """The process check: an active state without its process is a death; a live process before
    the first event is `preparing`."""
    if states.is_active(s["state"]) and not s["alive"]:
        s["reason"] = f"{states.DIED} (last state: {s['state']}; killed or crashed — see {files.log})"
        s["state"] = "failed"
        s["died"] = True
    elif s["state"] == states.NEW and s["alive"]:
        s["state"] = "preparing"


def read_tail(path: Path, tail_bytes: int | None = None, offset: int = 0) -> list[dict]:
    """The events of a file from `offset` (or only its last `tail_bytes`), damaged lines skipped."""
    from engine.events import read_events
    from engine.jobs.schema import upgrade

    if tail_bytes is None:
        events, _ = read_events(path, offset)
        return [upgrade(e) for e in events]
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - tail_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.splitlines()
    if size > tail_bytes and lines:
        lines = lines[1:]  # the first line may be cut
    out = []
    for raw in lines:
        try:
            e = json.loads(raw)
        except ValueError:
            continue
        if isinstance(e, dict) and "type" in e:
            out.append(upgrade(e))
    return out


def find_jobs(root: str | os.PathLike, kinds: tuple[str, ...] = ("prep", "train")) -> list[JobFiles]:
    """Jobs with a process.json in `root` or its direct sub-folders (datasets/<name>, runs/<name>)."""
    root = Path(root)
    found = []
    folders = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    for folder in folders:
        for kind in kinds:
            f = JobFiles(kind, folder)
            if f.process.is_file():
                found.append(f)
    return found
