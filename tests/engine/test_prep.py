"""`xtts-ft prep` on generated speech: formats, bad input, segments, transcripts, CSVs, re-runs."""

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import speechgen

from engine.prep import PrepOptions, run_prep
from engine.prep.report import Reporter
from engine.prep.textnorm import comparable

pytestmark = pytest.mark.slow


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def prep(sources, out, whisper_model, **kw):
    events = []
    rep = Reporter(console=None, log_path=None)
    rep.add_listener(events.append)
    opts = PrepOptions(sources=[str(s) for s in sources], out=out, whisper_model=whisper_model, **kw)
    return run_prep(opts, rep), events


@pytest.fixture(scope="module")
def mixed_run(mixed_sources, whisper_model, tmp_path_factory):
    root, known = mixed_sources
    before = snapshot(root)
    out = tmp_path_factory.mktemp("ds") / "voice"
    result, events = prep([root], out, whisper_model)
    return root, known, before, out, result, events


def _read(path):
    audio, rate = sf.read(str(path), dtype="float32")
    return audio, rate


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE))


def test_mixed_folder_makes_a_dataset_and_skips_bad_files_with_reasons(mixed_run):
    root, known, before, out, result, events = mixed_run
    assert result.ok, result.reason
    reasons = {Path(s["path"]).name: s["reason"] for s in result.summary["skipped"]}
    assert "empty" in reasons["empty.mp3"]
    assert "not readable" in reasons["corrupt.wav"] or "decoded" in reasons["corrupt.wav"]
    assert "notes.flac" in reasons
    assert "silence" in reasons["silence.wav"]
    assert "no speech" in reasons["hum.wav"]
    assert reasons["readme.txt"] == "not an audio file (.txt)"  # listed (README), never opened as audio
    assert result.summary["sources_added"] == 4
    # every skip was also told to the user as a warning line
    warned = " ".join(e["msg"] for e in events if e["type"] == "log" and e["level"] == "warning")
    for name in ("empty.mp3", "corrupt.wav", "notes.flac", "silence.wav", "hum.wav"):
        assert name in warned


def test_sources_are_never_modified(mixed_run):
    root, _, before, *_ = mixed_run
    assert snapshot(root) == before


def test_clips_are_22050_mono_16bit_within_bounds(mixed_run):
    _, _, _, out, result, _ = mixed_run
    manifest = json.loads((out / "dataset.json").read_text())
    segs = [s for s in manifest["segments"] if not s["excluded"]]
    assert len(segs) >= 8
    for s in segs:
        info = sf.info(str(out / s["file"]))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert info.duration == pytest.approx(s["duration"], abs=0.01)
        assert s["duration"] <= 11.0 + 1e-6
    inside = sum(1 for s in segs if 2.0 <= s["duration"] <= 11.0)
    assert inside / len(segs) >= 0.9


def test_csvs_are_coqui_format_and_load_with_coqui(mixed_run):
    _, _, _, out, result, _ = mixed_run
    train, evl = read_csv(out / "metadata_train.csv"), read_csv(out / "metadata_eval.csv")
    assert train[0] == ["audio_file", "text", "speaker_name"] == evl[0]
    rows = train[1:] + evl[1:]
    assert len(evl) - 1 >= 1 and len(train) - 1 >= len(evl) - 1
    for audio_file, text, speaker in rows:
        assert audio_file.startswith("wavs/") and (out / audio_file).is_file()
        assert text.strip() and "|" not in text
        assert speaker == "voice"
    assert len({r[0] for r in rows}) == len(rows)        # no clip in both splits
    from TTS.config.shared_configs import BaseDatasetConfig
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.datasets import load_tts_samples

    cfg = BaseDatasetConfig(formatter="coqui", meta_file_train="metadata_train.csv",
                            meta_file_val="metadata_eval.csv", path=str(out), language="en")
    train_s, eval_s = load_tts_samples(XttsConfig(datasets=[cfg]), eval_split=True)
    assert len(train_s) == len(train) - 1 and len(eval_s) == len(evl) - 1
    assert all(Path(s["audio_file"]).is_file() for s in train_s + eval_s)


