"""Shared fixtures: a tiny random XTTS model, an espeak-ng dataset and one complete training run.

The expensive things are session-scoped: the model folder (~300 MB, ~13 s), the dataset and the
main run (2 epochs of the tiny model, ~1 min on 2 cores) that several tests read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))

from speech import make_dataset  # noqa: E402


def xtts_ft(*args, env=None, timeout=600, check=True) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter, as a user would."""
    e = dict(os.environ)
    e.pop("XTTS_FT_FAULT", None)
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"xtts-ft {' '.join(map(str, args))} -> {proc.returncode}\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def events(run: Path) -> list[dict]:
    from engine.events import read_events

    evs, _ = read_events(run / "events.jsonl")
    return evs


def wait_for(pred, timeout=180.0, poll=0.2, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def final_state(run: Path) -> dict | None:
    for e in reversed(events(run)):
        if e["type"] == "state" and e["state"] in ("stopped", "finished", "failed"):
            return e
    return None


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models") / "tiny"
    xtts_ft("tiny-model", d)
    return d


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


# arguments every test run shares: tiny, quick, deterministic
FAST = ["--batch-size", "2", "--workers", "0", "--threads", "2", "--print-step", "1"]


@pytest.fixture(scope="session")
def main_run(tmp_path_factory, tiny_model, dataset) -> dict:
    """One full run followed in the foreground: 2 epochs x 7 steps, checkpoints every 4 steps,
    keep 2, A/B samples at the end."""
    run = tmp_path_factory.mktemp("runs") / "main"
    t0 = time.time()
    proc = xtts_ft("train", "--dataset", dataset, "--model", tiny_model, "--run", run, "--epochs", "2",
                   *FAST, "--save-every-steps", "4", "--keep-checkpoints", "2", "--ab-samples", "1", check=False)
    return {"run": run, "proc": proc, "seconds": time.time() - t0, "events": events(run)}


def read_json(p: Path):
    return json.loads(Path(p).read_text())
