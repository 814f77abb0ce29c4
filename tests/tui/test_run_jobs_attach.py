"""Listening tests and exports of other runs, found at start-up like prep jobs (by their process.json):
a studio closed while they ran announces the ones still running, Home lists them, a opens one in Results
where S stops it; a job that ended while the studio was closed is announced once, at the next start."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import torch
from conftest import install_run
from helpers import sync, until

from engine.jobs import process as jp
from engine.listen import job
from engine.model import export
from tui.app import make_app

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str, fault: str) -> None:
    p = subprocess.run(jp.engine_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=jp.engine_env({"XTTS_FT_FAULT": fault}))
    assert p.returncode == 0, p.stderr


def _titles(app) -> list[str]:
    return [n.title or "" for n in app._notifications]


@sync
async def test_studio_finds_listen_and_export_jobs_of_other_runs(workspace):
    current = install_run("stopped_run", workspace / "runs" / "r1")
    listening = install_run("stopped_run", workspace / "runs" / "r2")
    exporting = install_run("stopped_run", workspace / "runs" / "r3")
    (listening / "checkpoints").mkdir()
    torch.save({"step": 7, "epoch": 0}, listening / "checkpoints" / "checkpoint_7.pth")
    _start("listen", str(listening), "--checkpoints", "last", fault="listen-sleep@120")
    _start("export", str(exporting), "--out", str(workspace / "models" / "xtts" / "v3"), "--detach",
           fault="export-sleep@120")
    try:
        app = make_app(root=workspace, run=current, start="home", query_gpu=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: {"Listening test of r2 still running", "Export of r3 still running"}
                        <= set(_titles(app)), what="the running jobs to be announced")
            home = app.screen
            await until(pilot, lambda: len(home.running()) == 2, what="Home to list the jobs going on")
            assert [r["path"].name for r in home.running()] == ["r2", "r3"]
            assert home.check_action("attach", ()) is True
            rows = [r["path"].name for r in home.rows]
            home.query_one("#home-table").move_cursor(row=rows.index("r2"))
            await pilot.pause(0.2)
            assert "listening test running" in str(home.query_one("#home-detail").render())
            await pilot.press("enter")
            await until(pilot, lambda: app.current_mode == "results" and app.studio.run == listening,
                        what="Results of the listening run")
            screen = app.screen
            await until(pilot, lambda: (screen.listen_job or {}).get("running"), what="the job followed on Results")
            await pilot.press("S")
            await until(pilot, lambda: not job.files(listening).alive(), timeout=60, what="the job to stop")
            ends = ("Listening test stopped", "Listening test of r2 stopped")   # by Results or by the watcher

            await until(pilot, lambda: any(t in ends for t in _titles(app)), what=f"its end announced: {_titles(app)}")
            await pilot.pause(3)   # both see the end: it is reported once only
            assert sum(t in ends for t in _titles(app)) == 1, _titles(app)
        # the export ends while no studio is open
        export.stop(exporting)
        t0 = time.monotonic()
        while export.files(exporting).alive():
            assert time.monotonic() - t0 < 60, "the export did not stop"
            time.sleep(0.2)
        app = make_app(root=workspace, start="home", query_gpu=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "Export of r3 stopped while the studio was closed" in _titles(app),
                        what="the export's end announced")
            await pilot.pause(1)
            assert not any("r2" in t for t in _titles(app)), _titles(app)   # reported in the last session
            assert app.screen.running() == []
        app = make_app(root=workspace, start="home", query_gpu=False)
        async with app.run_test(size=(80, 24)) as pilot:   # a third start: nothing new to say
            await pilot.pause(2)
            assert _titles(app) == []
    finally:
        for f in (job.files(listening), export.files(exporting)):
            if f.alive():
                jp.stop(f.process)