def test_transcripts_match_the_known_text(mixed_run):
    _, known, _, out, _, _ = mixed_run
    manifest = json.loads((out / "dataset.json").read_text())
    by_name = {s["id"]: s["name"] for s in manifest["sources"]}
    got: dict[str, list] = {}
    for s in sorted(manifest["segments"], key=lambda s: (s["source"], s["start"])):
        got.setdefault(by_name[s["source"]], []).append(s["text"])
    errors = {}
    for name, sentences in known.items():
        ref = comparable(" ".join(sentences))
        hyp = comparable(" ".join(got[name]))
        errors[name] = jiwer.wer(ref, hyp)
    total = jiwer.wer(
        [comparable(" ".join(v)) for v in known.values()], [comparable(" ".join(got[k])) for k in known]
    )
    # whisper tiny.en on espeak-ng speech: a few errors per sentence at most; 8 kHz is the hardest
    assert total < 0.25, errors
    assert max(errors.values()) < 0.4, errors


def test_boundaries_fall_in_pauses_not_inside_words(mixed_run):
    """Every cut inside a recording lies where the source is quiet (no word is cut in two)."""
    _, known, _, out, _, _ = mixed_run
    manifest = json.loads((out / "dataset.json").read_text())
    srcs = {s["id"]: s for s in manifest["sources"]}
    checked = 0
    for sid, src in srcs.items():
        audio, rate = sf.read(src["path"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        speech_level = np.sqrt(np.mean(audio[np.abs(audio) > 0.01] ** 2))
        segs = sorted((s for s in manifest["segments"] if s["source"] == sid), key=lambda s: s["start"])
        for s in segs:
            for t in (s["start"], s["end"]):
                if t <= 0.05 or t >= src["duration"] - 0.05:
                    continue
                i = int(t * rate)
                window = audio[max(0, i - int(0.01 * rate)) : i + int(0.01 * rate)]
                level = np.sqrt(np.mean(window ** 2))
                assert level < 0.1 * speech_level, (src["name"], t, level, speech_level)
                checked += 1
    assert checked >= 10


def test_quality_report_and_guide_warnings(mixed_run):
    _, _, _, out, result, events = mixed_run
    manifest = json.loads((out / "dataset.json").read_text())
    phone = [s for s in manifest["sources"] if s["name"].endswith("phone.wav")][0]
    mp3 = [s for s in manifest["sources"] if s["name"] == "interview.mp3"][0]
    assert phone["sample_rate"] == 8000 and mp3["sample_rate"] == 44100 and mp3["channels"] == 2
    for key in ("lufs", "peak_dbfs", "clipping_ratio", "snr_db", "dc_offset", "speech_seconds"):
        assert key in phone["quality"]
    assert phone["quality"]["lufs"] < mp3["quality"]["lufs"] - 6      # written 12 dB quieter
    codes = {e.get("code") for e in events if e["type"] == "log" and e["level"] == "warning"}
    assert {"too_little_speech", "loudness_spread", "low_sample_rate", "small_train"} <= codes
    # normalisation evens loudness out across sources
    import pyloudnorm

    levels = {}
    for s in manifest["segments"]:
        a, r = sf.read(str(out / s["file"]))
        levels.setdefault(s["source"], []).append(pyloudnorm.Meter(r).integrated_loudness(a))
    means = [np.mean(v) for v in levels.values()]
    assert max(means) - min(means) < 3.0, levels
    tags = {e["tag"] for e in events if e["type"] == "log"}
    assert {"INFO", "MODEL", "AUDIO", "SEG", "DATA"} <= tags
    stats = [e for e in events if e["type"] == "log" and e["msg"] == "Audio Processing Statistics:"][0]
    assert any(d.startswith("Segments under minimum:") for d in stats["details"])


def test_rerun_with_more_sources_adds_only_new_material(mixed_run, whisper_model, tmp_path):
    root, _, _, out, _, _ = mixed_run
    work = tmp_path / "ds"
    shutil.copytree(out, work)
    old = json.loads((work / "dataset.json").read_text())
    old_rows = read_csv(work / "metadata_train.csv")[1:] + read_csv(work / "metadata_eval.csv")[1:]
    old_files = {s["file"]: hashlib.sha256((work / s["file"]).read_bytes()).hexdigest() for s in old["segments"]}
    extra = tmp_path / "more"
    audio, _ = speechgen.compose(speechgen.SENTENCES[3:7], pauses=0.8, voice="en-us", pitch=60)
    speechgen.write(extra / "session2.flac", audio)
    # the same recording as before, renamed and re-encoded: found by content, not name
    shutil.copy(root / "reading.flac", extra / "copy_of_reading.flac")
    speechgen.write(extra / "reading_again.wav", _read(root / "reading.flac")[0], rate=48000,
                    src_rate=_read(root / "reading.flac")[1])
    result, events = prep([root, extra], work, whisper_model)
    assert result.ok, result.reason
    assert result.summary["sources_added"] == 1
    skipped = {Path(s["path"]).name: s["reason"] for s in result.summary["skipped"]}
    assert "same audio as reading.flac" in skipped["reading_again.wav"]
    msgs = " ".join(e["msg"] for e in events if e["type"] == "log")
    assert "copy_of_reading.flac: already in the dataset" in msgs
    new = json.loads((work / "dataset.json").read_text())
    old_by_id = {s["id"]: s for s in old["segments"]}
    for s in new["segments"]:
        if s["id"] in old_by_id:
            o = old_by_id[s["id"]]
            assert (s["file"], s["split"], s["start"], s["end"]) == (o["file"], o["split"], o["start"], o["end"])
    assert len(new["segments"]) > len(old["segments"])
    for f, digest in old_files.items():      # existing clips untouched
        assert hashlib.sha256((work / f).read_bytes()).hexdigest() == digest
    new_rows = read_csv(work / "metadata_train.csv")[1:] + read_csv(work / "metadata_eval.csv")[1:]
    assert {r[0] for r in old_rows} <= {r[0] for r in new_rows}
    # nothing new: a third run changes nothing
    again, _ = prep([root, extra], work, whisper_model)
    assert again.ok and again.summary["sources_added"] == 0
    assert json.loads((work / "dataset.json").read_text())["segments"] == new["segments"]


def test_existing_transcripts_are_used_instead_of_asr(tmp_path, whisper_model):
    src = tmp_path / "src"
    S = speechgen.SENTENCES
    audio, _ = speechgen.compose(S[0:2], pauses=0.5)
    speechgen.write(src / "clip_a.wav", audio)
    (src / "clip_a.txt").write_text(" ".join(S[0:2]) + "\n")
    # an LJSpeech-style folder
    lj = src / "lj"
    for k in (2, 3):
        a, _ = speechgen.compose([S[k]], pauses=0.3)
        speechgen.write(lj / "wavs" / f"LJ001-000{k}.wav", a)
    (lj / "metadata.csv").write_text(f"LJ001-0002|{S[2]}|{S[2]}\nLJ001-0003|{S[3]}|{S[3]}\n")
    # a long take with its transcript: the known text is laid over whisper's word times
    audio, _ = speechgen.compose(S[4:12], pauses=[0.6, 0.3, 1.0])
    speechgen.write(src / "long.wav", audio)
    (src / "long.lab").write_text(" ".join(S[4:12]))
    result, _ = prep([src], tmp_path / "ds", whisper_model)
    assert result.ok, result.reason
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    texts = {s["name"]: [] for s in manifest["sources"]}
    names = {s["id"]: s["name"] for s in manifest["sources"]}
    for s in sorted(manifest["segments"], key=lambda s: s["start"]):
        texts[names[s["source"]]].append(s["text"])
    assert texts["clip_a.wav"] == [" ".join(S[0:2])]
    assert texts["lj/wavs/LJ001-0002.wav"] == [S[2]]
    assert " ".join(texts["long.wav"]) == " ".join(S[4:12])      # exact words, split over clips
    assert len(texts["long.wav"]) >= 2
    assert all(s["transcript"] == "file" for s in manifest["sources"])


def test_cli_nothing_usable_exits_nonzero_with_one_line_reason(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_bytes(b"RIFF....garbage")
    (bad / "b.mp3").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "engine", "prep", str(bad), "--out", str(tmp_path / "ds"), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)
    assert summary["ok"] is False and "no usable speech in 2 file(s)" in summary["reason"]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ds" / "metadata_train.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["--min-seconds", "12"], "--min-seconds must be"),
    (["--eval-fraction", "0.9"], "--eval-fraction must be"),
])
def test_cli_bad_options_are_refused_clearly(tmp_path, args, message):
    src = tmp_path / "x.wav"
    speechgen.write(src, np.zeros(1000, np.float32))
    proc = subprocess.run([sys.executable, "-m", "engine", "prep", str(src), "--out", str(tmp_path / "ds"), *args],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_missing_whisper_model_is_a_clear_error(tmp_path):
    src = tmp_path / "src"
    audio, _ = speechgen.compose(speechgen.SENTENCES[:2])
    speechgen.write(src / "a.wav", audio)
    result, _ = prep([src], tmp_path / "ds", str(tmp_path / "no-such-model"))
    assert not result.ok
    assert "whisper model" in result.reason and "--whisper-model PATH" in result.reason
