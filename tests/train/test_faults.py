"""Training under faults (issue 16): a full disk, a damaged newest checkpoint, a run that ended
before its first checkpoint, a second job on a held run, damaged clips in the dataset."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import FAST, events, final_state, wait_for, xtts_ft

from engine import locks
from engine.train import checkpoints as ck
from engine.train import process

pytestmark = pytest.mark.slow


def _states(run: Path) -> list[dict]:
    return [e for e in events(run) if e["type"] == "state"]


def test_disk_full_while_checkpointing_fails_with_the_reason_and_resume_works_after(tiny_model, dataset,
                                                                                     small_disk):
    mnt, resize = small_disk(14)
    run = mnt / "run"
    # one tiny checkpoint (~9 MB) fits the 14 MB disk, the second does not
    proc = xtts_ft("train", "--dataset", dataset, "--model", tiny_model, "--run", run, "--epochs", "1", *FAST,
                   "--save-every-steps", "3", "--keep-checkpoints", "1", "--ab-samples", "0", check=False)
    assert proc.returncode == 1, proc.stdout[-3000:]
    last = _states(run)[-1]
    assert last["state"] == "failed", last
    assert last["reason"].startswith(f"no space left on device while writing {run / 'checkpoints'}"), last["reason"]
    assert "checkpoint_6.pth" in last["reason"] and f"xtts-ft resume {run}" in last["reason"]
    assert last["io_error"] == "ENOSPC"
    assert "No space left on device" in (run / "train.log").read_text(errors="replace") or \
        "no space left on device" in (run / "train.log").read_text(errors="replace")
    # the checkpoint written before is kept and loads; no temporary is left
    assert [s for s, _ in ck.list_checkpoints(run)] == [3]
    assert ck.latest_loadable(run)[1]["step"] == 3
    assert not list((run / "checkpoints").glob(".*"))
    st = process.summarize(run)
    assert st["state"] == "failed" and "no space left" in st["reason"]
    # once there is room, resume finishes the run from that checkpoint
    resize(80)
    proc = xtts_ft("resume", run)
    assert "run finished" in proc.stdout
    resumed = [e for e in events(run) if e["type"] == "resumed"]
    assert [r["global_step"] for r in resumed] == [3]
    assert final_state(run)["state"] == "finished"


def _copy_run(main_run, dest: Path) -> Path:
    src = main_run["run"]
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("samples", "coqui", ".lock"))
    return dest


def test_a_damaged_newest_checkpoint_is_reported_and_the_previous_one_resumed(main_run, tmp_path):
    run = _copy_run(main_run, tmp_path / "damaged")
    newest = ck.list_checkpoints(run)[-1][1]
    assert newest.name == "checkpoint_14.pth"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])      # torn by a bad disk
    xtts_ft("resume", run)
    said = [e["msg"] for e in events(run) if e["type"] == "log" and e["level"] == "warning"]
    assert any(m.startswith("checkpoint_14.pth is damaged") and "set aside" in m for m in said), said
    assert "checkpoint_14.pth is damaged" in (run / "train.log").read_text()
    alerts = [e for e in events(run) if e["type"] == "alert" and e.get("kind") == "damaged_checkpoint"]
    assert len(alerts) == 1 and alerts[0]["path"].endswith("checkpoint_14.pth.damaged")
    assert [e["global_step"] for e in events(run) if e["type"] == "resumed"] == [12]
    assert final_state(run)["state"] == "finished"
    assert (run / "checkpoints" / "checkpoint_14.pth.damaged").exists()
    assert ck.latest_loadable(run)[1]["step"] == 14        # written again by the resumed run


def test_a_run_that_ended_before_its_first_checkpoint_has_a_way_out(main_run, tiny_model, dataset, tmp_path):
    run = tmp_path / "early"
    run.mkdir()
    shutil.copy(main_run["run"] / "run_config.json", run / "run_config.json")
    (run / "events.jsonl").write_text('{"v": 1, "ts": 1, "type": "state", "state": "preparing"}\n')
    (run / "train.log").write_text("killed\n")
    res = xtts_ft("resume", run, check=False)
    assert res.returncode != 0 and f"xtts-ft resume {run} --restart" in res.stdout + res.stderr
    res = xtts_ft("train", "--dataset", dataset, "--model", tiny_model, "--run", run, check=False)
    assert res.returncode != 0 and "--restart" in res.stdout + res.stderr
    # a second job on a held run is refused, naming the holder
    with locks.hold(run, "xtts-ft train"):
        res = xtts_ft("resume", run, "--restart", check=False)
    assert res.returncode != 0 and f"in use by xtts-ft train (pid {os.getpid()}" in res.stdout + res.stderr
    assert (run / "train.log").read_text() == "killed\n"         # nothing was touched
    # the way out: start again with the saved settings
    xtts_ft("resume", run, "--restart", "--detach")
    wait_for(lambda: [e for e in events(run) if e["type"] == "step"], what="the first step of the new attempt")
    holder = locks.holder(run)
    assert holder and holder["pid"] == process.worker_pid(run) and holder["job"] == "xtts-ft train"
    xtts_ft("stop", run, "--now", "--wait")
    assert not (run / "train.log").read_text().startswith("killed")
    first = _states(run)[0]
    assert first["state"] == "preparing" and first["resume"] is False


def test_damaged_clips_are_named_before_training_starts(tiny_model, dataset, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    ev_rows = (ds / "metadata_eval.csv").read_text().splitlines()
    bad_eval = ev_rows[1].split("|")[0]
    (ds / bad_eval).write_bytes(os.urandom(3000))                      # garbage under a .wav name
    tr_rows = (ds / "metadata_train.csv").read_text().splitlines()
    bad_train = tr_rows[2].split("|")[0]
    (ds / bad_train).write_bytes((ds / bad_train).read_bytes()[:44])    # a header and no samples
    run = tmp_path / "run"
    proc = xtts_ft("train", "--dataset", ds, "--model", tiny_model, "--run", run, "--epochs", "1", *FAST,
                   "--ab-samples", "0", check=False)
    assert proc.returncode == 1
    last = _states(run)[-1]
    assert last["state"] == "failed"
    assert f"{bad_eval} (eval): not readable as audio" in last["reason"], last["reason"]
    assert f"{bad_train} (train): empty" in last["reason"]
    assert last["reason"].startswith("2 of the ")
    assert not [e for e in events(run) if e["type"] == "step"]
