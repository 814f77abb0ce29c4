"""Start, find, stop and describe training processes; read a run's state from its events.

A run folder R holds run_config.json, events.jsonl, train.log, process.json (pid + start time
of the detached worker), checkpoints/, best_model.pth, samples/. The state shown to people is
the last `state` event, checked against the process: a run whose last state is not final but
whose process is gone is reported as `failed` ("process ended without a final state").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.events import read_events

FINAL_STATES = ("stopped", "finished", "failed")
ACTIVE_STATES = ("preparing", "training", "stopping")


def spawn_worker(run: Path, resume: bool = False) -> int:
    """Start the training process detached from this one: new session, stdin /dev/null,
    stdout+stderr appended to R/train.log. Closing the terminal, SSH or TUI does not stop it."""
    run = Path(run)
    log = open(run / "train.log", "ab")
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    module = "engine.train.worker"
    try:  # several GPUs/processes: torchrun's launcher (engine/train/distributed.py) starts the workers
        if json.loads((run / "run_config.json").read_text(encoding="utf-8")).get("distributed"):
            module = "engine.train.distributed"
    except (OSError, ValueError):
        pass
    cmd = [sys.executable, "-m", module, str(run.resolve())] + (["--resume"] if resume else [])
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        close_fds=True, env=env, cwd=os.getcwd(),
    )
    log.close()
    info = {"pid": proc.pid, "create_time": _create_time(proc.pid), "cmd": cmd, "started": time.time(),
            "resume": resume}
    from engine.atomic import write_json

    write_json(run / "process.json", info)
    return proc.pid


def _create_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001
        return None


def process_alive(run: Path) -> bool:
    """True when the run's recorded worker process still exists (same pid *and* start time)."""
    p = Path(run) / "process.json"
    if not p.is_file():
        return False
    try:
        info = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    pid = info.get("pid")
    if not pid:
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        ct = info.get("create_time")
        if ct is not None and abs(proc.create_time() - ct) > 1.0:
            return False  # the pid was reused by another process
        return True
    except Exception:  # noqa: BLE001 - NoSuchProcess, AccessDenied...
        return False


def worker_pid(run: Path) -> int | None:
    try:
        return int(json.loads((Path(run) / "process.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def send_stop(run: Path, sig: int = signal.SIGTERM) -> int:
    run = Path(run)
    if not process_alive(run):
        raise ProcessLookupError(f"no training process is running for {run}")
    pid = _rank0_pid(run) or worker_pid(run)
    os.kill(pid, sig)
    return pid


def _rank0_pid(run: Path) -> int | None:
    """In a distributed run the stop goes to global rank 0 (worker.json), which shares it with every
    rank at the next step; signalling torchrun's launcher would SIGKILL the ranks after 30 s."""
    try:
        import psutil

        if not json.loads((run / "run_config.json").read_text(encoding="utf-8")).get("distributed"):
            return None
        pid = int(json.loads((run / "worker.json").read_text())["pid"])
        launcher = psutil.Process(worker_pid(run))
        if pid in {c.pid for c in launcher.children(recursive=True)}:
            return pid
    except Exception:  # noqa: BLE001 - not started yet, stale file...: signal the launcher instead
        return None
    return None


def summarize(run: Path) -> dict:
    """Everything `status` shows, from events.jsonl + the process check."""
    run = Path(run)
    events, _ = read_events(run / "events.jsonl")
    s: dict = {"run": str(run), "state": "new", "reason": None, "alive": process_alive(run), "pid": worker_pid(run),
               "epoch": None, "epochs": None, "step": None, "steps_per_epoch": None, "global_step": None,
               "loss": None, "lr": None, "eval": None, "best": None, "checkpoint": None, "alerts": [],
               "started": None, "updated": None, "events": len(events), "warnings": 0, "samples": []}
    for e in events:
        t = e.get("type")
        s["updated"] = e.get("ts")
        if t == "state":
            s["state"] = e.get("state")
            s["reason"] = e.get("reason")
            if e.get("state") == "preparing" and s["started"] is None:
                s["started"] = e.get("ts")
        elif t == "step":
            for k in ("epoch", "epochs", "step", "steps_per_epoch", "global_step", "loss", "lr"):
                s[k] = e.get(k)
        elif t == "eval":
            s["eval"] = {k: e.get(k) for k in ("avg_loss_text_ce", "avg_loss_mel_ce", "avg_loss", "global_step")}
        elif t == "best_model":
            s["best"] = {"path": e.get("path"), "loss": e.get("loss"), "global_step": e.get("global_step")}
        elif t == "checkpoint":
            s["checkpoint"] = {"path": e.get("path"), "global_step": e.get("global_step")}
        elif t == "alert":
            s["alerts"].append({"kind": e.get("kind"), "msg": e.get("msg")})
        elif t == "log" and e.get("level") == "warning":
            s["warnings"] += 1
        elif t == "sample":
            s["samples"].append(e.get("path"))
    if s["state"] in ACTIVE_STATES and not s["alive"]:
        s["reason"] = f"process ended without a final state (last state: {s['state']}; killed or crashed — " \
                      f"see {run / 'train.log'})"
        s["state"] = "failed"
        s["died"] = True
    elif s["state"] == "new" and s["alive"]:
        s["state"] = "preparing"
    return s


def find_runs(root: Path) -> list[Path]:
    root = Path(root)
    if (root / "run_config.json").is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "run_config.json").is_file())
