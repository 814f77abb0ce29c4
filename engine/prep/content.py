"""The content report: what the transcripts cover (AllTalk guide, "Content Selection").

- sentence-length mix (short / medium / long thirds of the clip bounds),
- share of questions and exclamations,
- speaking rate (words and characters per second of speech) per source, outliers flagged,
- phoneme coverage of the language (espeak-ng through `phonemizer`; "not available" without it),
- token coverage against a base model's vocab.json ([UNK] share, characters per token).

`content_report()` returns a JSON-ready dict (stored in dataset.json under "content");
`advice()` turns it into lines in the guide's words. Pure functions apart from the phonemizer
and tokenizer they load.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path

RATE_OUTLIER = 0.25        # a source speaking 25% faster or slower than the dataset's median
RARE_PHONEME = 3           # seen fewer times than this: "rare"
UNK_ADVICE_SHARE = 0.01    # above 1% [UNK] tokens: `xtts-ft vocab extend`
CHARS_PER_TOKEN_LOW = 1.5  # the tokenizer splits the text almost letter by letter
MIN_FOR_MIX_ADVICE = 10    # fewer clips than this: too few to judge the mix

# espeak-ng language codes for XTTS's languages (phonemizer's espeak backend)
ESPEAK = {
    "en": "en-us", "es": "es", "fr": "fr-fr", "de": "de", "it": "it", "pt": "pt", "pl": "pl", "tr": "tr",
    "ru": "ru", "nl": "nl", "cs": "cs", "ar": "ar", "zh-cn": "cmn", "zh": "cmn", "hu": "hu", "ko": "ko",
    "ja": "ja", "hi": "hi",
}

# The phonemes of a language in espeak-ng's IPA, after folding espeak's variants into them
# (FOLD). English: the 24 consonants and 16 vowels of General American as espeak-ng en-us writes
# them (r-coloured vowels count as vowel + ɹ, allophones such as the flap as their phoneme).
# Spanish (Castilian, as espeak-ng es speaks it): 19 consonants, 2 glides, 5 vowels; the soft
# b d g (β ð ɣ) are their phonemes, diphthongs are vowel + glide. French: 17 consonants (ŋ of
# loans aside), 2 glides (espeak-ng writes ɥ as y), 12 oral and 4 nasal vowels. German: 21
# consonants (espeak-ng writes tsch as t + ʃ, and ʒ/dʒ of loans aside), 15 vowels, ə and ɐ, 3
# diphthongs. Italian: 21 consonants, 2 glides, 7 vowels; long consonants are their phoneme.
# Each list was checked against espeak-ng's output on words that hold every phoneme
# (tests/engine/test_content.py). Other languages: the phonemes seen, without "missing".
INVENTORY = {
    "en": (
        "p b t d k ɡ f v θ ð s z ʃ ʒ h tʃ dʒ m n ŋ l ɹ w j "
        "iː ɪ eɪ ɛ æ ɑː ɔː oʊ ʊ uː ʌ ɜː ə aɪ aʊ ɔɪ"
    ).split(),
    "es": "p b t d k ɡ f θ s x tʃ ʝ m n ɲ l ʎ ɾ r j w a e i o u".split(),
    "fr": "p b t d k ɡ f v s z ʃ ʒ m n ɲ ʁ l j w i e ɛ a ɔ o u y ø œ ə ɛ̃ ɑ̃ ɔ̃ œ̃".split(),
    "de": (
        "p b t d k ɡ f v s z ʃ ç x h m n ŋ l r j pf ts "
        "iː ɪ yː ʏ eː ɛ ɛː øː œ aː a oː ɔ uː ʊ ə ɐ aɪ aʊ ɔʏ"
    ).split(),
    "it": "p b t d k ɡ f v s z ʃ ts dz tʃ dʒ m n ɲ l ʎ r j w i e ɛ a ɔ o u".split(),
}
FOLD = {
    "en": {
        "ɚ": ["ə", "ɹ"], "ɑːɹ": ["ɑː", "ɹ"], "ɔːɹ": ["ɔː", "ɹ"], "oːɹ": ["ɔː", "ɹ"], "ɛɹ": ["ɛ", "ɹ"],
        "ʊɹ": ["ʊ", "ɹ"], "ɪɹ": ["ɪ", "ɹ"], "ɜːɹ": ["ɜː", "ɹ"], "aɪɚ": ["aɪ", "ə", "ɹ"], "aɪə": ["aɪ", "ə"],
        "aʊɚ": ["aʊ", "ə", "ɹ"], "iə": ["iː", "ə"], "əl": ["ə", "l"], "oː": ["ɔː"], "ɔ": ["ɔː"], "i": ["iː"],
        "ɐ": ["ə"], "ᵻ": ["ɪ"], "ɾ": ["t"], "ʔ": ["t"], "n̩": ["n"], "l̩": ["l"], "r": ["ɹ"], "x": ["k"],
        "ɑ": ["ɑː"], "e": ["eɪ"], "o": ["oʊ"], "u": ["uː"], "a": ["æ"], "ɬ": ["l"],
    },
    "es": {
        "β": ["b"], "ð": ["d"], "ɣ": ["ɡ"], "v": ["b"], "ɛ": ["e"], "ɔ": ["o"], "ŋ": ["n"], "z": ["s"],
        "dʒ": ["ʝ"], "aɪ": ["a", "j"], "eɪ": ["e", "j"], "oɪ": ["o", "j"], "uɪ": ["u", "j"], "aʊ": ["a", "w"],
        "eʊ": ["e", "w"], "oʊ": ["o", "w"],
    },
    "fr": {"aː": ["a"], "ɑ": ["a"], "ɑː": ["a"], "ɛː": ["ɛ"], "oː": ["o"], "ɔː": ["ɔ"], "r": ["ʁ"], "ɪ": ["i"],
           "ʊ": ["u"]},
    "de": {"ɑː": ["aː"], "ɑ": ["a"], "y": ["ʏ"], "ɔø": ["ɔʏ"], "ɜ": ["ɐ"], "ɾ": ["r"], "ʁ": ["r"], "tʃ": ["t", "ʃ"]},
    "it": {"ɪ": ["i"], "ʊ": ["u"], "ɾ": ["r"], **{c + "ː": [c] for c in
           "p b t d k ɡ f v s z ʃ ts dz tʃ dʒ m n ɲ l ʎ r".split()}},
}


# ------------------------------------------------------------------------------------------- text
def words_of(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text)


def letters_of(text: str) -> int:
    return sum(1 for ch in text if ch.isalnum())


def length_mix(durations: list[float], min_s: float, max_s: float) -> dict:
    third = (max_s - min_s) / 3
    edges = (min_s + third, min_s + 2 * third)
    short = sum(1 for d in durations if d < edges[0])
    long_ = sum(1 for d in durations if d >= edges[1])
    n = len(durations)
    return {
        "edges": [round(edges[0], 2), round(edges[1], 2)],
        "short": short, "medium": n - short - long_, "long": long_,
        "short_share": round(short / n, 3) if n else 0.0, "long_share": round(long_ / n, 3) if n else 0.0,
    }


def sentence_kinds(texts: list[str]) -> dict:
    """Counts of sentences that are questions / exclamations (a clip can hold several)."""
    q = e = s = 0
    for t in texts:
        for m in re.finditer(r"[^.!?¿¡。？！]+([.!?。？！]+|$)", t):
            body = m.group(0).strip()
            if not words_of(body):
                continue
            s += 1
            end = m.group(1)
            if "?" in end or "？" in end:
                q += 1
            elif "!" in end or "！" in end:
                e += 1
    return {"sentences": s, "questions": q, "exclamations": e,
            "question_share": round(q / s, 3) if s else 0.0, "exclamation_share": round(e / s, 3) if s else 0.0}


def speaking_rates(segments: list[dict], sources: list[dict]) -> dict:
    """Words and characters per second of speech, per source; sources far from the median flagged."""
    names = {s["id"]: s.get("name", s["id"]) for s in sources}
    per: dict[str, list[float]] = {}
    for seg in segments:
        speech = float(seg.get("speech_seconds") or seg.get("duration") or 0.0)
        if speech <= 0 or not seg.get("text"):
            continue
        acc = per.setdefault(seg["source"], [0.0, 0.0, 0.0])
        acc[0] += len(words_of(seg["text"]))
        acc[1] += letters_of(seg["text"])
        acc[2] += speech
    rows = []
    for sid, (w, c, t) in per.items():
        rows.append({"source": sid, "name": names.get(sid, sid), "words_per_s": round(w / t, 2),
                     "chars_per_s": round(c / t, 2), "speech_seconds": round(t, 1)})
    total_w = sum(v[0] for v in per.values())
    total_c = sum(v[1] for v in per.values())
    total_t = sum(v[2] for v in per.values())
    med = statistics.median([r["chars_per_s"] for r in rows]) if rows else 0.0
    for r in rows:
        r["outlier"] = None
        if len(rows) >= 3 and med > 0:
            dev = r["chars_per_s"] / med - 1
            if dev > RATE_OUTLIER:
                r["outlier"] = "fast"
            elif dev < -RATE_OUTLIER:
                r["outlier"] = "slow"
    return {
        "words_per_s": round(total_w / total_t, 2) if total_t else 0.0,
        "chars_per_s": round(total_c / total_t, 2) if total_t else 0.0,
        "sources": sorted(rows, key=lambda r: r["name"]),
    }


# ------------------------------------------------------------------------------------------- phonemes
def phonemizer_available() -> bool:
    try:
        from phonemizer.backend import EspeakBackend

        return bool(EspeakBackend.is_available())
    except Exception:  # noqa: BLE001 - no package, no library: "not available"
        return False


def phonemes(texts: list[str], language: str) -> list[list[str]] | None:
    """Each text as a list of phonemes (espeak-ng IPA), or None where espeak-ng can't do it."""
    code = ESPEAK.get(language) or ESPEAK.get(language.split("-")[0])
    if code is None or not phonemizer_available():
        return None
    try:
        import logging

        from phonemizer.backend import EspeakBackend
        from phonemizer.separator import Separator

        quiet = logging.getLogger("xtts-ft.phonemizer")
        quiet.setLevel(logging.ERROR)
        backend = EspeakBackend(code, with_stress=False, language_switch="remove-flags", logger=quiet)
        out = backend.phonemize(texts, separator=Separator(phone=" ", word=" | ", syllable=""), strip=True, njobs=1)
    except Exception:  # noqa: BLE001 - a voice espeak-ng lacks: not available
        return None
    return [[p for p in line.split() if p != "|"] for line in out]


