"""Prep under faults (issue 16): concurrent jobs, disk full, Ctrl-C at every stage, unreadable
files, a read-only output folder, multichannel levels. Whatever happens, nothing finished is lost
and dataset.json, the CSVs and wavs/ agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import speechgen

from engine import locks
from engine.audio import intake, vad
from engine.prep import dataset as ds
from engine.prep.builder import Prep, PrepOptions, run_prep
from engine.prep.report import Reporter

ROOT = Path(__file__).resolve().parents[2]
NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


def _prep(sources, out, **kw):
    events = []
    rep = Reporter(console=None)
    rep.add_listener(events.append)
    kw.setdefault("transcripts", "files")
    kw.setdefault("speaker_check", False)
    return run_prep(PrepOptions([str(s) for s in sources], out, **kw), rep), events


def _cli(*args, prefix=(), timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.run([*prefix, sys.executable, "-m", "engine", "prep", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def _source(folder: Path, name: str, k: int, n: int = 2, **write) -> Path:
    """A short recording with its transcript beside it (no whisper needed)."""
    S = speechgen.SENTENCES
    text = S[(k * n) % len(S) : (k * n) % len(S) + n]
    audio, _ = speechgen.compose(text, pauses=0.5, seed=k)
    path = speechgen.write(folder / name, audio, **write)
    path.with_suffix(".txt").write_text(" ".join(text))
    return path


def assert_consistent(out: Path) -> dict | None:
    """dataset.json lists exactly the clips in wavs/, and the CSVs are its included rows."""
    m = ds.load_manifest(out)
    wavs = {f"wavs/{p.name}" for p in (out / "wavs").glob("*")} if (out / "wavs").is_dir() else set()
    if m is None:
        assert not wavs, f"clips without a dataset.json: {sorted(wavs)}"
        return None
    listed = {s["file"] for s in m["segments"]}
    assert wavs == listed, f"wavs/ and dataset.json disagree: extra {wavs - listed}, missing {listed - wavs}"
    for split, name in (("train", ds.TRAIN_CSV), ("eval", ds.EVAL_CSV)):
        rows = [ln.split("|")[0] for ln in (out / name).read_text().splitlines()[1:]]
        want = [s["file"] for s in m["segments"] if ds.included(s) and s["split"] == split and s["text"].strip()]
        assert rows == want, f"{name} disagrees with dataset.json"
    return m


@pytest.fixture(scope="module")
def three_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    for k in range(3):
        _source(folder, f"part{k}.wav", k)
    return folder


# ------------------------------------------------------------------------------------ locking
def test_a_second_prep_on_a_held_dataset_is_refused_naming_the_holder(tmp_path, three_sources):
    out = tmp_path / "ds"
    out.mkdir()
    with locks.hold(out, "xtts-ft prep"):
        res = _cli(three_sources / "part0.wav", "--out", out, "--transcripts", "files", "--no-speaker-check")
    assert res.returncode == 1
    assert f"in use by xtts-ft prep (pid {os.getpid()}" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (out / "prep_events.jsonl").exists() and not (out / "dataset.json").exists()
    assert locks.holder(out) is None


@pytest.mark.slow
def test_two_concurrent_preps_never_lose_a_source(tmp_path):
    out = tmp_path / "ds"
    for k in range(4):
        _source(tmp_path / f"job{k // 2}", f"part{k}.wav", k)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    procs = [subprocess.Popen([sys.executable, "-m", "engine", "prep", str(tmp_path / f"job{k}"),
                               "--out", str(out), "--transcripts", "files", "--no-speaker-check"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for k in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    m = assert_consistent(out)
    names = {s["name"] for s in m["sources"]}
    for k, (rc, _, err) in enumerate(results):
        if rc == 0:
            assert {f"part{2 * k}.wav", f"part{2 * k + 1}.wav"} <= names, "a prep said it was done but lost a source"
        else:
            assert rc == 1 and "is in use by xtts-ft prep (pid" in err, err
    assert any(rc == 0 for rc, _, _ in results)


# ------------------------------------------------------------------------------------ Ctrl-C
def _sigint_on_call(monkeypatch, owner, name, nth=1):
    real = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*a, **kw):
        calls["n"] += 1
        if calls["n"] == nth:
            os.kill(os.getpid(), signal.SIGINT)     # a real Ctrl-C, delivered while this stage runs
        return real(*a, **kw)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


STAGES = {
    # stage: (object, attribute, which call, sources saved; None: depends on how far the next
    # source's decode and VAD, which run ahead in a worker thread, had got)
    "decode": (intake, "decode", 2, None),
    "vad": (vad, "speech_regions", 3, None),
    "clip writing": ("prep", "_write_wav", 2, 1),
    "duplicate check": (Prep, "_duplicates", 1, 3),
    "speaker check": (Prep, "_speakers", 1, 3),
    "split": (ds, "assign_splits", 1, 3),
    "saving": (ds, "write_csvs", 1, 3),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_ctrl_c_at_any_stage_keeps_what_is_finished(stage, tmp_path, three_sources, monkeypatch):
    import engine.prep.builder as prep_mod

    owner, attr, nth, saved = STAGES[stage]
    owner = prep_mod if owner == "prep" else owner
    calls = _sigint_on_call(monkeypatch, owner, attr, nth)
    out = tmp_path / "ds"
    result, _ = _prep([three_sources], out, speaker_check=stage == "speaker check")
    assert calls["n"] >= nth, "the stage was never reached"
    assert result.interrupted, result.reason
    m = assert_consistent(out)
    if saved is not None:
        assert m is not None and len(m["sources"]) == saved, m and [s["name"] for s in m["sources"]]
    assert not (out / ".work").exists() or not any((out / ".work").iterdir())
    if m is not None and m["segments"]:
        # cut short before the duplicate and speaker checks were through: the next run checks them
        checked = stage in ("split", "saving")
        assert set(m["unchecked"]) == (set() if checked else {s["id"] for s in m["segments"]}), stage
    monkeypatch.undo()
    again, _ = _prep([three_sources], out, speaker_check=stage == "speaker check")
    assert again.ok and not again.interrupted, again.reason
    m = assert_consistent(out)
    assert sorted(s["name"] for s in m["sources"]) == ["part0.wav", "part1.wav", "part2.wav"]
    assert not m["unchecked"]


def test_orphan_clips_and_temporaries_of_a_killed_run_are_cleaned(tmp_path, three_sources):
    out = tmp_path / "ds"
    first, _ = _prep([three_sources / "part0.wav", three_sources / "part1.wav"], out)
    assert first.ok, first.reason
    # what a SIGKILL mid-source leaves: clips not in dataset.json, a temporary, a working folder
    sf.write(str(out / "wavs" / "killed_abc123_000.wav"), np.zeros(22050, np.float32), 22050)
    (out / "wavs" / ".killed_abc123_001.wav.xyz.wav").write_bytes(b"RIFF")
    (out / ".work" / "4242").mkdir(parents=True)
    (out / ".work" / "4242" / "x.22k.wav").write_bytes(b"0" * 100)
    again, events = _prep([three_sources], out)
    assert again.ok, again.reason
    assert_consistent(out)
    assert not (out / ".work").exists() or not any((out / ".work").iterdir())
    assert any("interrupted run left" in e.get("msg", "") for e in events if e["type"] == "log")


# ------------------------------------------------------------------------------------ disk full
@pytest.mark.slow
def test_disk_full_in_prep_new_and_add_is_reported_and_loses_nothing(tmp_path, three_sources, small_disk):
    mnt, resize = small_disk(3)
    out = mnt / "ds"
    big = tmp_path / "big"
    # 40 s (two sentences, then a long pause: one clip, no whisper needed): its working files (~5 MB)
    # cannot fit on the 3 MB disk
    audio, _ = speechgen.compose(speechgen.SENTENCES[20:22], pauses=0.5)
    audio = np.concatenate([audio, np.zeros(40 * speechgen.RATE - len(audio), np.float32)])
    speechgen.write(big / "long.wav", audio)
    (big / "long.txt").write_text(" ".join(speechgen.SENTENCES[20:22]))
    # new dataset: the first source fits, the long one does not
    res = _cli(three_sources / "part0.wav", big / "long.wav", "--out", out, "--transcripts", "files",
               "--no-speaker-check")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("xtts-ft prep: no space left on device while writing ") and str(out) in last, last
    m = assert_consistent(out)
    assert [s["name"] for s in m["sources"]] == ["part0.wav"]
    assert not any("long.wav" in s["path"] for s in m["skipped"]), "a full disk is not a problem of the file"
    # adding to it: one more source fits, the long one still does not
    res = _cli(three_sources / "part1.wav", big / "long.wav", "--out", out, "--transcripts", "files",
               "--no-speaker-check")
    assert res.returncode == 1 and "no space left on device" in res.stderr, res.stderr
    assert "could not be decoded" not in res.stdout + res.stderr
    m = assert_consistent(out)
    assert sorted(s["name"] for s in m["sources"]) == ["part0.wav", "part1.wav"]
    events = [json.loads(ln) for ln in (out / "prep_events.jsonl").read_text().splitlines() if ln.strip()]
    assert events[-1]["type"] == "state" and events[-1]["state"] == "failed"
    assert "no space left" in events[-1]["reason"]
    # once there is space, a re-run adds it
    resize(40)
    res = _cli(big / "long.wav", "--out", out, "--transcripts", "files", "--no-speaker-check")
    assert res.returncode == 0, res.stderr
    m = assert_consistent(out)
    assert sorted(s["name"] for s in m["sources"]) == ["long.wav", "part0.wav", "part1.wav"]


# ------------------------------------------------------------------------------------ permissions
def _without_root_rights():
    res = subprocess.run([*NO_DAC, "true"], capture_output=True, check=False)
    if os.geteuid() != 0 or res.returncode != 0:
        pytest.skip("needs root with the right to drop capabilities (setpriv)")


@pytest.mark.slow
def test_unreadable_files_and_odd_paths_are_skipped_with_their_reasons(tmp_path, three_sources):
    _without_root_rights()
    src = tmp_path / "src"
    _source(src, "good.wav", 0)
    _source(src, "second.wav", 1)
    _source(src, "secret.wav", 2).chmod(0)
    closed = src / "closed"                       # cannot be listed
    _source(closed, "c.wav", 3)
    closed.chmod(0)
    noexec = src / "noexec"                       # listed, but not entered
    _source(noexec, "d.wav", 4)
    noexec.chmod(0o644)
    (src / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (src / "loop").symlink_to(src)
    missing = tmp_path / "no-such-take.wav"
    out = tmp_path / "ds"
    try:
        res = _cli(src, missing, "--out", out, "--transcripts", "files", "--no-speaker-check", prefix=NO_DAC)
    finally:
        closed.chmod(0o755)
        noexec.chmod(0o755)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    lines = [" ".join(ln.split()) for ln in res.stdout.splitlines()]
    for shown, reason in ((src / "secret.wav", "permission denied"), (closed, "permission denied"),
                          (noexec / "d.wav", "permission denied"), (src / "dangling.wav", "broken symbolic link"),
                          (src / "loop", "symbolic link loop"), (missing, "no such file")):
        names = {f"Skipping {shown}:"} | ({f"Skipping {shown.relative_to(src)}:"} if shown.is_relative_to(src) else set())
        assert any(any(n in ln for n in names) and reason in ln for ln in lines), \
            f"{shown} not reported as '{reason}':\n{res.stdout}"
    m = assert_consistent(out)
    assert sorted(s["name"] for s in m["sources"]) == ["good.wav", "second.wav"]
    skipped = {Path(s["path"]).name: s["reason"] for s in m["skipped"]}
    assert "permission denied" in skipped["secret.wav"] and "permission denied" in skipped["closed"]


def test_a_read_only_output_folder_is_one_line(tmp_path, three_sources):
    _without_root_rights()
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    res = _cli(three_sources / "part0.wav", "--out", out, "--transcripts", "files", prefix=NO_DAC)
    assert res.returncode == 1
    assert res.stderr.strip() == f"xtts-ft prep: cannot write to {out}: permission denied", res.stderr
    assert not any(out.iterdir())


# ------------------------------------------------------------------------------------ channels
@pytest.mark.slow
def test_multichannel_sources_are_mixed_as_the_mean_of_their_channels(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    S = speechgen.SENTENCES
    peaks = {}
    for name, channels, peak_db in (("surround.wav", 6, -2.6), ("stereo.wav", 2, -1.0)):
        text = S[:2] if channels == 6 else S[2:4]
        audio, _ = speechgen.compose(text, pauses=0.5)
        audio = audio / np.abs(audio).max() * 10 ** (peak_db / 20)
        multi = np.stack([audio * (1.0 if k % 2 == 0 else 0.8) for k in range(channels)], axis=1)
        sf.write(str(src / name), multi, speechgen.RATE, subtype="FLOAT")
        (src / name).with_suffix(".txt").write_text(" ".join(text))
        peaks[name] = 20 * np.log10(np.abs(multi.mean(axis=1)).max())
    result, events = _prep([src], tmp_path / "ds")
    assert result.ok, result.reason
    m = ds.load_manifest(tmp_path / "ds")
    for s in m["sources"]:
        q = s["quality"]
        assert s["channels"] in (2, 6)
        assert abs(q["peak_dbfs"] - peaks[s["name"]]) < 0.3, (s["name"], q["peak_dbfs"], peaks[s["name"]])
        assert q["clipping_ratio"] == 0.0
    assert not [e for e in events if e.get("code") == "clipping"]
    for seg in m["segments"]:
        assert "clipped" not in seg["flags"]
        audio, _ = sf.read(str(tmp_path / "ds" / seg["file"]))
        assert np.abs(audio).max() < 0.95          # levelled under -1 dBFS, never clipped by the mix


def test_a_job_refused_just_as_the_holder_took_the_lock_still_names_it(tmp_path):
    """The holder writes who it is right after taking the lock: a job refused in that instant
    (the file still empty) waits a moment for the record instead of naming no one."""
    import fcntl
    import threading
    import time

    path = tmp_path / locks.LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)     # taken, nothing written yet

        def write_record():
            time.sleep(0.15)
            os.pwrite(fd, json.dumps({"pid": 4242, "job": "xtts-ft prep", "started": time.time()}).encode(), 0)

        writer = threading.Thread(target=write_record)
        writer.start()
        try:
            with pytest.raises(locks.Busy) as refused:
                with locks.hold(tmp_path, "xtts-ft train"):
                    pass
        finally:
            writer.join()
        assert "is in use by xtts-ft prep (pid 4242" in str(refused.value)
    finally:
        os.close(fd)
