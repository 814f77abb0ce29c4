"""Cutting a recording into training clips (pure functions: regions, words and frame power in,
segments out).

Rules (docs/prep.md explains them for users):
1. Atoms: the VAD speech regions, joined with the spans of confidently transcribed words the VAD
   missed; an atom edge that falls inside a word is moved out to the word's edge, so no word is
   ever split between two atoms.
2. Atoms longer than `max_s` are split in a gap between two words (never inside one), at the
   quietest point, preferring cuts near the middle that leave both sides at least `min_s` long.
   Without any words (no transcript) the quietest 10 ms frame is used.
3. Neighbouring atoms are merged by dynamic programming: the partition whose clip lengths are
   closest to `target_s` (mid-range preference), never longer than `max_s`, never bridging a
   pause longer than `max_gap_s`, with a heavy cost for clips under `min_s`.
4. A clip still under `min_s` is extended into the real audio around it (the pause before and
   after, never into a neighbour's speech).
5. Every clip gets up to `pad_s` of the surrounding pause on each side, so onsets and releases
   are kept; clips never overlap.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

FRAME = 0.01   # seconds per power frame (engine.audio.analysis.FRAME_SECONDS)
MAX_GAP_S = 1.6   # a clip never bridges a longer pause


@dataclass
class Word:
    start: float
    end: float
    text: str
    prob: float = 1.0
    suspect: bool = False     # from a whisper segment that looked like a hallucination

    @property
    def mid(self) -> float:
        return 0.5 * (self.start + self.end)


@dataclass
class Segment:
    start: float
    end: float
    words: list[Word] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    extended_from: float | None = None
    edge_fixes: list[str] = field(default_factory=list)     # engine/audio/clipends.py's changes

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def text(self) -> str:
        return "".join(w.text for w in self.words).strip()


@dataclass
class SegmentStats:
    vad_regions: int = 0
    atoms: int = 0
    splits: int = 0
    merged_into: int = 0
    extended: list[tuple[float, float]] = field(default_factory=list)   # (from, to) durations
    still_short: int = 0
    over_max: int = 0


def _span_inside(t: float, words: list[Word]) -> Word | None:
    for w in words:
        if w.start < t < w.end:
            return w
    return None


def build_atoms(regions, words, min_word_prob: float = 0.5, tolerance: float = 0.25):
    """Union of VAD regions and confident word spans, with edges moved out of words."""
    spans = [(float(a), float(b)) for a, b in regions if b > a]
    for w in words:
        inside = any(a - tolerance <= w.mid <= b + tolerance for a, b in spans)
        if not inside and w.prob >= min_word_prob and not w.suspect and w.end > w.start:
            spans.append((w.start, w.end))
    spans.sort()
    # move edges that fall inside a word out to the word's edge
    fixed = []
    for a, b in spans:
        wa = _span_inside(a, words)
        if wa is not None:
            a = wa.start
        wb = _span_inside(b, words)
        if wb is not None:
            b = wb.end
        fixed.append((a, b))
    fixed.sort()
    merged: list[list[float]] = []
    for a, b in fixed:
        if merged and a <= merged[-1][1] + 1e-6:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _power_db(power: np.ndarray, t0: float, t1: float) -> tuple[float, float]:
    """(time, dB) of the quietest frame in [t0, t1]."""
    i0 = max(0, int(math.floor(t0 / FRAME)))
    i1 = min(len(power), max(i0 + 1, int(math.ceil(t1 / FRAME))))
    if i1 <= i0 or len(power) == 0:
        return 0.5 * (t0 + t1), 0.0
    window = power[i0:i1]
    k = int(np.argmin(window))
    return (i0 + k + 0.5) * FRAME, 10 * math.log10(float(window[k]) + 1e-12)


def split_long(atom, words, power, min_s, max_s, stats: SegmentStats) -> list[tuple[float, float]]:
    a, b = atom
    if b - a <= max_s:
        return [atom]
    inner = [w for w in words if a <= w.mid <= b]
    candidates: list[tuple[float, float]] = []   # (cut time, dB)
    if len(inner) >= 2:
        for w1, w2 in zip(inner, inner[1:]):
            lo, hi = min(w1.end, w2.start), max(w1.end, w2.start)
            # the cut stays in the gap between the two words (or on their shared edge)
            if hi - lo >= FRAME:
                t, level = _power_db(power, lo, hi)
                t = min(max(t, lo), hi)          # frames are 10 ms: keep the cut inside the gap
            else:
                t, level = 0.5 * (lo + hi), _power_db(power, lo - FRAME, hi + FRAME)[1]
            candidates.append((t, level))
    else:
        step = max(1, int(0.05 / FRAME))
        for t in np.arange(a + min(min_s, (b - a) / 2), b - min(min_s, (b - a) / 2), step * FRAME):
            candidates.append(_power_db(power, t, t + step * FRAME))
    candidates = [c for c in candidates if a < c[0] < b]
    if not candidates:
        return [atom]
    mid = 0.5 * (a + b)
    length = b - a

    def score(c):
        t, level = c
        both_ok = (t - a) >= min_s and (b - t) >= min_s
        return (0 if both_ok else 1, level + 20.0 * abs(t - mid) / length)

    t, _ = min(candidates, key=score)
    stats.splits += 1
    return split_long((a, t), words, power, min_s, max_s, stats) + split_long((t, b), words, power, min_s, max_s, stats)


def group_atoms(atoms, min_s, max_s, target_s, max_gap_s):
    """Dynamic programming over consecutive atoms; returns groups as (first, last) index pairs."""
    n = len(atoms)
    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        gap_max = 0.0
        for i in range(j, 0, -1):       # group = atoms[i-1 .. j-1]
            if i < j:
                gap_max = max(gap_max, atoms[i][0] - atoms[i - 1][1])
            dur = atoms[j - 1][1] - atoms[i - 1][0]
            if i < j and (dur > max_s or gap_max > max_gap_s):
                break
            cost = ((dur - target_s) / target_s) ** 2
            if dur < min_s:
                cost += 4.0 + 8.0 * (min_s - dur) / min_s
            if dur > max_s:       # a single atom that could not be split
                cost += 50.0
            cost += 0.3 * gap_max   # long pauses inside a clip are a little worse than short ones
            if best[i - 1] + cost < best[j]:
                best[j] = best[i - 1] + cost
                back[j] = i
    groups = []
    j = n
    while j > 0:
        i = back[j]
        groups.append((i - 1, j - 1))
        j = i - 1
    return groups[::-1]


def plan_segments(
    regions,
    words: list[Word],
    power: np.ndarray,
    duration: float,
    min_s: float = 2.0,
    max_s: float = 11.0,
    target_s: float | None = None,
    max_gap_s: float = MAX_GAP_S,
    pad_s: float = 0.2,
) -> tuple[list[Segment], SegmentStats]:
    stats = SegmentStats(vad_regions=len(regions))
    target_s = target_s if target_s is not None else 0.5 * (min_s + max_s)
    words = sorted(words, key=lambda w: w.start)
    atoms = build_atoms(regions, words)
    stats.atoms = len(atoms)
    pieces: list[tuple[float, float]] = []
    for atom in atoms:
        pieces.extend(split_long(atom, words, power, min_s, max_s, stats))
    groups = group_atoms(pieces, min_s, max_s, target_s, max_gap_s) if pieces else []
    segs = [Segment(pieces[i][0], pieces[j][1]) for i, j in groups]
    stats.merged_into = len(segs)

    # speech spans (before any context is added) bound how far a neighbour may extend: at most to
    # the middle of the pause between them
    speech = [(s.start, s.end) for s in segs]
    for k, s in enumerate(segs):
        if s.duration >= min_s:
            continue
        left_bound = 0.5 * (speech[k - 1][1] + s.start) if k > 0 else 0.0
        right_bound = 0.5 * (s.end + speech[k + 1][0]) if k + 1 < len(segs) else duration
        before = s.duration
        need = min_s - before
        room_l, room_r = max(0.0, s.start - left_bound), max(0.0, right_bound - s.end)
        # evenly from both sides, then from whichever side still has room
        take_l = min(room_l, need / 2)
        take_r = min(room_r, need - take_l)
        take_l = min(room_l, need - take_r)
        if take_l + take_r > 0:
            s.start -= take_l
            s.end += take_r
            s.extended_from = before
            stats.extended.append((before, s.duration))
    # padding, never past the midpoint of the pause between two clips
    for k, s in enumerate(segs):
        left_limit = 0.5 * (segs[k - 1].end + s.start) if k > 0 else 0.0
        right_limit = 0.5 * (s.end + segs[k + 1].start) if k + 1 < len(segs) else duration
        new_start = max(left_limit, s.start - pad_s, 0.0)
        new_end = min(right_limit, s.end + pad_s, duration)
        s.start, s.end = min(new_start, s.start), max(new_end, s.end)

    for s in segs:
        s.words = [w for w in words if s.start <= w.mid < s.end]
        if s.duration < min_s - 1e-6:
            s.flags.append("too_short")
            stats.still_short += 1
        if s.duration > max_s + 1e-6:
            s.flags.append("too_long")
            stats.over_max += 1
    return segs, stats


@dataclass
class Chunk:
    """One whisper window: spans of the recording laid end to end. Pauses longer than the cap
    are shortened to it (the cap's halves kept beside the speech), so a 30 s window holds
    ~30 s of speech and fewer windows go through whisper's encoder, which always runs 30 s."""

    pieces: list[tuple[float, float]]

    @property
    def start(self) -> float:
        return self.pieces[0][0]

    @property
    def end(self) -> float:
        return self.pieces[-1][1]

    @property
    def length(self) -> float:
        return sum(b - a for a, b in self.pieces)


def transcription_chunks(regions, power: np.ndarray, duration: float, max_chunk_s: float = 29.0,
                         pad_s: float = 0.2, pause_cap_s: float = MAX_GAP_S) -> list[Chunk]:
    """Group VAD regions into whisper windows of at most `max_chunk_s` of audio once pauses are
    capped at `pause_cap_s` (whisper's window is 30 s), as few as fit and of near-equal length
    (whisper hears a short window less well: a recording is not cut up further to give parallel
    decoders work). The cap is the
    longest pause a clip may bridge, so whatever a clip holds was heard by whisper, even a word
    the VAD missed inside a pause."""
    spans: list[tuple[float, float]] = []
    for a, b in regions:
        while b - a > max_chunk_s - 2 * pad_s:   # one breath longer than a window: cut at the quietest point
            t, _ = _power_db(power, a + max_chunk_s * 0.5, a + max_chunk_s - 2 * pad_s)
            spans.append((a, t))
            a = t
        spans.append((a, b))
    if not spans:
        return []
    keep = [0.0] + [min(max(0.0, spans[i + 1][0] - spans[i][1]), pause_cap_s) for i in range(len(spans) - 1)] + [0.0]
    groups = _window_groups(spans, keep, max_chunk_s - 2 * pad_s)
    out = []
    for g, idx in enumerate(groups):
        first, last = idx[0], idx[-1]
        # the window's outer edges get `pad_s` of the pause, never past its middle
        lo = 0.5 * (spans[first - 1][1] + spans[first][0]) if first > 0 else 0.0
        hi = 0.5 * (spans[last][1] + spans[last + 1][0]) if last + 1 < len(spans) else duration
        pieces: list[list[float]] = []
        for i in idx:
            a, b = spans[i]
            a = max(lo, a - pad_s, 0.0) if i == first else a - keep[i] / 2
            b = min(hi, b + pad_s, duration) if i == last else b + keep[i + 1] / 2
            if pieces and a <= pieces[-1][1] + 1e-6:       # the whole pause kept: one piece
                pieces[-1][1] = max(pieces[-1][1], b)
            else:
                pieces.append([a, b])
        out.append(Chunk([(float(a), float(b)) for a, b in pieces]))
    return out


def _window_groups(spans, keep, limit: float, free_pause_s: float = 0.8,
                   cut_cost: float = 0.3) -> list[list[int]]:
    """Spans grouped into windows of at most `limit` seconds, by dynamic programming: windows
    close to an equal share of the speech, cut preferably at long pauses (a window that starts
    mid-sentence gives whisper less to go on). A span is in one window only."""
    n = len(spans)
    lens = [b - a for a, b in spans]
    total = sum(lens) + sum(keep[1:-1])
    target = total / max(math.ceil(total / limit), 1)
    inf = float("inf")
    best = [0.0] + [inf] * n           # best[j]: cost of grouping spans[:j]
    prev = [0] * (n + 1)
    for j in range(1, n + 1):
        length = 0.0
        for i in range(j - 1, -1, -1):          # the last window holds spans i..j-1
            length += lens[i] + (keep[i + 1] if i < j - 1 else 0.0)
            if length > limit and i < j - 1:
                break
            if best[i] == inf:
                continue
            gap = keep[i] if i > 0 else free_pause_s
            c = best[i] + ((length - target) / target) ** 2 + cut_cost * max(0.0, 1.0 - gap / free_pause_s)
            if c < best[j]:
                best[j], prev[j] = c, i
    groups, j = [], n
    while j > 0:
        groups.append(list(range(prev[j], j)))
        j = prev[j]
    return groups[::-1]


class TimeMap:
    """Times in chunks laid end to end (what whisper heard) back to times in the recording."""

    def __init__(self, chunks: list[Chunk], origin: float = 0.0):
        self.packed: list[float] = []      # where each piece starts in the laid-out audio
        self.source: list[float] = []      # ... and in the recording
        self.length: list[float] = []
        self.clips: list[tuple[float, float]] = []     # each chunk's span in the laid-out audio
        t = origin
        for c in chunks:
            c0 = t
            for a, b in c.pieces:
                self.packed.append(t)
                self.source.append(a)
                self.length.append(b - a)
                t += b - a
            self.clips.append((c0, t))
        self.total = t

    def _piece(self, t: float) -> int:
        return max(0, bisect.bisect_right(self.packed, t) - 1)

    def __call__(self, t: float) -> float:
        k = self._piece(t)
        return self.source[k] + min(max(0.0, t - self.packed[k]), self.length[k])

    def span(self, a: float, b: float) -> tuple[float, float]:
        """A word's (start, end): kept inside the piece that holds its middle, so a word whisper
        placed across a shortened pause never spans the pause's removed part."""
        k = self._piece(0.5 * (a + b))
        lo, hi = self.packed[k], self.packed[k] + self.length[k]
        a, b = min(max(a, lo), hi), min(max(b, lo), hi)
        return self.source[k] + (a - lo), self.source[k] + (b - lo)