def phoneme_coverage(texts: list[str], language: str) -> dict:
    base = language.split("-")[0] if language not in INVENTORY else language
    seqs = phonemes(texts, language)
    if seqs is None:
        return {"available": False, "reason": "espeak-ng is not installed" if not phonemizer_available()
                else f"espeak-ng has no voice for '{language}'"}
    fold = FOLD.get(base, {})
    counts: Counter = Counter()
    for seq in seqs:
        for p in seq:
            for q in fold.get(p, [p]):
                counts[q] += 1
    inventory = INVENTORY.get(base)
    out: dict = {"available": True, "phonemes_seen": len(counts), "counts": dict(counts.most_common())}
    if inventory is None:
        out["inventory"] = None
        out["rare"] = sorted(p for p, n in counts.items() if n < RARE_PHONEME)
        return out
    seen = [p for p in inventory if counts.get(p, 0) > 0]
    out.update({
        "inventory": len(inventory),
        "covered": len(seen),
        "coverage": round(len(seen) / len(inventory), 3),
        "missing": [p for p in inventory if counts.get(p, 0) == 0],
        "rare": [p for p in inventory if 0 < counts.get(p, 0) < RARE_PHONEME],
    })
    return out


# ------------------------------------------------------------------------------------------- tokens
def token_coverage(texts: list[str], language: str, vocab: Path | None) -> dict:
    if vocab is None:
        return {"available": False, "reason": "no base model given; pass --model DIR to measure it"}
    vocab = Path(vocab)
    if vocab.is_dir():
        vocab = vocab / "vocab.json"
    if not vocab.is_file():
        return {"available": False, "reason": f"{vocab}: no vocab.json"}
    try:
        from tokenizers import Tokenizer

        from engine.model.vocab import _prepared, coverage

        tok = Tokenizer.from_file(str(vocab))
        prepared = _prepared(texts, language, "multilingual_cleaners", vocab)
        lang_token = f"[{language.split('-')[0] if language != 'zh-cn' else language}]"
        cov = coverage(tok, prepared, lang_token if tok.token_to_id(lang_token) is not None else None)
    except Exception as exc:  # noqa: BLE001 - a damaged vocab is reported, not fatal for prep
        return {"available": False, "reason": f"{vocab}: {type(exc).__name__}: {exc}"[:200]}
    chars = sum(len(t.replace(" ", "")) for t in prepared)
    return {
        "available": True, "vocab": str(vocab), "tokens": cov.tokens, "unk": cov.unk,
        "unk_share": round(cov.unk_share, 4), "chars_per_token": round(chars / max(1, cov.tokens), 2),
        "single_char_share": round(cov.single_share, 3),
    }


