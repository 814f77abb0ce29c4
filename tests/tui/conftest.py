"""TUI test fixtures. The tiny model and the espeak dataset are the training engineer's
(tests/train/conftest.py), loaded here rather than duplicated."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
sys.path.insert(0, str(HERE))

_spec = importlib.util.spec_from_file_location("train_conftest", HERE.parent / "train" / "conftest.py")
train_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_conftest)
tiny_model = train_conftest.tiny_model  # session fixtures: a tiny random XTTS model folder
dataset = train_conftest.dataset  # and a 14 + 3 clip espeak-ng dataset
xtts_ft = train_conftest.xtts_ft
wait_for = train_conftest.wait_for


def install_run(fixture: str, dest: Path, dataset: str = "/nowhere/ds", shift_to_now: bool = True) -> Path:
    """Copy a recorded events.jsonl into a run folder (+ run_config.json). Timestamps are moved so the
    last event is exactly 2 h old (stable "updated" columns in snapshots)."""
    dest.mkdir(parents=True, exist_ok=True)
    lines = (FIXTURES / fixture / "events.jsonl").read_text().splitlines()
    if shift_to_now:
        evs = [json.loads(x) for x in lines]
        delta = (time.time() - 7200) - evs[-1]["ts"]
        for e in evs:
            e["ts"] = round(e["ts"] + delta, 3)
        lines = [json.dumps(e) for e in evs]
    (dest / "events.jsonl").write_text("\n".join(lines) + "\n")
    (dest / "run_config.json").write_text(json.dumps({"dataset": dataset, "model": "/nowhere/model",
                                                      "run": str(dest), "epochs": 4}))
    return dest


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws = tmp_path / "ws"
    (ws / "runs").mkdir(parents=True)
    return ws


def snap_workspace(name: str) -> Path:
    """A fixed path, so paths shown on screen are the same in every snapshot run."""
    ws = Path("/tmp/xtts-ft-tui-snap") / name
    shutil.rmtree(ws, ignore_errors=True)
    (ws / "runs").mkdir(parents=True)
    return ws
