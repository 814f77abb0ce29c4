"""`xtts-ft listen RUN` is a job of the one protocol (engine/jobs/): started detached, recorded in
R/listen_process.json, every event valid for the schema, stopped by `--stop` (SIGINT) -> `stopped`.

Fast: the job waits (fault listen-sleep, tests/faults/sitecustomize.py) before loading any model,
so the stop lands while it runs; no training or synthesis is needed."""

import json
import subprocess
import time
from pathlib import Path

import torch

from engine.events import read_events
from engine.jobs import JobFiles, schema, states
from engine.jobs import process as jp

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, fault=""):
    return subprocess.run(jp.engine_cmd(*map(str, args)), cwd=ROOT, env=jp.engine_env({"XTTS_FT_FAULT": fault}),
                          capture_output=True, text=True, timeout=300)


def _wait(pred, timeout=120.0, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _states(files):
    evs, _ = read_events(files.events)
    return evs, [e["state"] for e in evs if e["type"] == "state"]


def test_listen_job_writes_process_json_and_stops(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run_config.json").write_text(json.dumps({"model": str(tmp_path / "model"), "language": "en"}))
    torch.save({"step": 7, "epoch": 0}, run / "checkpoints" / "checkpoint_7.pth")
    files = JobFiles("listen", run)

    p = _cli("listen", run, "--checkpoints", "last", fault="listen-sleep@120")
    assert p.returncode == 0, p.stderr
    assert "listening job started" in p.stdout and "--stop" in p.stdout
    info = jp.read_process(files.process)
    assert info["kind"] == "listen" and info["stop_signal"] == "SIGINT" and info["events"] == str(files.events)
    assert "--foreground" in info["cmd"] and info["create_time"] is not None
    assert files.alive()
    # the job's first state, written by the detached process that process.json names
    evs, st = _wait(lambda: (lambda r: r if r[1] else None)(_states(files)), what="the job's first state")
    assert st == ["preparing"] and evs[0]["job"] == "listen" and evs[0]["pid"] == info["pid"]

    status = json.loads(_cli("listen", run, "--status", "--json").stdout)
    assert status["state"] == "preparing" and status["alive"] is True and status["pid"] == info["pid"]
    # one job per run at a time: a second start is refused, nothing else started
    again = _cli("listen", run, "--checkpoints", "last")
    assert again.returncode == 2 and "already running" in again.stderr
    assert jp.read_process(files.process)["pid"] == info["pid"]

    stop = _cli("listen", run, "--stop")
    assert stop.returncode == 0 and f"pid {info['pid']}" in stop.stdout, stop.stderr
    _wait(lambda: not files.alive(), what="the listening job to end")
    evs, st = _states(files)
    assert st == ["preparing", "stopped"], (st, files.log.read_text()[-2000:])
    assert "stop requested" in evs[-1]["reason"]
    for e in evs:
        assert schema.validate(e, job="listen") == [], e
    status = json.loads(_cli("listen", run, "--status", "--json").stdout)
    assert status["state"] == "stopped" and status["alive"] is False and states.is_final(status["state"])
    assert "stop requested" in _cli("listen", run, "--status").stdout
    # nothing left running: a stop now says so in one line
    p = _cli("listen", run, "--stop")
    assert p.returncode == 2 and "no listening job is running" in p.stderr
    assert not (run / "listen" / "step7").exists()     # no test was started, none half-written


def test_a_dead_listen_job_reads_failed(tmp_path):
    from engine.listen import job

    run = tmp_path / "run"
    run.mkdir()
    p = subprocess.Popen(["sleep", "0"])
    p.wait()
    files = job.files(run)
    jp.write_process(files.process, p.pid, "listen", events=files.events)
    from engine.events import EventWriter

    w = EventWriter(files.events)
    w.emit("state", state="listening", job="listen", tests=2, sentences=4)
    w.close()
    s = job.job_summary(run)
    assert s["state"] == "failed" and states.DIED in s["reason"] and s["progress"]["total"] == 4


def test_listen_status_and_stop_without_a_job_say_so_in_one_line(tmp_path, capsys):
    from engine.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"model": str(tmp_path / "model"), "language": "en"}))
    assert main(["listen", str(run), "--status"]) == 0
    assert capsys.readouterr().out.strip() == (f"no listening job for {run} (none was started; "
                                               f"`xtts-ft listen {run}` starts one)")
    assert main(["listen", str(run), "--stop"]) == 2
    assert capsys.readouterr().err.strip() == f"xtts-ft listen: no listening job is running for {run} (none was started)"


def test_results_written_before_listening_was_a_job_read_finished(tmp_path, capsys):
    """R/listen/<label>/result.json from an older version (no listen_process.json, no listen events):
    the state comes from the finished results on disk, not `new`."""
    from engine.cli import main
    from engine.listen import job

    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"model": str(tmp_path / "model"), "language": "en"}))
    for label, step, cer in (("base", None, 0.10), ("step7", 7, 0.08)):
        d = run / "listen" / label
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"label": label, "step": step, "voices": [],
                                                   "summary": {"cer": cer, "similarity": 0.8, "flagged": 0}}))
    (run / "listen" / "step9").mkdir()      # an unfinished test: no result.json
    assert not job.files(run).process.exists() and not job.files(run).events.exists()
    s = job.job_summary(run)
    assert s["state"] == "finished" and s["alive"] is False
    assert main(["listen", str(run), "--status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("listening job: finished\n") and "recommended: step7" in out
    # a run with an unfinished test only stays new: nothing on disk says a test finished
    (run / "listen" / "base" / "result.json").unlink()
    (run / "listen" / "step7" / "result.json").unlink()
    assert job.job_summary(run)["state"] == states.NEW
