"""One job protocol (engine/jobs/): states, schema, process.json, stop and re-attach, on a real prep."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import speechgen

from engine.events import SCHEMA_VERSION, encode
from engine.jobs import JobFiles, find_jobs, schema, states, summarize
from engine.jobs import process as jp

ROOT = Path(__file__).resolve().parents[2]


def _event(type_, **fields):
    return json.loads(encode(type_, **fields))


def test_one_set_of_states_everywhere():
    from engine.train import follow
    from tui import runmodel

    assert set(states.ACTIVE).isdisjoint(states.FINAL) and set(states.STATES) == set(states.ACTIVE + states.FINAL)
    assert set(states.EXIT_CODES) == set(states.FINAL)
    assert states.shown("training", alive=False) == "failed" and states.shown("training", alive=None) == "training"
    # nobody keeps a copy of the tuples
    for module in (follow, runmodel):
        assert not hasattr(module, "FINAL_STATES") and not hasattr(module, "ACTIVE_STATES")


def test_schema_validates_every_job_and_still_reads_version_1():
    ok = _event("state", state="running", job="prep")
    assert schema.validate(ok, job="prep") == []
    assert schema.validate(_event("state", state="running"), job="prep") == ["state: missing job"]
    assert "unknown state" in schema.validate(_event("state", state="done", job="prep"))[0]
    assert schema.validate(_event("step", epoch=0), job="prep")[0].startswith("unknown type 'step' for a prep job")
    warn = _event("log", tag="GPU", level="warning", msg="Your available VRAM is below the recommended 12GB threshold.")
    assert any("without a code" in p for p in schema.validate(warn))
    assert schema.validate({**warn, "code": "low_vram"}) == []
    # a version-1 line (no codes, no job) still validates, and upgrade() gives it the code from its fields
    v1 = {**warn, "v": 1, "total_mb": 8192}
    assert schema.validate(v1) == [] and schema.upgrade(v1)["code"] == "low_vram"
    v1_small = {"v": 1, "ts": 1.0, "type": "log", "tag": "DATA", "level": "warning", "msg": "Very small training dataset",
                "train_samples": 12}
    assert schema.upgrade(v1_small)["code"] == "small_dataset"
    assert schema.validate({**ok, "v": SCHEMA_VERSION + 1})[0].startswith("v is")


def test_studio_alerts_come_from_codes_not_from_text():
    from tui.runmodel import RunModel

    m = RunModel()
    m.replaying = False
    text = "Your available VRAM is below the recommended 12GB threshold."
    m.absorb_all([_event("log", tag="GPU", level="warning", msg=text, code="lr_advice")])
    assert [a["kind"] for a in m.alerts] == []  # the English text alone raises nothing
    m.absorb_all([_event("log", tag="GPU", level="warning", msg="(any wording)", code="low_vram")])
    m.absorb_all([{"v": 1, "ts": 2.0, "type": "log", "tag": "DATA", "level": "warning", "msg": "x", "details": ["d"],
                   "train_samples": 3}])
    assert [a["kind"] for a in m.alerts] == ["low_vram", "small_dataset"]


def _sources(folder: Path, n: int) -> Path:
    for k in range(n):
        audio, _ = speechgen.compose(speechgen.SENTENCES[2 * k: 2 * k + 2], pauses=0.6)
        speechgen.write(folder / f"take{k}.wav", audio)
        (folder / f"take{k}.txt").write_text(" ".join(speechgen.SENTENCES[2 * k: 2 * k + 2]))
    return folder


def _wait(pred, timeout=180.0, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_real_prep_stopped_mid_job_ends_stopped_and_every_event_validates(tmp_path, whisper_model):
    src = _sources(tmp_path / "src", 5)
    out = tmp_path / "ds"
    files = JobFiles("prep", out)
    # started as from a shell's background (`xtts-ft studio &`, nohup, a service): SIGINT comes
    # ignored, and the job must still hear its stop signal
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = jp.spawn_detached(jp.engine_cmd("prep", str(src), "--out", str(out), "--transcripts", "files",
                                               "--whisper-model", whisper_model, "--no-speaker-check"),
                                 tmp_path / "prep_tui.log", cwd=ROOT, env={"XTTS_FT_FAULT": "prep-sleep@1.5"})
    finally:
        signal.signal(signal.SIGINT, before)
    # prep wrote its own process.json: found, alive, with the offset it started at
    _wait(lambda: files.process.is_file(), what="prep_process.json")
    assert jp.read_process(files.process)["pid"] == proc.pid and jp.alive(files.process)
    assert [(j.kind, j.folder) for j in find_jobs(tmp_path)] == [("prep", out)]
    # the third source's report: two are finished (each source sleeps 1.5 s before segmenting)
    _wait(lambda: sum(e["type"] == "source_report" for e in _events(files)) >= 3, what="the third source")
    jp.stop(files.process)  # its stop signal (SIGINT): the finished sources are saved
    assert proc.wait(timeout=180) == 130
    evs = _events(files)
    assert [(t, p) for e in evs for p in schema.validate(e, job="prep") for t in [e["type"]]] == []
    final = [e for e in evs if e["type"] == "state"][-1]
    assert final["state"] == "stopped" and "run prep again" in final["reason"] and "interrupted: 2 source" in final["reason"]
    assert not any(e["type"] == "state" and e["state"] == "finished" for e in evs)
    s = summarize(files, latest_only=True)
    assert s["state"] == "stopped" and s["alive"] is False
    assert (out / "dataset.json").is_file()  # what was done is kept
    # run again to the end: the same file goes on, the latest job's summary is `finished`
    rc = subprocess.run(jp.engine_cmd("prep", str(src), "--out", str(out), "--transcripts", "files",
                                      "--whisper-model", whisper_model, "--no-speaker-check"),
                        cwd=ROOT, env=jp.engine_env({"XTTS_FT_FAULT": ""}), capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr[-2000:]
    assert summarize(files, latest_only=True)["state"] == "finished"
    assert all(schema.validate(e, job="prep") == [] for e in _events(files))


def _events(files):
    from engine.events import read_events

    return read_events(files.events)[0]


def test_dead_job_is_failed_and_stop_refuses(tmp_path):
    files = JobFiles("prep", tmp_path)
    files.events.write_text(encode("state", state="running", job="prep") + "\n")
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    jp.write_process(files.process, p.pid, "prep", events=files.events)
    assert summarize(files)["state"] == "running"
    p.send_signal(signal.SIGKILL)
    p.wait()
    s = summarize(files)
    assert s["state"] == "failed" and s["died"] and states.DIED in s["reason"]
    with pytest.raises(ProcessLookupError):
        jp.stop(files.process)
