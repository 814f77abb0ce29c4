"""Segmentation rules on synthetic regions, words and frame power (no audio, no models)."""

import numpy as np
import pytest

from engine.audio.segment import TimeMap, Word, build_atoms, plan_segments, transcription_chunks

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
    assert all(c.length <= 29.0 + 1e-6 for c in chunks)
    covered = sum(1 for a, b in spans if any(pa <= a and b <= pb for c in chunks for pa, pb in c.pieces))
    assert covered == len(spans)
    assert all(c1.end <= c2.start for c1, c2 in zip(chunks, chunks[1:]))     # padding never overlaps


def test_long_pauses_are_shortened_so_fewer_windows_hold_the_speech():
    # 2 s of speech, then 4 s of pause, 30 times: 178 s of recording, 60 s of speech
    spans = [(k * 6.0, k * 6.0 + 2.0) for k in range(30)]
    dur = spans[-1][1] + 1.0
    chunks = transcription_chunks(spans, power_for(dur, spans), dur, pause_cap_s=0.6)
    assert len(chunks) == 3                   # ~77 s of what whisper hears, not 178 s: 3 windows, not 7
    laid = sum(c.length for c in chunks)
    # speech + the 27 pauses inside windows capped + 0.2 s pads at the windows' edges (none before 0 s)
    assert laid == pytest.approx(60.0 + 27 * 0.6 + 5 * 0.2, abs=1e-6)
    for c in chunks:                          # each pause inside a window keeps 0.3 s on each side
        for (a0, b0), (a1, b1) in zip(c.pieces, c.pieces[1:]):
            assert a1 - b0 == pytest.approx(4.0 - 0.6, abs=1e-6)


def test_windows_are_as_few_as_fit_balanced_and_cut_at_the_longest_pauses():
    spans = [(k * 2.5, k * 2.5 + 2.0) for k in range(10)]   # 25 s with short pauses: one window
    assert len(transcription_chunks(spans, power_for(26.0, spans), 26.0)) == 1
    # sentences of 3 breaths: 0.2 s pauses inside them, 1 s between them
    spans, t = [], 0.0
    for _ in range(9):             # ~53 s: two windows
        for _ in range(3):
            spans.append((t, t + 1.5))
            t += 1.7
        t += 0.8
    chunks = transcription_chunks(spans, power_for(t + 1, spans), t + 1)
    assert len(chunks) == 2
    first_of_sentence = {round(spans[k][0], 3) for k in range(0, len(spans), 3)}
    assert round(chunks[1].pieces[0][0] + 0.2, 3) in first_of_sentence     # the cut is between sentences
    spans = [(k * 2.5, k * 2.5 + 2.0) for k in range(40)]   # ~100 s: 4 windows of ~25 s, not 3 full + 1 short
    chunks = transcription_chunks(spans, power_for(101.0, spans), 101.0)
    lengths = [c.length for c in chunks]
    assert len(chunks) == 4 and max(lengths) - min(lengths) < 3.0


def test_times_whisper_gives_in_the_laid_out_windows_map_back_to_the_recording():
    spans = [(1.0, 3.0), (10.0, 12.0), (40.0, 41.0)]
    chunks = transcription_chunks(spans, power_for(45.0, spans), 45.0, pad_s=0.2, pause_cap_s=0.6, max_chunk_s=10.0)
    assert [c.pieces for c in chunks] == [[(0.8, 3.3), (9.7, 12.3), (39.7, 41.2)]]
    tmap = TimeMap(chunks)
    assert tmap.clips == [(0.0, pytest.approx(6.6))]
    assert tmap(0.2) == pytest.approx(1.0)          # speech onsets land where they are in the recording
    assert tmap(2.5 + 0.3) == pytest.approx(10.0)
    assert tmap(5.1 + 0.3) == pytest.approx(40.0)
    assert tmap(9.0) == pytest.approx(41.2)         # past the end: the window's last moment
    # a word whisper stretched over a shortened pause stays on the side that holds most of it
    a, b = tmap.span(2.1, 2.7)
    assert (a, b) == (pytest.approx(2.9), pytest.approx(3.3))
    a, b = tmap.span(2.4, 3.3)
    assert (a, b) == (pytest.approx(9.7), pytest.approx(10.5))
