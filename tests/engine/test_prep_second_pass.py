"""The second whisper pass looks again only at doubtful duplicate clips, in one batch."""

import numpy as np
import soundfile as sf

from engine.prep import dataset as ds
from engine.prep.builder import Prep, PrepOptions, suspicious
from engine.prep.report import Reporter


class CountingTranscriber:
    def __init__(self):
        self.seen: list[int] = []

    def retranscribe_batch(self, audios, on_done=None):
        self.seen.append(len(audios))
        if on_done:
            on_done(len(audios))
        readings = ["One other reading of it.", "Quite another reading.", "A third reading."]
        return [(readings[i % 3], 0.95) for i in range(len(audios))]


def _scripted_manifest(tmp_path):
    """Six takes of the same three sentences: every text is shared by six clips. Two clips are
    doubtful: one whisper was unsure of, one far too short for its text."""
    out = tmp_path / "ds"
    (out / "wavs").mkdir(parents=True)
    texts = ["The morning train was late again today.", "She opened the window and looked at the garden.",
             "We should meet at the library after lunch."]
    segs = []
    for take in range(6):
        for k, text in enumerate(texts):
            sid = f"take{take}_{k:03d}"
            sf.write(str(out / "wavs" / f"{sid}.wav"), np.full(22050 * 2, 0.01, np.float32), 22050, subtype="PCM_16")
            segs.append({"id": sid, "file": f"wavs/{sid}.wav", "source": f"take{take}", "speaker": "x", "start": 0,
                         "end": 2.6, "duration": 2.6, "speech_seconds": 2.4, "text": text, "confidence": 0.9,
                         "flags": [], "split": None, "excluded": False, "text_source": "asr"})
    segs[4]["confidence"] = 0.55                    # unsure
    segs[10]["speech_seconds"] = 0.6                # 40 letters in 0.6 s: cannot be right
    p = Prep(PrepOptions(["x"], out), Reporter(console=None))
    p.manifest = ds.empty_manifest("en", 22050)
    p.manifest["segments"] = segs
    p.manifest["sources"] = [{"id": f"take{t}", "transcript": "asr"} for t in range(6)]
    return p, segs


def test_only_the_doubtful_duplicates_are_transcribed_again(tmp_path):
    p, segs = _scripted_manifest(tmp_path)
    events = []
    p.r.add_listener(events.append)
    fake = CountingTranscriber()
    p.transcriber = fake
    p._duplicates(segs)
    assert fake.seen == [2]                          # one batch, the two doubtful clips only
    changed = {s["id"] for s in segs if "retranscribed" in s["flags"]}
    assert changed == {segs[4]["id"], segs[10]["id"]}
    assert all("second_pass" in s for s in segs if s["id"] in changed)
    # the 16 plausible repeats keep their text and are flagged for review, not dropped
    dup = [s for s in segs if "duplicate_text" in s["flags"]]
    assert len(dup) == 16 and not any(s["excluded"] for s in dup)
    progress = [e for e in events if e["type"] == "progress" and e["stage"] == "second_pass"]
    assert progress and progress[-1]["done"] == 2 and progress[-1].get("finished")


def test_suspicion_rules():
    base = {"text": "The river was cold and very clear.", "confidence": 0.9, "speech_seconds": 2.2, "flags": []}
    rate = 28 / 2.2
    assert not suspicious(base, rate)
    assert suspicious(dict(base, confidence=0.6), rate)
    assert suspicious(dict(base, speech_seconds=0.5), rate)        # far too fast for the text
    assert suspicious(dict(base, speech_seconds=9.0), rate)        # far too slow: words missing?
    assert suspicious(dict(base, flags=["hallucination"]), rate)
    assert not suspicious(base, None)                              # no rate known: confidence only


def test_min_confidence_leaves_doubtful_clips_out_restorably(tmp_path):
    p, segs = _scripted_manifest(tmp_path)
    p.o.min_confidence = 0.8
    p.transcriber = CountingTranscriber()
    p._duplicates(segs)
    p._confidence_filter(segs)
    # segs[4]: whisper unsure (0.55) and its second opinion differs; segs[10]: the passes disagree
    doubtful = [s for s in segs if "doubtful" in s["flags"]]
    assert {s["id"] for s in doubtful} == {segs[4]["id"], segs[10]["id"]}
    assert all(s["excluded"] and s["exclude_reason"] == "doubtful" for s in doubtful)
    assert "disagree" in segs[10]["doubtful_reason"]
    assert any(w.get("code") == "doubtful" and w.get("count") == 2 for w in p.r.warnings)
    # without the option nothing is left out
    p2, segs2 = _scripted_manifest(tmp_path / "b")
    p2.transcriber = CountingTranscriber()
    p2._duplicates(segs2)
    p2._confidence_filter(segs2)
    assert not any(s["excluded"] for s in segs2)
