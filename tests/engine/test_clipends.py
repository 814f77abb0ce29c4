"""Clip edges: cut words are flagged or moved to a pause, noisy or long tails trimmed."""

import numpy as np
import pytest

import speechgen
from engine.audio import clipends
from engine.audio.clean import frame_power
from engine.audio.segment import Word

RATE = speechgen.RATE


def _power(audio):
    return frame_power(audio, RATE)


@pytest.fixture(scope="module")
def sentence():
    return speechgen.say(speechgen.SENTENCES[0])          # trimmed: sound from its first to last sample


def _layout(sentence, after: np.ndarray | None = None, lead=0.5, trail=1.5):
    parts = [np.zeros(int(lead * RATE), np.float32), sentence]
    if after is not None:
        parts.append(after)
    parts.append(np.zeros(int(trail * RATE), np.float32))
    audio = np.concatenate(parts)
    speech_end = lead + len(sentence) / RATE
    return audio, lead, speech_end


def test_a_clip_ending_inside_its_last_word_is_flagged_when_no_pause_follows(sentence):
    audio, s0, s1 = _layout(sentence, trail=0.0)
    cut = s1 - 0.12                                       # the recording stops in the last word
    audio = audio[: int(cut * RATE)]
    words = [Word(s0, s1 - 0.3, " The morning train was late again"), Word(s1 - 0.3, s1, " today.")]
    e = clipends.refine(s0 - 0.2, cut, words, _power(audio), None, 0.0, cut)
    assert "cut_end" in e.flags and e.end == pytest.approx(cut)


def test_a_clip_ending_inside_a_word_moves_its_end_to_the_pause(sentence):
    audio, s0, s1 = _layout(sentence)
    words = [Word(s0, s1 - 0.3, " The morning train was late again"), Word(s1 - 0.3, s1, " today.")]
    e = clipends.refine(s0 - 0.2, s1 - 0.12, words, _power(audio), None, 0.0, len(audio) / RATE)
    assert e.flags == [] and "end_extended" in e.fixes
    assert s1 <= e.end <= s1 + clipends.KEEP_TAIL_S + 0.05


def test_a_second_of_noise_after_the_speech_is_trimmed(sentence):
    rng = np.random.default_rng(0)
    noise = (0.03 * rng.standard_normal(RATE)).astype(np.float32)       # a breath / rustle, -30 dBFS
    audio, s0, s1 = _layout(sentence, after=noise)
    words = [Word(s0, s1 - 0.3, " The morning train was late again"), Word(s1 - 0.3, s1 - 0.02, " today.")]
    # the segmenter's clip took the noise in (as a VAD that hears it as voice would)
    e = clipends.refine(s0 - 0.2, s1 + 1.0 + 0.2, words, _power(audio), -100.0, 0.0, len(audio) / RATE)
    assert "tail_trimmed" in e.fixes and not e.flags
    assert s1 - 0.05 <= e.end <= s1 + 0.3               # the noise is gone, the word's release kept


def test_noise_that_cannot_be_trimmed_without_making_the_clip_too_short_is_flagged(sentence):
    rng = np.random.default_rng(1)
    noise = (0.03 * rng.standard_normal(RATE)).astype(np.float32)
    audio, s0, s1 = _layout(sentence, after=noise)
    words = [Word(s0, s1, " The morning train was late again today.")]
    e = clipends.refine(s0 - 0.2, s1 + 1.2, words, _power(audio), -100.0, 0.0, len(audio) / RATE,
                        min_len=(s1 + 1.2) - (s0 - 0.2))
    assert "tail_noise" in e.flags


def test_long_silence_is_trimmed_and_a_missing_tail_added(sentence):
    audio, s0, s1 = _layout(sentence, trail=2.0)
    words = [Word(s0, s1, " The morning train was late again today.")]
    e = clipends.refine(s0 - 0.2, s1 + 1.5, words, _power(audio), None, 0.0, len(audio) / RATE)
    assert e.end == pytest.approx(s1 + clipends.KEEP_TAIL_S, abs=0.03) and "tail_trimmed" in e.fixes
    e = clipends.refine(s0 - 0.2, s1 + 0.045, words, _power(audio), None, 0.0, len(audio) / RATE)
    assert e.end >= s1 + clipends.MIN_TAIL_S and "tail_extended" in e.fixes
    # no room before the next clip: flagged instead
    e = clipends.refine(s0 - 0.2, s1 + 0.045, words, _power(audio), None, 0.0, s1 + 0.048)
    assert "no_tail" in e.flags


def test_a_leading_partial_word_is_flagged_or_moved(sentence):
    audio, s0, s1 = _layout(sentence)
    words = [Word(s0, s1, " The morning train was late again today.")]
    # starts 0.25 s into the first word, with the pause before it free: moved back
    e = clipends.refine(s0 + 0.25, s1 + 0.2, words, _power(audio), None, 0.0, len(audio) / RATE)
    assert "start_moved" in e.fixes and e.start <= s0 and not e.flags
    # the previous clip ends right there: flagged
    e = clipends.refine(s0 + 0.25, s1 + 0.2, words, _power(audio), None, s0 + 0.25, len(audio) / RATE)
    assert "cut_start" in e.flags


def test_a_clean_clip_is_left_alone(sentence):
    audio, s0, s1 = _layout(sentence)
    words = [Word(s0, s1, " The morning train was late again today.")]
    e = clipends.refine(s0 - 0.2, s1 + 0.2, words, _power(audio), None, 0.0, len(audio) / RATE)
    assert (e.start, e.end, e.flags, e.fixes) == (s0 - 0.2, s1 + 0.2, [], [])


@pytest.mark.slow
def test_prep_flags_a_recording_that_stops_in_the_middle_of_its_last_word(tmp_path, whisper_model):
    """Through the whole of prep: the last clip of a take that stops inside its last word is
    flagged; the clips of a complete take are not."""
    import json

    from engine.prep import PrepOptions, run_prep
    from engine.prep.report import Reporter

    S = speechgen.SENTENCES
    whole, _ = speechgen.compose(S[0:2], pauses=0.6, noise_db=-60.0)
    speechgen.write(tmp_path / "src" / "whole.wav", whole)
    cut, _ = speechgen.compose(S[2:4], pauses=0.6, noise_db=-60.0)
    cut = cut[: len(cut) - int((0.6 + 0.15) * RATE)]       # stops 0.15 s before the end of "orchestra"
    speechgen.write(tmp_path / "src" / "cut.wav", cut)
    result = run_prep(PrepOptions([str(tmp_path / "src")], tmp_path / "ds", whisper_model=whisper_model,
                                  min_seconds=1.0, speaker_check=False), Reporter(console=None))
    assert result.ok, result.reason
    m = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    segs = sorted(m["segments"], key=lambda s: (s["source"], s["start"]))
    names = {s["id"]: s["name"] for s in m["sources"]}
    last = {}
    for s in segs:
        last[names[s["source"]]] = s
    assert "cut_end" in last["cut.wav"]["flags"]
    clean = [s for s in segs if s is not last["cut.wav"]]
    assert clean and not any(set(clipends.FLAGS) & set(s["flags"]) for s in clean), segs