# ------------------------------------------------------------------------------------------- report
def content_report(segments: list[dict], sources: list[dict], language: str, min_s: float, max_s: float,
                   vocab: Path | None = None) -> dict:
    """The report over the clips given (the included ones)."""
    texts = [s["text"] for s in segments if s.get("text")]
    return {
        "clips": len(segments),
        "length_mix": length_mix([float(s["duration"]) for s in segments], min_s, max_s),
        "sentences": sentence_kinds(texts),
        "rate": speaking_rates(segments, sources),
        "phonemes": phoneme_coverage(texts, language) if texts else {"available": False, "reason": "no text"},
        "tokens": token_coverage(texts, language, vocab) if texts else {"available": False, "reason": "no text"},
    }


def advice(rep: dict) -> list[tuple[str, str]]:
    """(code, message) pairs where the mix is poor, in the guide's words."""
    out: list[tuple[str, str]] = []
    n = rep.get("clips", 0)
    mix, kinds = rep.get("length_mix", {}), rep.get("sentences", {})
    if n >= MIN_FOR_MIX_ADVICE:
        if kinds.get("questions", 0) == 0 and kinds.get("exclamations", 0) == 0:
            out.append(("no_questions", "No questions or exclamations in the transcripts: add some for emotional range "
                                        "(the guide's content mix: neutral sentences, questions and exclamations)"))
        elif kinds.get("questions", 0) == 0:
            out.append(("no_questions", "No questions in the transcripts: add questions for emotional range"))
        elif kinds.get("exclamations", 0) == 0:
            out.append(("no_exclamations", "No exclamations in the transcripts: add some for emotional range"))
        if mix.get("short", 0) == 0 or mix.get("long", 0) == 0:
            which = "short" if mix.get("short", 0) == 0 else "long"
            out.append(("length_mix", f"No {which} clips: include short and long sentences to teach the model "
                                      "different pacing styles"))
    rate = rep.get("rate", {})
    for r in rate.get("sources", []):
        if r.get("outlier"):
            out.append(("speaking_rate", f"{r['name']}: speaks {r['outlier']}er than the rest "
                                         f"({r['chars_per_s']:.1f} vs {rate.get('chars_per_s', 0):.1f} characters/s); "
                                         "a mix of speeds is good, but check it is the same delivery you want"))
    ph = rep.get("phonemes", {})
    if ph.get("available") and ph.get("missing"):
        miss = ph["missing"]
        out.append(("phonemes", f"{len(miss)} of the language's {ph['inventory']} phonemes never occur "
                                f"({' '.join(miss[:12])}{' ...' if len(miss) > 12 else ''}): cover a broad set of "
                                "phonemes to enhance pronunciation and clarity"))
    tok = rep.get("tokens", {})
    if tok.get("available") and (tok["unk_share"] > UNK_ADVICE_SHARE or tok["chars_per_token"] < CHARS_PER_TOKEN_LOW):
        out.append(("vocab", f"The base vocabulary covers this text poorly ([UNK] {tok['unk_share']:.1%}, "
                             f"{tok['chars_per_token']:.1f} characters per token): run `xtts-ft vocab extend` "
                             "to add tokens for it"))
    return out


