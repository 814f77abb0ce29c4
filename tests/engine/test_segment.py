"""Segmentation rules on synthetic regions, words and frame power (no audio, no models)."""

import numpy as np
import pytest

from engine.audio.segment import Word, build_atoms, plan_segments, transcription_chunks

FRAME = 0.01


def power_for(duration, speech_spans, quiet=1e-8, loud=1e-2):
    p = np.full(int(duration / FRAME), quiet, np.float32)
    for a, b in speech_spans:
        p[int(a / FRAME) : int(b / FRAME)] = loud
    return p


def words_for(spans, word_len=0.35, gap=0.05):
    words = []
    for a, b in spans:
        t = a
        while t + word_len <= b + 1e-9:
            words.append(Word(t, t + word_len, f" w{len(words)}", 0.9))
            t += word_len + gap
    return words


def test_short_regions_are_merged_toward_the_middle_of_the_range():
    spans = [(0.5 + 2.0 * k, 0.5 + 2.0 * k + 1.5) for k in range(12)]   # 1.5 s of speech, 0.5 s pauses
    dur = spans[-1][1] + 0.5
    segs, st = plan_segments(spans, words_for(spans), power_for(dur, spans), dur, 2.0, 11.0)
    durs = [s.duration for s in segs]
    assert all(2.0 <= d <= 11.0 for d in durs), durs
    assert st.merged_into < len(spans)
    assert 4.0 < np.mean(durs) < 9.0          # mid-range preference, not max-packing
    # clips never overlap and keep their order
    assert all(a.end <= b.start + 1e-9 for a, b in zip(segs, segs[1:]))


def test_long_speech_is_split_between_words_at_the_quietest_gap():
    # 20 s of continuous speech; one word gap at 9.0-9.2 s is much quieter than the others
    span = (1.0, 21.0)
    words = words_for([span], word_len=0.4, gap=0.05)
    words = [w for w in words if not (w.start < 9.2 and w.end > 9.0)]
    p = power_for(22.0, [span], loud=1e-2)
    p[:] = np.maximum(p, 1e-8)
    for w1, w2 in zip(words, words[1:]):
        p[int(w1.end / FRAME) : int(w2.start / FRAME)] = 1e-4      # small gaps: audible but quieter
    p[int(9.0 / FRAME) : int(9.2 / FRAME)] = 1e-9                   # the real pause
    segs, st = plan_segments([span], words, p, 22.0, 2.0, 11.0)
    assert st.splits >= 1
    assert all(s.duration <= 11.0 for s in segs)
    cuts = [s.end for s in segs[:-1]]
    for c in cuts:   # no cut inside a word
        assert not any(w.start < c < w.end for w in words), c
    assert any(8.95 <= c <= 9.25 for c in cuts), cuts


def test_atom_edges_never_split_a_word():
    words = [Word(1.0, 1.5, " hello"), Word(1.6, 2.4, " world")]
    atoms = build_atoms([(1.1, 2.0)], words)          # VAD ends inside "world"
    assert atoms == [(1.0, 2.4)]


def test_confident_words_outside_vad_are_kept_hallucinated_ones_are_not():
    words = [Word(5.0, 5.4, " yes", prob=0.9), Word(8.0, 8.4, " ghost", prob=0.2)]
    atoms = build_atoms([(1.0, 3.0)], words)
    assert (5.0, 5.4) in atoms and all(not (a <= 8.2 <= b) for a, b in atoms)


def test_isolated_short_utterance_is_extended_with_real_context_not_past_neighbours():
    spans = [(1.0, 8.0), (12.0, 12.9), (17.0, 24.0)]     # "Yes." alone between long pauses
    dur = 26.0
    segs, st = plan_segments(spans, words_for(spans), power_for(dur, spans), dur, 2.0, 11.0, max_gap_s=1.6)
    short = [s for s in segs if s.start < 12.45 < s.end][0]
    assert short.extended_from == pytest.approx(0.9, abs=0.05)
    assert short.duration >= 2.0
    assert st.extended and st.extended[0][1] >= 2.0
    # it took only pause, never the neighbours' speech
    assert short.start >= 8.0 and short.end <= 17.0


def test_clips_are_padded_but_never_overlap():
    spans = [(0.5, 5.0), (5.1, 9.5)]
    segs, _ = plan_segments(spans, [], power_for(10.0, spans), 10.0, 2.0, 6.0, pad_s=0.3)
    assert len(segs) == 2
    assert segs[0].start == pytest.approx(0.2)
    assert segs[0].end <= segs[1].start


def test_transcription_chunks_fit_whisper_window():
    spans = [(k * 3.0, k * 3.0 + 2.5) for k in range(40)]
    dur = 121.0
    chunks = transcription_chunks(spans, power_for(dur, spans), dur)
    assert all(b - a <= 28.0 + 0.4 + 1e-6 for a, b in chunks)
    covered = sum(1 for a, b in spans if any(ca <= a and b <= cb for ca, cb in chunks))
    assert covered == len(spans)
    assert all(c1[1] <= c2[0] for c1, c2 in zip(chunks, chunks[1:]))     # padding never overlaps
