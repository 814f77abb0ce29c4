"""Languages XTTS does not know: the text cleaning used for them, made available to coqui's
tokenizer wherever the engine trains, exports or synthesises.

coqui's `VoiceBpeTokenizer.preprocess_text` raises NotImplementedError for a language outside its
built-in list. A model folder made by `xtts-ft vocab extend --language CODE` records its extra
languages in config.json under `xtts_ft.extra_languages` as {code: cleaner}; `install(...)` teaches
the tokenizer those codes. Cleaners:
  basic  Unicode NFC, lower-case, whitespace collapsed, quotes unified (default)
  none   the text exactly as written in the transcripts
Built-in languages keep coqui's own cleaning (numbers, abbreviations, symbols expanded).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

CLEANERS = ("basic", "none")
XTTS_LANGUAGES = {"en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn", "zh", "hu",
                  "ko", "ja", "hi"}

_extra: dict[str, str] = {}


def clean(text: str, cleaner: str) -> str:
    if cleaner == "none":
        return text
    text = unicodedata.normalize("NFC", text).lower()
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).strip()


def is_builtin(lang: str) -> bool:
    return lang in XTTS_LANGUAGES or lang.split("-")[0] in XTTS_LANGUAGES


def extra_languages(model_dir: str | Path) -> dict[str, str]:
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict((cfg.get("xtts_ft") or {}).get("extra_languages") or {})


def install(languages: dict[str, str]) -> None:
    """Teach coqui's XTTS tokenizer extra language codes (idempotent; built-ins are untouched)."""
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    for code, cleaner in languages.items():
        if cleaner not in CLEANERS:
            raise ValueError(f"unknown text cleaner {cleaner!r} for language {code!r} (use one of {CLEANERS})")
        _extra[code] = cleaner
    if getattr(VoiceBpeTokenizer, "_xtts_ft_patched", False):
        return
    original = VoiceBpeTokenizer.preprocess_text

    def preprocess_text(self, txt, lang):
        if lang in _extra:
            return clean(txt, _extra[lang])
        return original(self, txt, lang)

    VoiceBpeTokenizer.preprocess_text = preprocess_text
    VoiceBpeTokenizer._xtts_ft_patched = True


def install_for_model(model_dir: str | Path) -> dict[str, str]:
    langs = extra_languages(model_dir)
    if langs:
        install(langs)
    return langs
