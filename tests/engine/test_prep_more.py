"""Duplicates, loops, several speakers and bounded memory in prep."""

import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import speechgen

from engine.audio import analysis
from engine.prep import PrepOptions, run_prep
from engine.prep import dataset as ds
from engine.prep.builder import Prep
from engine.prep.report import Reporter
from engine.prep.textnorm import repeated_loop


def _prep(sources, out, whisper_model, **kw):
    events = []
    rep = Reporter(console=None)
    rep.add_listener(events.append)
    return run_prep(PrepOptions([str(s) for s in sources], out, whisper_model=whisper_model, **kw), rep), events


@pytest.mark.slow
def test_same_sentence_in_two_recordings_is_rechecked_and_flagged(tmp_path, whisper_model):
    S = speechgen.SENTENCES
    a, _ = speechgen.compose(S[0:2], pauses=0.5, voice="en-us")
    b, _ = speechgen.compose(S[0:2], pauses=0.9, voice="en-us", pitch=30)
    speechgen.write(tmp_path / "src" / "take1.wav", a)
    speechgen.write(tmp_path / "src" / "take2.wav", b)
    c, _ = speechgen.compose(S[5:8], pauses=0.5)
    speechgen.write(tmp_path / "src" / "other.wav", c)
    result, events = _prep([tmp_path / "src"], tmp_path / "ds", whisper_model)
    assert result.ok, result.reason
    dup_lines = [e["msg"] for e in events if e["type"] == "log" and e["tag"] == "DUP"]
    assert any("Re-transcribing duplicate files" in m for m in dup_lines)
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    flagged = [s for s in manifest["segments"] if "duplicate_text" in s["flags"]]
    assert len(flagged) == 2 and {s["source"] for s in flagged} == {
        s["id"] for s in manifest["sources"] if s["name"].startswith("take")}
    assert all(not s["excluded"] for s in flagged)       # kept: saying a sentence twice is fine


class FakeTranscriber:
    """Stands in for whisper's second opinion."""

    def __init__(self, text, conf):
        self.text, self.conf, self.calls = text, conf, 0

    def retranscribe_batch(self, audios, on_done=None):
        out = []
        for audio in audios:
            self.calls += 1
            assert audio.dtype == np.float32 and len(audio) > 0
            out.append((self.text, self.conf))
        if on_done:
            on_done(len(audios))
        return out


def _manifest_with_loop(tmp_path):
    out = tmp_path / "ds"
    (out / "wavs").mkdir(parents=True)
    sf.write(str(out / "wavs" / "a_000.wav"), np.zeros(22050 * 3, np.float32) + 0.01, 22050, subtype="PCM_16")
    seg = {"id": "a_000", "file": "wavs/a_000.wav", "source": "a", "speaker": "x", "start": 0, "end": 3,
           "duration": 3.0, "text": "thank you thank you thank you thank you", "confidence": 0.6,
           "flags": ["repeated_text"], "split": None, "excluded": True, "exclude_reason": "repeated_text",
           "text_source": "asr"}
    p = Prep(PrepOptions(["x"], out), Reporter(console=None))
    p.manifest = ds.empty_manifest("en", 22050)
    p.manifest["segments"] = [seg]
    p.manifest["sources"] = [{"id": "a", "transcript": "asr"}]
    return p, seg


def test_a_looping_transcript_is_replaced_by_a_clean_second_opinion(tmp_path):
    p, seg = _manifest_with_loop(tmp_path)
    fake = FakeTranscriber("Thank you for coming today.", 0.8)
    p.transcriber = fake
    p._duplicates([seg])
    assert fake.calls == 1
    assert seg["text"] == "Thank you for coming today." and not seg["excluded"]
    assert "repeated_text" not in seg["flags"] and "retranscribed" in seg["flags"]


def test_a_transcript_that_still_loops_stays_out_of_training(tmp_path):
    p, seg = _manifest_with_loop(tmp_path)
    p.transcriber = FakeTranscriber("thank you thank you thank you thank you thank you", 0.9)
    p._duplicates([seg])
    assert seg["excluded"] and "repeated_text" in seg["flags"]
    assert any("still repeats" in w["msg"] for w in p.r.warnings)


def test_a_less_confident_second_opinion_does_not_replace_the_first(tmp_path):
    p, seg = _manifest_with_loop(tmp_path)
    seg["flags"], seg["excluded"] = [], False
    seg["text"] = "The river was cold and very clear."
    seg["confidence"] = 0.9
    other = dict(seg, id="b_000", source="b")
    p.manifest["segments"].append(other)
    p.transcriber = FakeTranscriber("The liver was old and fairy clear.", 0.5)
    p._duplicates([seg, other])
    assert seg["text"] == "The river was cold and very clear."
    assert "duplicate_text" in seg["flags"] and "duplicate_text" in other["flags"]


@pytest.mark.parametrize("text, loop", [
    ("okay okay okay okay", True),
    ("I think we should go. We should go now. Let's go then.", False),
    ("and then and then and then and then we left", True),
    ("no, no, no", True),
    ("Yes.", False),
])
def test_repeated_loop_detection(text, loop):
    assert repeated_loop(text) is loop


@pytest.mark.slow
def test_speaker_per_sub_folder(tmp_path, whisper_model):
    S = speechgen.SENTENCES
    for name, sents, voice in (("alice", S[0:3], "en-us"), ("bob", S[3:6], "en-gb")):
        a, _ = speechgen.compose(sents, pauses=0.6, voice=voice)
        speechgen.write(tmp_path / "src" / name / "session.wav", a)
    result, _ = _prep([tmp_path / "src"], tmp_path / "ds", whisper_model, speaker_from_folders=True)
    assert result.ok, result.reason
    rows = (tmp_path / "ds" / "metadata_train.csv").read_text().splitlines()[1:] + \
        (tmp_path / "ds" / "metadata_eval.csv").read_text().splitlines()[1:]
    speakers = {r.split("|")[2] for r in rows}
    assert speakers == {"alice", "bob"}


