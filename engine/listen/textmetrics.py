"""Text side of the listening test: the normalisation both texts get before CER/WER, the error
rates, and the loop / truncation flags read from a transcript.

Normalisation (documented in docs/listening.md), applied to the sentence and to whisper's transcript
alike: Unicode NFC; whisper's non-speech annotations dropped; numbers and symbols written out with
the XTTS expanders of the language (engine/prep/textnorm.normalize_text, the text prep stores);
lower case; punctuation removed (letters, digits and apostrophes kept); one space between words.
CER counts characters of that string (spaces included); WER counts its words. For languages
written without spaces (zh, ja) WER is computed on characters too, so both equal the CER.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

_WORD = re.compile(r"[\w']+", re.UNICODE)
NO_SPACE_LANGUAGES = {"zh", "zh-cn", "ja"}


def _normalize_text(text: str, language: str) -> str:
    from engine.prep.textnorm import normalize_text

    return normalize_text(text, language)


def normalise(text: str, language: str = "en") -> str:
    text = _normalize_text(unicodedata.normalize("NFC", text or ""), language)
    words = _WORD.findall(text.lower().replace("’", "'"))
    words = [w.strip("'") for w in words]
    return " ".join(w for w in words if w)


def units(text: str, language: str) -> list[str]:
    """The words of a normalised text (characters for languages written without spaces)."""
    if language in NO_SPACE_LANGUAGES or language.split("-")[0] in NO_SPACE_LANGUAGES:
        return list(text.replace(" ", ""))
    return text.split()


def error_rates(reference: str, hypothesis: str, language: str = "en") -> dict:
    """CER and WER of `hypothesis` against `reference` (both raw; normalised here)."""
    import jiwer

    ref, hyp = normalise(reference, language), normalise(hypothesis, language)
    if not ref:
        raise ValueError("the reference text has no words after normalisation")
    cer = jiwer.cer(ref, hyp) if hyp else 1.0
    ref_u, hyp_u = units(ref, language), units(hyp, language)
    wer = jiwer.wer(" ".join(ref_u), " ".join(hyp_u)) if hyp_u else 1.0
    return {"cer": round(float(cer), 4), "wer": round(float(wer), 4), "reference_norm": ref,
            "transcript_norm": hyp}


def missing_tail_words(reference: str, hypothesis: str, language: str = "en") -> int:
    """How many of the reference's final words have no match after the transcript's last matched
    word: a cut-off sentence loses its end, whatever whisper made of the middle."""
    import jiwer

    ref_u = units(normalise(reference, language), language)
    hyp_u = units(normalise(hypothesis, language), language)
    if not ref_u:
        return 0
    if not hyp_u:
        return len(ref_u)
    out = jiwer.process_words(" ".join(ref_u), " ".join(hyp_u))
    last_hit = 0
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            last_hit = chunk.ref_end_idx
    return len(ref_u) - last_hit


def truncated(reference: str, hypothesis: str, language: str = "en") -> tuple[bool, int]:
    """(flag, missing final words). Flagged when the last quarter of the sentence (at least one
    word; at least two for sentences of more than four words) is missing after words that were
    heard; a transcript with no word of the sentence is unintelligible (CER 1), not truncated."""
    n = len(units(normalise(reference, language), language))
    missing = missing_tail_words(reference, hypothesis, language)
    need = max(1 if n <= 4 else 2, math.ceil(0.25 * n))
    return (missing >= need and missing < n), missing


def last_matched_unit(reference: str, hyp_units: list[str], language: str = "en") -> int | None:
    """Index in `hyp_units` of the last unit aligned as equal to the reference, or None."""
    import jiwer

    ref_u = units(normalise(reference, language), language)
    if not ref_u or not hyp_units:
        return None
    out = jiwer.process_words(" ".join(ref_u), " ".join(hyp_units))
    last = None
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            last = chunk.hyp_end_idx - 1
    return last


def timed_units(words: list[tuple[float, float, str]], language: str = "en") -> list[tuple[float, float, str]]:
    """Whisper's timed words as normalised units, each with the times of the word it came from."""
    out = []
    for start, end, w in words:
        for u in units(normalise(w, language), language):
            out.append((start, end, u))
    return out


def repeated_ngrams(reference: str, hypothesis: str, language: str = "en", n: int = 3) -> int:
    """Occurrences of n-grams in the transcript beyond the times the sentence itself has them."""
    ref_u = units(normalise(reference, language), language)
    hyp_u = units(normalise(hypothesis, language), language)
    if len(ref_u) < n + 1:
        n = max(1, len(ref_u) - 1) if len(ref_u) > 1 else 1
    ref_c = Counter(tuple(ref_u[i:i + n]) for i in range(len(ref_u) - n + 1))
    hyp_c = Counter(tuple(hyp_u[i:i + n]) for i in range(len(hyp_u) - n + 1))
    return sum(max(0, c - max(1, ref_c.get(g, 0))) for g, c in hyp_c.items())


def looped(reference: str, hypothesis: str, language: str = "en") -> tuple[bool, dict]:
    """A decoding loop: n-grams the sentence has once come back (two or more extra occurrences),
    a word or phrase repeats three times back to back, or the transcript is far longer (x1.5 and
    3+ words more) than the sentence."""
    from engine.prep.textnorm import repeated_loop

    ref_u = units(normalise(reference, language), language)
    hyp_u = units(normalise(hypothesis, language), language)
    extra = repeated_ngrams(reference, hypothesis, language)
    ratio = len(hyp_u) / max(1, len(ref_u))
    back_to_back = repeated_loop(hypothesis) and not repeated_loop(reference)
    long = ratio > 1.5 and len(hyp_u) - len(ref_u) >= 3
    return (extra >= 2 or back_to_back or long), {"repeated_ngrams": extra, "length_ratio": round(ratio, 3)}
