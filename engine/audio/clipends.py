"""How each clip starts and ends (finetuned XTTS models learn what their clips end with).

After segmentation, every clip's edges are looked at with the source's 10 ms frame power and
whisper's word times, and fixed where that is cheap, flagged where it is not:

- the last word cut by the clip end (sound still at speech level in the last 30 ms, or the last
  word ends within a few ms of the end): the end moves on to the next pause if one comes soon
  (and never into the next clip); otherwise flag `cut_end`;
- a leading partial word (speech level in the first 30 ms): the start moves back to the pause
  before it when there is one close by; otherwise flag `cut_start`;
- noise or breath after the last word (sound clearly above the recording's noise floor but
  below speech, after the last word): the tail is trimmed to the last word plus a short release;
  if it can't be (the sound is inside the words' span), flag `tail_noise`;
- trailing silence too long (over `MAX_TAIL_S`): trimmed to `KEEP_TAIL_S`;
- trailing silence missing (under `MIN_TAIL_S`): extended into the pause when there is room,
  otherwise flag `no_tail`.

Pure functions: the caller passes frame power (mean square per 10 ms frame of the whole source),
the clip's words and the limits its neighbours set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FRAME = 0.01
EDGE_S = 0.03            # the frames looked at for "still sounding" at an edge
WORD_EDGE_S = 0.015      # a last word ending this close to the clip end was cut by it
SPEECH_BELOW_PEAK_DB = 25.0   # a frame within this of the clip's loud frames counts as speech level
TAIL_ABOVE_FLOOR_DB = 12.0    # a tail frame this far above the noise floor is sound (noise, breath)
RELEASE_S = 0.12         # what is kept after the last word's end when a noisy tail is trimmed
MAX_TAIL_S = 0.6         # trailing silence longer than this is trimmed ...
KEEP_TAIL_S = 0.3        # ... to this
MIN_TAIL_S = 0.05        # less than this after the last sound: the clip ends abruptly
RELEASE_MAX_S = 0.12     # speech-level sound this long after the last word's end still counts as the word
LOOK_AHEAD_S = 0.5       # how far an edge may move to reach a pause

FLAGS = ("cut_end", "cut_start", "tail_noise", "no_tail")


@dataclass
class EdgeResult:
    start: float
    end: float
    flags: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)       # what was changed ("end_extended", "tail_trimmed", ...)


def _db(power: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.asarray(power, dtype=np.float64) + 1e-12)


def _frames(t0: float, t1: float, n: int) -> tuple[int, int]:
    i0 = max(0, math.floor(t0 / FRAME + 1e-6))
    i1 = min(n, max(i0, math.ceil(t1 / FRAME - 1e-6)))
    return i0, i1


def refine(start: float, end: float, words, power: np.ndarray, floor_db: float | None,
           lo_limit: float, hi_limit: float, min_len: float = 0.0) -> EdgeResult:
    """New (start, end) and flags for one clip. `lo_limit`/`hi_limit`: how far the clip may grow
    (the previous clip's end / the next clip's start, or the source's edges); a trim never makes
    the clip shorter than `min_len`."""
    res = EdgeResult(start, end)
    n = len(power)
    if n == 0 or end - start < 4 * EDGE_S:
        return res
    level = _db(power)
    i0, i1 = _frames(start, end, n)
    if i1 - i0 < 4:
        return res
    peak = float(np.percentile(level[i0:i1], 95))
    floor = floor_db if floor_db is not None else float(np.percentile(level[i0:i1], 5))
    speech_level = max(peak - SPEECH_BELOW_PEAK_DB, floor + TAIL_ABOVE_FLOOR_DB)
    sound_level = floor + TAIL_ABOVE_FLOOR_DB
    # sound (of any kind) at a frame; speech level at a frame
    sounding = level > sound_level
    loud = level > speech_level

    def quiet_after(t: float, limit: float) -> float | None:
        """Start time of the first run of 3 quiet frames at or after t, before limit."""
        a, b = _frames(t, limit, n)
        run = 0
        for i in range(a, b):
            run = run + 1 if not loud[i] else 0
            if run >= 3:
                return (i - 2) * FRAME
        return None

    def quiet_before(t: float, limit: float) -> float | None:
        a, b = _frames(limit, t, n)
        run = 0
        for i in range(b - 1, a - 1, -1):
            run = run + 1 if not loud[i] else 0
            if run >= 3:
                return (i + 3) * FRAME
        return None

    last_word_end = max((w.end for w in words), default=None)
    first_word_start = min((w.start for w in words), default=None)

    # ---- the end: cut inside a word?
    e0, e1 = _frames(res.end - EDGE_S, res.end, n)
    ends_loud = e1 > e0 and bool(loud[e0:e1].any())
    word_cut = last_word_end is not None and last_word_end > res.end - WORD_EDGE_S
    if ends_loud or word_cut:
        q = quiet_after(res.end - EDGE_S, min(hi_limit, res.end + LOOK_AHEAD_S))
        if q is not None and q + MIN_TAIL_S <= hi_limit:
            res.end = max(res.end, min(hi_limit, q + min(KEEP_TAIL_S, max(MIN_TAIL_S, (hi_limit - q) / 2))))
            res.fixes.append("end_extended")
        else:
            res.flags.append("cut_end")
    else:
        # ---- the tail after the last word / last speech frame
        a, b = _frames(res.start, res.end, n)
        loud_idx = np.flatnonzero(loud[a:b])
        last_speech = (a + int(loud_idx[-1]) + 1) * FRAME if len(loud_idx) else res.start
        if last_word_end is not None and last_word_end < last_speech:
            # the words end before the sound does: follow the word's release (speech-level frames
            # right after it, at most RELEASE_MAX_S), not a noise that goes on after it
            k = max(0, int(last_word_end / FRAME))
            limit = min(b, k + int(RELEASE_MAX_S / FRAME))
            while k < limit and loud[k]:
                k += 1
            last_speech = max(last_word_end, k * FRAME)
        anchor = min(last_speech, res.end)
        ta, tb = _frames(anchor + RELEASE_S, res.end, n)
        if tb - ta >= 3 and int(sounding[ta:tb].sum()) >= 3:
            # something audible after the words: trim it away (keep a short release)
            new_end = anchor + RELEASE_S
            if new_end < res.end - FRAME:
                res.end = new_end
                res.fixes.append("tail_trimmed")
            else:
                res.flags.append("tail_noise")
        tail = res.end - anchor
        last_speech = anchor
        if tail > MAX_TAIL_S:
            res.end = last_speech + KEEP_TAIL_S
            res.fixes.append("tail_trimmed")
        elif tail < MIN_TAIL_S:
            room = hi_limit - res.end
            if room >= MIN_TAIL_S - tail:
                res.end = min(hi_limit, last_speech + min(KEEP_TAIL_S, tail + room))
                res.fixes.append("tail_extended")
            else:
                res.flags.append("no_tail")

    # ---- the start: a leading partial word?
    s0, s1 = _frames(res.start, res.start + EDGE_S, n)
    starts_loud = s1 > s0 and bool(loud[s0:s1].any())
    word_cut_start = first_word_start is not None and first_word_start < res.start - WORD_EDGE_S
    if starts_loud or word_cut_start:
        q = quiet_before(res.start + EDGE_S, max(lo_limit, res.start - LOOK_AHEAD_S))
        if q is not None and q - MIN_TAIL_S >= lo_limit:
            res.start = min(res.start, max(lo_limit, q - min(0.1, (q - lo_limit) / 2)))
            res.fixes.append("start_moved")
        else:
            res.flags.append("cut_start")
    res.start = max(res.start, lo_limit)
    res.end = min(res.end, hi_limit)
    if res.end < end and res.end - res.start < min_len:
        res.end = min(end, res.start + min_len)
        if "tail_trimmed" in res.fixes:          # the sound after the words had to stay
            res.fixes.remove("tail_trimmed")
            res.flags.append("tail_noise")
    return res
