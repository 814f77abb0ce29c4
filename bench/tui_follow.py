"""Replay 10^6 events into the studio's training screen, then follow a live run at 20 events/s.

Prints: events/s absorbed during the replay, peak RSS, and the studio's CPU share (of one core)
while following. Targets: RSS < 200 MB, < 5% of one core while following.
Usage: python bench/tui_follow.py [--events 1000000] [--live-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_events(path: Path, n: int) -> None:
    ts = time.time() - n * 0.1
    spe = 1000
    with open(path, "w") as fh:
        fh.write(json.dumps({"v": 1, "ts": ts, "type": "state", "state": "training"}) + "\n")
        for i in range(1, n):
            ts += 0.1
            if i % 500 == 0:
                e = {"v": 1, "ts": ts, "type": "resources", "gpu": {"available": False, "reason": "no GPU"},
                     "ram": {"total_mb": 32000.0, "available_mb": 20000.0, "process_rss_mb": 1400.0}}
            elif i % 1000 == 0:
                e = {"v": 1, "ts": ts, "type": "eval", "epoch": i // spe, "global_step": i, "avg_loss": 5 - i / n,
                     "avg_loss_text_ce": 0.05, "avg_loss_mel_ce": 4.9 - i / n}
            elif i % 250 == 0:
                e = {"v": 1, "ts": ts, "type": "log", "tag": "TRAIN", "level": "info", "msg": f"step {i}", "details": []}
            else:
                e = {"v": 1, "ts": ts, "type": "step", "epoch": i // spe, "epochs": n // spe + 1, "step": i % spe,
                     "steps_per_epoch": spe, "global_step": i, "opt_step": i, "loss_text_ce": 0.05,
                     "loss_mel_ce": 5 - i / n, "loss": 5.05 - i / n, "lr": 5e-6, "grad_norm": None,
                     "step_time": 0.1, "loader_time": 0.01, "batch_size": 4, "grad_accum": 1}
            fh.write(json.dumps(e) + "\n")


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread name (Linux /proc), to tell the UI loop from the follower and the writer."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = names.get(int(task.name), "other")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(n: int, live_seconds: float, profile: str | None = None) -> None:
    from tui.app import make_app

    tmp = Path(tempfile.mkdtemp(prefix="tui_follow_"))
    run = tmp / "runs" / "long"
    run.mkdir(parents=True)
    (run / "run_config.json").write_text(json.dumps({"dataset": "/nowhere", "epochs": 1000}))
    # a stand-in for the training process, so the run reads as alive (state TRAINING, not failed)
    import subprocess

    import psutil

    child = subprocess.Popen(["sleep", "100000"])
    (run / "process.json").write_text(json.dumps({"pid": child.pid,
                                                  "create_time": psutil.Process(child.pid).create_time()}))
    t0 = time.time()
    write_events(run / "events.jsonl", n)
    size = (run / "events.jsonl").stat().st_size
    print(f"wrote {n} events ({size / 1e6:.0f} MB) in {time.time() - t0:.1f} s")
    rss0 = peak_rss_mb()
    app = make_app(root=tmp, run=run, start="train", query_gpu=False)
    async with app.run_test(size=(120, 40)) as pilot:
        m = app.run_model
        t0 = time.perf_counter()
        while m.replaying or m.events < n:
            await pilot.pause(0.05)
        dt = time.perf_counter() - t0
        await pilot.pause(0.6)
        print(f"replay: {m.events} events in {dt:.1f} s = {m.events / dt:,.0f} events/s absorbed "
              f"(screen drawn meanwhile); curve points kept: {len(m.train_loss)}")
        print(f"peak RSS after replay: {peak_rss_mb():.0f} MB (before the app: {rss0:.0f} MB)")

        # live: another thread appends 20 events/s (as a training process would)
        stop = threading.Event()
        gs = [n]

        import random

        rnd = random.Random(0)

        def writer():
            # a noisy loss, like a real run's (a flat line would flatter the plot's redraw-on-change)
            with open(run / "events.jsonl", "a") as fh:
                while not stop.is_set():
                    gs[0] += 1
                    loss = 4.0 - 0.00002 * (gs[0] - n) + rnd.gauss(0, 0.08)
                    fh.write(json.dumps({"v": 1, "ts": time.time(), "type": "step", "epoch": 5, "epochs": 10,
                                         "step": gs[0] % 1000, "steps_per_epoch": 1000, "global_step": gs[0],
                                         "loss": loss, "loss_text_ce": 0.05, "loss_mel_ce": loss - 0.05,
                                         "lr": 5e-6 * (0.5 + 0.5 * math.cos(gs[0] / 200)),
                                         "step_time": 0.05}) + "\n")
                    fh.flush()
                    stop.wait(0.05)

        th = threading.Thread(target=writer, daemon=True, name="bench-writer")
        th.start()
        await pilot.pause(2.0)
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        from tui.widgets.charts import Curves

        renders0 = sum(c.renders for c in app.screen.query(Curves))
        t0c = thread_cpu()
        c0, w0 = time.process_time(), time.perf_counter()
        await pilot.pause(live_seconds)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        t1c = thread_cpu()
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        stop.set()
        th.join()
        writer_cpu = t1c.get("bench-writer", 0.0) - t0c.get("bench-writer", 0.0)
        print(f"live follow at 20 events/s for {wall:.0f} s: CPU {100 * cpu / wall:.1f}% of one core "
              f"(whole process, with the bench's writer thread); followed up to global step {m.global_step} "
              f"of {gs[0]}")
        print(f"  studio alone (without the writer thread): {100 * (cpu - writer_cpu) / wall:.1f}% of one core")
        by = sorted(((k, t1c[k] - t0c.get(k, 0.0)) for k in t1c), key=lambda kv: -kv[1])
        print("  per thread: " + ", ".join(f"{k} {100 * v / wall:.1f}%" for k, v in by if v > 0))
        renders = sum(c.renders for c in app.screen.query(Curves)) - renders0
        print(f"  plot renders: {renders} in {wall:.0f} s (2 plots; a render only when a curve visibly moved); "
              f"state shown: {m.shown_state()}")
        print(f"peak RSS overall: {peak_rss_mb():.0f} MB")
    child.kill()
    child.wait()
    for p in sorted(tmp.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    tmp.rmdir()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--live-seconds", type=float, default=30.0)
    ap.add_argument("--profile", metavar="FILE", help="cProfile the UI loop during the live window into FILE")
    a = ap.parse_args()
    asyncio.run(main(a.events, a.live_seconds, a.profile))