def test_quality_scan_streams_long_files_in_bounded_memory(tmp_path):
    """Scanning 20 minutes takes no more memory than scanning 5: the file is read block by block."""
    rate = 22050
    block = (np.sin(np.linspace(0, 2000, rate * 60)) * 0.3).astype(np.float32)
    peaks = {}
    for minutes in (5, 20):
        path = tmp_path / f"long{minutes}.wav"
        with sf.SoundFile(str(path), "w", rate, 1, subtype="FLOAT") as f:
            for _ in range(minutes):
                f.write(block)
        tracemalloc.start()
        stats, power = analysis.scan(path)
        peaks[minutes] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert stats.duration == pytest.approx(minutes * 60, abs=0.01)
        # exactly one power value per 10 ms, even though 10 ms is 220.5 samples at 22050 Hz
        assert len(power) == pytest.approx(minutes * 60 / analysis.FRAME_SECONDS, abs=1)
        assert float(power.mean()) == pytest.approx(0.045, rel=0.02)      # 0.3² / 2
    size20 = (tmp_path / "long20.wav").stat().st_size
    # the only growth allowed is the power envelope itself (100 float32 values per second)
    assert peaks[20] < peaks[5] + 15 * 60 * 100 * 16, peaks      # float64 list + float32 result
    assert peaks[20] < size20 / 4, (peaks, size20)


def test_assign_splits_is_deterministic_and_keeps_a_training_clip_per_source():
    def segs():
        out = []
        for src, n in (("a", 6), ("b", 3), ("c", 1)):
            out += [{"id": f"{src}{k}", "source": src, "split": None, "excluded": False} for k in range(n)]
        return out
    s1, s2 = segs(), segs()
    ds.assign_splits(s1, 0.3, seed=7)
    ds.assign_splits(s2, 0.3, seed=7)
    assert [s["split"] for s in s1] == [s["split"] for s in s2]
    evals = [s for s in s1 if s["split"] == "eval"]
    assert len(evals) == 3
    for src in "abc":
        assert any(s["split"] == "train" for s in s1 if s["source"] == src)
    # adding clips later keeps every existing assignment
    before = {s["id"]: s["split"] for s in s1}
    s1 += [{"id": f"d{k}", "source": "d", "split": None, "excluded": False} for k in range(10)]
    ds.assign_splits(s1, 0.3, seed=7)
    assert all(s["split"] == before[s["id"]] for s in s1 if s["id"] in before)
    assert sum(1 for s in s1 if s["split"] == "eval") == round(0.3 * 20)


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_sources_and_a_rerun_adds_the_rest(tmp_path, whisper_model, monkeypatch):
    src = tmp_path / "src"
    for k in range(3):
        a, _ = speechgen.compose(speechgen.SENTENCES[3 * k : 3 * k + 2], pauses=0.5)
        speechgen.write(src / f"part{k}.wav", a)
        (src / f"part{k}.txt").write_text(" ".join(speechgen.SENTENCES[3 * k : 3 * k + 2]))
    real = Prep._segment_and_write
    calls = {"n": 0}

    def interrupt_on_third(self, source):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, source)

    monkeypatch.setattr(Prep, "_segment_and_write", interrupt_on_third)
    result, events = _prep([src], tmp_path / "ds", whisper_model, transcripts="files", speaker_check=False)
    assert result.ok and result.interrupted
    m = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert sorted(s["name"] for s in m["sources"]) == ["part0.wav", "part1.wav"]
    assert any(e.get("code") == "interrupted" for e in events if e["type"] == "log")
    monkeypatch.setattr(Prep, "_segment_and_write", real)
    again, _ = _prep([src], tmp_path / "ds", whisper_model, transcripts="files", speaker_check=False)
    assert again.ok and not again.interrupted and again.summary["sources_added"] == 1
    assert sorted(s["name"] for s in json.loads((tmp_path / "ds" / "dataset.json").read_text())["sources"]) == [
        "part0.wav", "part1.wav", "part2.wav"]


def test_different_words_in_the_same_layout_of_silence_are_not_the_same_audio(tmp_path):
    """Two short recordings with the same pauses of digital silence around different sentences
    (as a noise gate or synthetic speech makes them) are two recordings; a re-encoded copy of one,
    quieter, is still found."""
    import speechgen

    from engine.audio import analysis, intake
    from engine.prep.builder import _fingerprint, _same_audio

    def fingerprint(audio, name, gain_db=0.0, rate=speechgen.RATE):
        speechgen.write(tmp_path / name, audio * 10 ** (gain_db / 20), rate=rate)
        decoded = intake.decode(tmp_path / name, tmp_path / "work", name.split(".")[0])
        return _fingerprint(analysis.scan(decoded.work22)[1])

    # two sentences of about the same length, with the same lead and tail of digital silence
    a, _ = speechgen.compose([speechgen.SENTENCES[5]], pauses=0.5, seed=29, voice="en-gb", pitch=58, speed=189)
    b, _ = speechgen.compose([speechgen.SENTENCES[11]], pauses=0.5, seed=35, voice="en-gb", pitch=40, speed=175)
    fa, fb = fingerprint(a, "a.wav"), fingerprint(b, "b.wav")
    assert not _same_audio(fa, fb)
    assert _same_audio(fa, fingerprint(a, "a_copy.mp3", gain_db=-9.0, rate=44100))