def lines(rep: dict) -> list[str]:
    """The report as short lines for prep's output and the studio."""
    mix, kinds, rate = rep["length_mix"], rep["sentences"], rep["rate"]
    lo, hi = mix["edges"]
    out = [
        f"Clip lengths: {mix['short']} short (<{lo:g}s), {mix['medium']} medium, {mix['long']} long (≥{hi:g}s)",
        f"Sentences: {kinds['sentences']}, questions {kinds['question_share']:.0%}, "
        f"exclamations {kinds['exclamation_share']:.0%}",
        f"Speaking rate: {rate['words_per_s']:.2f} words/s, {rate['chars_per_s']:.1f} characters/s",
    ]
    for r in rate["sources"]:
        if r.get("outlier"):
            out.append(f"  {r['name']}: {r['words_per_s']:.2f} words/s, {r['chars_per_s']:.1f} chars/s ({r['outlier']})")
    ph = rep["phonemes"]
    if not ph.get("available"):
        out.append(f"Phoneme coverage: not available ({ph.get('reason', '')})")
    elif ph.get("inventory"):
        extra = f"; missing: {' '.join(ph['missing'][:12])}" if ph["missing"] else ""
        rare = f"; rare: {' '.join(ph['rare'][:12])}" if ph["rare"] else ""
        out.append(f"Phoneme coverage: {ph['covered']} of {ph['inventory']} ({ph['coverage']:.0%}){extra}{rare}")
    else:
        out.append(f"Phoneme coverage: {ph['phonemes_seen']} distinct phonemes seen (no inventory listed for this "
                   "language, so none can be called missing)")
    tok = rep["tokens"]
    if tok.get("available"):
        out.append(f"Tokens: [UNK] {tok['unk_share']:.1%}, {tok['chars_per_token']:.2f} characters per token")
    else:
        out.append(f"Token coverage: not available ({tok.get('reason', '')})")
    return out
