"""Start, find, stop and describe training runs (jobs of kind `train`, engine/jobs/).

A run folder R holds run_config.json, events.jsonl, train.log, process.json (the detached worker,
engine/jobs/process.py), checkpoints/, best_model.pth, samples/. The state shown to people is
the last `state` event, checked against the process: a run whose last state is not final but
whose process is gone is reported as `failed` ("process ended without a final state").
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from engine.jobs import process as jp
from engine.jobs.job import JobFiles
from engine.jobs.job import summarize as summarize_job


def files(run: Path) -> JobFiles:
    return JobFiles("train", Path(run))


def spawn_worker(run: Path, resume: bool = False) -> int:
    """Start the training process detached from this one (engine/jobs/process.py): closing the
    terminal, SSH or the studio does not stop it. Its output goes to R/train.log."""
    run = Path(run)
    module = "engine.train.worker"
    try:  # several GPUs/processes: torchrun's launcher (engine/train/distributed.py) starts the workers
        if json.loads((run / "run_config.json").read_text(encoding="utf-8")).get("distributed"):
            module = "engine.train.distributed"
    except (OSError, ValueError):
        pass
    cmd = jp.engine_cmd(str(run.resolve()), *(["--resume"] if resume else []), module=module)
    proc = jp.spawn_detached(cmd, run / "train.log")
    jp.write_process(files(run).process, proc.pid, "train", cmd=cmd, stop_signal="SIGTERM", resume=resume)
    return proc.pid


def process_alive(run: Path) -> bool:
    """True when the run's recorded worker process still exists (same pid *and* start time)."""
    return jp.alive(files(run).process)


def worker_pid(run: Path) -> int | None:
    return jp.pid_of(files(run).process)


def send_stop(run: Path, sig: int = signal.SIGTERM) -> int:
    run = Path(run)
    if not process_alive(run):
        raise ProcessLookupError(f"no training process is running for {run}")
    return jp.stop(files(run).process, sig, pid=_rank0_pid(run))


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


def _fold(s: dict, e: dict) -> None:
    t = e.get("type")
    if t == "step":
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
    elif t == "sample":
        s["samples"].append(e.get("path"))


def summarize(run: Path, tail_bytes: int | None = None) -> dict:
    """Everything `status` and the studio's run lists show, from events.jsonl (only its last
    `tail_bytes` when given: cheap on huge runs) + the process check."""
    run = Path(run)
    extra = {"run": str(run), "epoch": None, "epochs": None, "step": None, "steps_per_epoch": None,
             "global_step": None, "loss": None, "lr": None, "eval": None, "best": None, "checkpoint": None,
             "alerts": [], "samples": []}
    return summarize_job(files(run), tail_bytes=tail_bytes, fold=_fold, extra=extra)


def find_runs(root: Path) -> list[Path]:
    """Run folders: `root` itself when it is one, else its direct sub-folders that are."""
    root = Path(root)
    if (root / "run_config.json").is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "run_config.json").is_file())
