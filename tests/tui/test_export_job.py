"""Export is a job of the one protocol (engine/jobs/, kind `export`, R/export_process.json): the
studio starts it detached and shows its own summary when it ends (from its events, not from what a
library printed); one started elsewhere is found, and S stops it with nothing written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch
from conftest import install_run
from helpers import sync, until

from engine.events import read_events
from engine.jobs import schema
from engine.jobs import process as jp
from engine.model.export import files
from tui.app import make_app

ROOT = Path(__file__).resolve().parents[2]


def _run(workspace: Path, tiny_model: Path) -> Path:
    run = install_run("stopped_run", workspace / "runs" / "r1")
    cfg = json.loads((run / "run_config.json").read_text())
    (run / "run_config.json").write_text(json.dumps({**cfg, "model": str(tiny_model), "language": "en", "batch_size": 2, "grad_accum": 1,
                                                    "lr": 5e-6, "optimizer": "adamw", "scheduler": "none",
                                                    "precision": "fp32", "base_checkpoint": None}))
    (run / "checkpoints").mkdir()
    base = torch.load(tiny_model / "model.pth", map_location="cpu", weights_only=True)
    gpt = {k: v for k, v in (base.get("model") or base).items() if k.startswith("gpt.")}
    torch.save({"model": gpt, "step": 7, "epoch": 0}, run / "checkpoints" / "checkpoint_7.pth")
    return run


@sync
async def test_studio_exports_as_a_detached_job(workspace, tiny_model):
    run = _run(workspace, tiny_model)
    out = workspace / "models" / "xtts" / "v1"
    app = make_app(root=workspace, run=run, start="results", query_gpu=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.current_mode == "results" and hasattr(app.screen, "export_job"),
                    timeout=120, what="the Results screen")
        screen = app.screen
        screen.exporting = True
        screen._export(run, out, str(run / "checkpoints" / "checkpoint_7.pth"))
        await until(pilot, lambda: not screen.exporting, timeout=180, what="the export to end")
        assert screen.export_job["state"] == "finished", screen.export_job
        assert "[MODEL] exported" in str(screen.query_one("#results-note").render())
        assert not screen.exporting and screen.check_action("export", ()) is True
    assert (out / "model.pth").is_file() and (out / "config.json").is_file()
    f = files(run)
    assert jp.read_process(f.process)["kind"] == "export"
    evs, _ = read_events(f.events)
    assert [e["state"] for e in evs if e["type"] == "state"] == ["running", "finished"]
    assert evs[-1]["out"] == str(out) and evs[-1]["summary"][0].startswith("[MODEL] exported")
    for e in evs:
        assert schema.validate(e, job="export") == [], e


@sync
async def test_studio_finds_a_running_export_and_stops_it(workspace, tiny_model):
    run = _run(workspace, tiny_model)
    out = workspace / "models" / "xtts" / "v2"
    p = subprocess.run(jp.engine_cmd("export", str(run), "--out", str(out), "--checkpoint", str(run / "checkpoints" / "checkpoint_7.pth"), "--detach"),
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=jp.engine_env({"XTTS_FT_FAULT": "export-sleep@120"}))
    assert p.returncode == 0 and "detached job" in p.stdout, p.stderr
    f = files(run)
    app = make_app(root=workspace, run=run, start="results", query_gpu=False)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.current_mode == "results" and hasattr(app.screen, "export_job"),
                        timeout=120, what="the Results screen")
            screen = app.screen
            await until(pilot, lambda: (screen.export_job or {}).get("state") == "running", timeout=120,
                        what="the running export to be found")
            assert screen.exporting and screen.check_action("export", ()) is False
            assert screen.check_action("stop_job", ()) is True
            await pilot.press("S")
            await until(pilot, lambda: not f.alive(), timeout=60, what="the export to stop")
            await until(pilot, lambda: "nothing written" in str(screen.query_one("#results-note").render()),
                        what="the stop shown")
            assert not screen.exporting
    finally:
        if f.alive():
            jp.stop(f.process)
    evs, _ = read_events(f.events)
    assert [e["state"] for e in evs if e["type"] == "state"] == ["running", "stopped"]
    assert not out.exists() and not list(out.parent.glob(".v2*"))
    for e in evs:
        assert schema.validate(e, job="export") == [], e
