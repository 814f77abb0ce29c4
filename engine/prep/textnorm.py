"""Transcript clean-up for XTTS training text.

The XTTS tokenizer lower-cases and expands numbers, abbreviations and symbols itself at training
time (`multilingual_cleaners`). Here we make the stored text say what is spoken, in a form a
person can still review: whisper's non-speech annotations removed, numbers and symbols written
out with coqui's own XTTS expanders for the languages they support, no `|` (the CSV separator),
one space between words.
"""

from __future__ import annotations

import re
import unicodedata

XTTS_LANGUAGES = {
    "en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn", "ja", "hu", "ko", "hi",
}
_EXPANDABLE = {"en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "hu", "ko"}

_ANNOTATION = re.compile(r"\[[^\]]*\]|\((?:music|applause|laughs?|laughter|inaudible|silence|noise|coughs?)\)|[♪♫]+",
                         re.IGNORECASE)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_WORD = re.compile(r"[\w']+", re.UNICODE)


def normalize_text(text: str, language: str = "en") -> str:
    text = unicodedata.normalize("NFC", text)
    text = _ANNOTATION.sub(" ", text)
    text = text.replace("|", ", ").replace("\n", " ").replace("\t", " ")
    text = re.sub(r"^[\s\-–—]+", "", text)
    base = language.split("-")[0] if language != "zh-cn" else language
    if base in _EXPANDABLE:
        try:
            from TTS.tts.layers.xtts.tokenizer import expand_numbers_multilingual, expand_symbols_multilingual

            text = expand_numbers_multilingual(text, lang=base)   # first: it reads "$5" as money
            text = expand_symbols_multilingual(text, lang=base)
        except Exception:  # noqa: BLE001 - expansion is a nicety; the tokenizer expands again
            pass
    text = re.sub(r"\s+", " ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return text


def comparable(text: str) -> str:
    """Lower-case words only: for duplicate checks and WER."""
    return " ".join(_WORD.findall(text.lower()))


def repeated_loop(text: str, min_repeats: int = 3, max_n: int = 6) -> bool:
    """True when some 1..6-word phrase repeats back to back `min_repeats` times (a decoding loop),
    or when the text compresses like a loop does."""
    words = comparable(text).split()
    for n in range(1, max_n + 1):
        for i in range(0, len(words) - n * min_repeats + 1):
            phrase = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == phrase for k in range(1, min_repeats)):
                if n > 1 or len(phrase[0]) > 1:
                    return True
    if len(text) > 60:
        from engine.audio.transcribe import text_compression_ratio

        return text_compression_ratio(text) > 2.4
    return False
