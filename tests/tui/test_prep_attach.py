"""A prep job started earlier (another studio, or before this one restarted) is found by its
prep_process.json, followed to its end, and can be stopped from the studio."""

from __future__ import annotations

import time
from pathlib import Path

import speechgen
from helpers import sync

from engine.jobs import JobFiles
from engine.jobs import process as jp
from tui.app import make_app

ROOT = Path(__file__).resolve().parents[2]


async def until(pilot, pred, timeout=120.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _start_prep(src: Path, out: Path, whisper_model: str):
    for k in range(5):
        audio, _ = speechgen.compose(speechgen.SENTENCES[2 * k: 2 * k + 2], pauses=0.6)
        speechgen.write(src / f"take{k}.wav", audio)
        (src / f"take{k}.txt").write_text(" ".join(speechgen.SENTENCES[2 * k: 2 * k + 2]))
    proc = jp.spawn_detached(jp.engine_cmd("prep", str(src), "--out", str(out), "--transcripts", "files",
                                           "--whisper-model", whisper_model, "--no-speaker-check"),
                             out.parent / "prep_cli.log", cwd=ROOT, env={"XTTS_FT_FAULT": "prep-sleep@1.5"})
    files = JobFiles("prep", out)
    t0 = time.time()
    while not (files.process.is_file() and jp.alive(files.process)):
        assert time.time() - t0 < 120, "prep did not start"
        time.sleep(0.1)
    return proc, files


@sync
async def test_studio_reattaches_to_a_running_prep_and_stops_it(workspace, tmp_path, whisper_model):
    out = workspace / "datasets" / "voice"
    (tmp_path / "src").mkdir()
    proc, files = _start_prep(tmp_path / "src", out, whisper_model)
    app = make_app(root=workspace, dataset=out, start="prep", query_gpu=False)
    async with app.run_test(size=(80, 24)) as pilot:
        m = app.prep_model
        await until(pilot, lambda: m.alive and m.state == "running", what="the running prep to be attached")
        assert app.prep_dataset == out and app.prep_proc is None  # not started here: followed by process.json
        await until(pilot, lambda: len(m.sources) >= 2, what="sources reported")
        assert app.screen.check_action("stop_prep", ()) is True
        assert app.stop_prep()
        await until(pilot, lambda: m.state == "stopped" and m.alive is False, what="the prep to stop")
        assert "run prep again" in m.reason
    assert proc.wait(timeout=60) == 130
