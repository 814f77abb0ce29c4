"""A job's process: started detached, recorded in its process.json, checked, stopped.

process.json (written atomically next to the job's events file) holds:
    pid, create_time   the job's process (the pair guards against a reused pid)
    kind               prep | train | listen | export ...
    cmd, started       how and when it was started
    events, offset     the events file and its size when the job started (a reader re-attaching
                       to a job that appends to an existing file starts there)
    stop_signal        what `stop` sends (SIGINT or SIGTERM): the job saves its work and ends `stopped`
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the `engine` package


def engine_env(extra: dict | None = None) -> dict:
    """os.environ for a child `python -m engine ...`: this checkout first on PYTHONPATH, unbuffered."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def engine_cmd(*args: str, module: str = "engine") -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def spawn_detached(cmd: list[str], log_path: Path, cwd: str | Path | None = None,
                   header: str | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start `cmd` detached from this process: new session, stdin /dev/null, stdout+stderr appended
    to `log_path` (never a pipe this process owns). Closing the terminal, SSH or the studio does not
    stop it. `env`: variables added to this process's environment."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        if header:
            log.write(header.encode())
            log.flush()
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=engine_env(env),
                                cwd=str(cwd or os.getcwd()))


def create_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001
        return None


def write_process(path: Path, pid: int, kind: str, cmd: list[str] | None = None, events: Path | None = None,
                  stop_signal: str = "SIGINT", **extra) -> dict:
    from engine.atomic import write_json

    offset = 0
    if events is not None:
        try:
            offset = Path(events).stat().st_size
        except OSError:
            offset = 0
    info = {"pid": pid, "create_time": create_time(pid), "kind": kind, "cmd": cmd or [], "started": time.time(),
            "events": str(events) if events is not None else None, "offset": offset, "stop_signal": stop_signal,
            **extra}
    write_json(path, info)
    return info


def read_process(path: Path) -> dict | None:
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def alive(path: Path) -> bool:
    """True when the process recorded in `path` still exists (same pid *and* start time)."""
    info = read_process(path)
    pid = info.get("pid") if info else None
    if not pid:
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        ct = info.get("create_time")
        return ct is None or abs(proc.create_time() - ct) <= 1.0  # else the pid was reused
    except Exception:  # noqa: BLE001 - NoSuchProcess, AccessDenied...
        return False


def pid_of(path: Path) -> int | None:
    info = read_process(path)
    try:
        return int(info["pid"]) if info else None
    except (KeyError, TypeError, ValueError):
        return None


def stop(path: Path, sig: int | None = None, pid: int | None = None) -> int:
    """Ask the job to stop (its recorded stop signal unless `sig`): it saves its work and ends
    `stopped`. Raises ProcessLookupError when no such process runs."""
    if not alive(path):
        raise ProcessLookupError(f"no job process is running for {Path(path).parent}")
    info = read_process(path) or {}
    if sig is None:
        sig = getattr(signal, str(info.get("stop_signal") or "SIGINT"), signal.SIGINT)
    target = pid or int(info["pid"])
    os.kill(target, sig)
    return target
