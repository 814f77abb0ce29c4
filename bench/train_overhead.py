"""Benchmark: training step time of the engine vs a bare coqui Trainer script (coqui's recipe shape).

Same tiny random XTTS model, same espeak-ng data, same seed, batch, threads and loader workers.
The engine runs exactly as users run it (`xtts-ft train --detach`: detached worker, event stream,
resource sampler, atomic checkpoints); the bare script is bench/bare_coqui_train.py. The runs are
interleaved (engine, bare, engine, bare, ...) to spread machine noise over both.

Step time = wall-clock interval between consecutive training steps inside an epoch (so it covers
data loading, forward/backward/optimizer and every per-step hook, and excludes evals and epoch
boundaries). Printed: the median of each run, then the ratio of the medians of all runs.

    .venv/bin/python bench/train_overhead.py [--epochs 6] [--repeats 3] [--threads 2] [--workers 0]

Target: ratio <= 1.03.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "train"))


def intervals(stamps: list[tuple]) -> list[float]:
    """Wall seconds between consecutive steps of the same epoch."""
    return [b[1] - a[1] for a, b in zip(stamps, stamps[1:]) if a[0] == b[0] and a[0] >= 0]


def cpu_intervals(stamps: list[tuple]) -> list[float]:
    """Process CPU seconds per step (from the previous step or the epoch start)."""
    return [b[2] - a[2] for a, b in zip(stamps, stamps[1:]) if b[0] >= 0]


def run_engine(model, dataset, tmp, i, a) -> list[float]:
    run = tmp / f"engine{i}"
    env = dict(os.environ)
    env.pop("XTTS_FT_FAULT", None)
    subprocess.run([sys.executable, "-m", "engine", "train", "--dataset", str(dataset), "--model", str(model),
                    "--run", str(run), "--epochs", str(a.epochs), "--batch-size", str(a.batch), "--workers",
                    str(a.workers), "--threads", str(a.threads), "--seed", "1", "--ab-samples", "0",
                    "--save-every-steps", "1000", "--scheduler", "none"] + (["--detach"] if a.detach else []),
                   cwd=ROOT, env=env, check=True, capture_output=True)
    from engine.events import read_events
    from engine.train import process

    while a.detach and process.process_alive(run):  # detached: wait quietly for the worker
        time.sleep(2)
    evs, _ = read_events(run / "events.jsonl")
    stamps = [(e["epoch"], e["ts"]) for e in evs if e["type"] == "step"]
    cpu = [e["cpu_time"] for e in evs if e["type"] == "step" and e.get("cpu_time") is not None]
    state = [e for e in evs if e["type"] == "state"][-1]
    assert state["state"] == "finished", state
    return intervals(stamps), cpu


def run_bare(model, dataset, tmp, i, a) -> list[float]:
    out = tmp / f"bare{i}"
    out.mkdir()
    subprocess.run([sys.executable, str(ROOT / "bench" / "bare_coqui_train.py"), str(model), str(dataset), str(out),
                    str(a.epochs), str(a.batch), str(a.workers), str(a.threads), "1"],
                   cwd=out, check=True, capture_output=True)
    stamps = [tuple(s) for s in json.loads((out / "stamps.json").read_text())["stamps"]]
    return intervals(stamps), cpu_intervals(stamps)


def equalize(dataset: Path, seconds: float) -> None:
    """Trim or zero-pad every clip to `seconds`, so each step costs the same whatever is drawn."""
    import numpy as np
    import soundfile as sf

    for wav in sorted((Path(dataset) / "wavs").glob("*.wav")):
        audio, rate = sf.read(str(wav), dtype="float32")
        n = int(seconds * rate)
        audio = audio[:n] if len(audio) >= n else np.pad(audio, (0, n - len(audio)))
        sf.write(str(wav), audio, rate, subtype="PCM_16")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--detach", action="store_true", help="start the engine with --detach (no follower)")
    ap.add_argument("--model", help="an existing model folder (default: a fresh tiny model)")
    ap.add_argument("--clip-seconds", type=float, default=3.0,
                    help="make every clip this long (0: keep them as made). XTTS's dataset draws a random clip "
                    "for every item and the two sides draw differently, so with clips of unequal length the "
                    "ratio would measure which clips were drawn (seen: 1.36-1.40), not the engine")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xtts-ft-bench-") as td:
        tmp = Path(td)
        if a.model:
            model = Path(a.model)
        else:
            from engine.model.tiny import make_tiny_model

            model = make_tiny_model(tmp / "tiny")
        from speech import make_dataset

        dataset = make_dataset(tmp / "data")
        if a.clip_seconds > 0:
            equalize(dataset, a.clip_seconds)
        eng_all, bare_all, eng_cpu, bare_cpu = [], [], [], []
        med = statistics.median
        for i in range(a.repeats):
            e, ec = run_engine(model, dataset, tmp, i, a)
            b, bc = run_bare(model, dataset, tmp, i, a)
            eng_all += e
            bare_all += b
            eng_cpu += ec
            bare_cpu += bc
            print(f"repeat {i + 1}: engine {med(e) * 1000:.1f} ms/step wall, {med(ec) * 1000:.1f} ms CPU "
                  f"({len(e)} steps); bare coqui {med(b) * 1000:.1f} ms/step wall, {med(bc) * 1000:.1f} ms CPU "
                  f"({len(b)} steps)", flush=True)
        me, mb = med(eng_all), med(bare_all)
        ce, cb = med(eng_cpu), med(bare_cpu)
        print(f"wall: engine {me * 1000:.1f} ms/step, bare coqui {mb * 1000:.1f} ms/step, "
              f"step-time ratio engine/bare = {me / mb:.3f} (target <= 1.03)")
        print(f"CPU:  engine {ce * 1000:.1f} ms/step, bare coqui {cb * 1000:.1f} ms/step, "
              f"CPU-time ratio engine/bare = {ce / cb:.3f} (insensitive to other load on the machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
