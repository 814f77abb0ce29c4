"""`xtts-ft export RUN --status / --stop`: the export job (engine/jobs/, kind `export`) seen and stopped
from the command line, with one clear line when there is nothing to show or stop.

Fast: the detached export waits (fault export-sleep, tests/faults/sitecustomize.py) before it reads
any checkpoint, so the stop lands while it runs; no model is needed."""

import json
import subprocess
from pathlib import Path

from engine.cli import main
from engine.events import EventWriter, read_events
from engine.jobs import process as jp
from engine.jobs import schema, states
from engine.model import export
from test_listen_job import _wait

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"model": str(tmp_path / "model"), "language": "en"}))
    return run


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(["export", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_export_status_and_stop_of_a_detached_export(tmp_path, capsys):
    run = _run(tmp_path)
    out = tmp_path / "models" / "v1"
    # no export yet: each says so in one line, nothing is created
    rc, text, _ = _cli(capsys, run, "--status")
    assert rc == 0 and text.strip() == (f"no export job for {run} (none was started; "
                                        f"`xtts-ft export {run} --out DIR` starts one)")
    rc, _, err = _cli(capsys, run, "--stop")
    assert rc == 2 and err.strip() == f"xtts-ft export: no export job is running for {run} (none was started)"
    rc, _, err = _cli(capsys, run)
    assert rc == 2 and "--out" in err and len(err.strip().splitlines()) == 1
    assert not export.files(run).process.exists()

    p = subprocess.run(jp.engine_cmd("export", str(run), "--out", str(out), "--detach"), cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env=jp.engine_env({"XTTS_FT_FAULT": "export-sleep@120"}))
    assert p.returncode == 0 and "--status" in p.stdout and "--stop" in p.stdout, p.stderr
    f = export.files(run)
    pid = jp.read_process(f.process)["pid"]
    _wait(lambda: read_events(f.events)[0], what="the export's first state")

    rc, text, _ = _cli(capsys, run, "--status", "--json")
    s = json.loads(text)
    assert rc == 0 and s["state"] == "running" and s["alive"] is True and s["pid"] == pid
    assert s["result"]["out"] == str(out)
    rc, text, _ = _cli(capsys, run, "--status")
    assert text.startswith(f"export job: running (pid {pid}), exporting best to {out}") and "--stop" in text

    rc, text, _ = _cli(capsys, run, "--stop")
    assert rc == 0 and f"pid {pid}" in text
    _wait(lambda: not f.alive(), what="the export to end")
    evs, _ = read_events(f.events)
    assert [e["state"] for e in evs if e["type"] == "state"] == ["running", "stopped"], f.log.read_text()[-2000:]
    for e in evs:
        assert schema.validate(e, job="export") == [], e
    assert not out.exists()
    rc, text, _ = _cli(capsys, run, "--status")
    assert rc == 0 and text.strip() == f"export job: stopped (best to {out}): stopped: nothing written to {out}"
    rc, _, err = _cli(capsys, run, "--stop")
    assert rc == 2 and err.strip() == (f"xtts-ft export: no export job is running for {run}: the last one ended "
                                       f"stopped (stopped: nothing written to {out})")


def test_export_status_of_a_finished_and_of_a_dead_export(tmp_path, capsys):
    run = _run(tmp_path)
    f = export.files(run)
    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()
    jp.write_process(f.process, dead.pid, "export", events=f.events)
    w = EventWriter(f.events)
    w.emit("state", state="running", job="export", out="/m/v1", checkpoint="best")
    w.emit("state", state="finished", job="export", out="/m/v1", checkpoint="/r/best_model.pth",
           summary=["[MODEL] exported /r/best_model.pth (global step 9) to /m/v1", "- model.pth 1.0 MB"])
    w.close()
    rc, text, _ = _cli(capsys, run, "--status")
    assert rc == 0 and text.splitlines() == ["export job: finished (/r/best_model.pth to /m/v1)",
                                             "[MODEL] exported /r/best_model.pth (global step 9) to /m/v1",
                                             "- model.pth 1.0 MB"]
    # a second export that died without a final state: only the latest is read, and it reads failed
    jp.write_process(f.process, dead.pid, "export", events=f.events)
    w = EventWriter(f.events)
    w.emit("state", state="running", job="export", out="/m/v2", checkpoint="last")
    w.close()
    rc, text, _ = _cli(capsys, run, "--status")
    assert text.startswith("export job: failed (last to /m/v2): " + states.DIED), text
