"""A listening job started before this studio (a studio restarted, or `xtts-ft listen` in a shell) is
found by the run's listen_process.json: Results shows it running, S stops it, its end is shown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
from conftest import install_run
from helpers import sync, until

from engine.jobs import process as jp
from engine.listen import job
from tui.app import make_app

ROOT = Path(__file__).resolve().parents[2]


@sync
async def test_results_reattaches_to_a_running_listen_job_and_stops_it(workspace):
    run = install_run("stopped_run", workspace / "runs" / "r1")
    (run / "checkpoints").mkdir()
    torch.save({"step": 7, "epoch": 0}, run / "checkpoints" / "checkpoint_7.pth")
    p = subprocess.run(jp.engine_cmd("listen", str(run), "--checkpoints", "last"), cwd=ROOT, capture_output=True,
                       text=True, env=jp.engine_env({"XTTS_FT_FAULT": "listen-sleep@120"}), timeout=300)
    assert p.returncode == 0, p.stderr
    files = job.files(run)
    assert files.alive()
    app = make_app(root=workspace, run=run, start="results", query_gpu=False)
    try:
        await _attach_and_stop(app, files)
    finally:
        if files.alive():
            job.stop(run)


async def _attach_and_stop(app, files):
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.current_mode == "results" and hasattr(app.screen, "listen_job"),
                    timeout=120, what="the Results screen")
        screen = app.screen
        await until(pilot, lambda: (screen.listen_job or {}).get("running"), timeout=120,
                    what="the running job to be found")
        await until(pilot, lambda: "S stops" in str(screen.query_one("#listen-head").render()),
                    what="the job shown on Results")
        assert screen.check_action("stop_job", ()) is True and screen.check_action("listen", ()) is False
        await pilot.press("S")
        await until(pilot, lambda: screen.listen_job and screen.listen_job["state"] == "stopped", timeout=60,
                    what="the job to stop")
        await until(pilot, lambda: not files.alive(), timeout=60, what="the job's process to end")
        await until(pilot, lambda: "job stopped" in str(screen.query_one("#listen-head").render()),
                    what="the stop shown on Results")
        assert screen.check_action("stop_job", ()) is False and screen.check_action("listen", ()) is True
