"""Whisper for the listening test: the same model choice as prep (engine/audio/transcribe.py —
`auto` = large-v3 on CUDA, small on CPU, XTTS_FT_WHISPER_MODEL, a local folder, or the bundled
offline tiny.en for English when nothing else is on the machine), transcribing one sentence
with word timestamps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.audio.transcribe import Transcriber, WhisperLoadError
from engine.listen.encoders import ListenError


def whisper_language(language: str) -> str:
    lang = language.lower()
    return "zh" if lang.startswith("zh") else lang.split("-")[0]


@dataclass
class Heard:
    text: str
    words: list[tuple[float, float, str]] = field(default_factory=list)   # (start, end, word)

    @property
    def first_start(self) -> float | None:
        return self.words[0][0] if self.words else None

    @property
    def last_end(self) -> float | None:
        return self.words[-1][1] if self.words else None


class Ear:
    def __init__(self, language: str, model: str = "auto", device: str = "auto"):
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        self.language = whisper_language(language)
        if self.language not in _LANGUAGE_CODES:
            raise ListenError(f"whisper cannot transcribe language '{language}': the listening test needs a "
                              "language whisper knows (CER/WER would be meaningless)")
        self.t = Transcriber(model, device, self.language)
        try:
            m = self.t.load()
        except WhisperLoadError as exc:
            raise ListenError(str(exc)) from exc
        if not m.model.is_multilingual and self.language != "en":
            raise ListenError(f"whisper model {self.t.model_name} is English-only and cannot transcribe "
                              f"'{language}': pass --whisper-model NAME|PATH of a multilingual model")
        self.note = self.t.fallback_note

    def release(self) -> None:
        """Drop the whisper model (GPU memory back during training); the next hear() loads it again."""
        if self.t._model is None:
            return
        self.t._model = None
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001, S110 - freeing cache memory is best effort
            pass

    @property
    def model_name(self) -> str:
        return self.t.model_name

    def hear(self, audio16k: np.ndarray) -> Heard:
        m = self.t.load()
        segments, _ = m.transcribe(np.asarray(audio16k, dtype=np.float32), language=self.language, beam_size=5,
                                   word_timestamps=True, condition_on_previous_text=False, vad_filter=False)
        texts, words = [], []
        for seg in segments:
            texts.append(seg.text.strip())
            words.extend((float(w.start), float(w.end), str(w.word).strip()) for w in (seg.words or []))
        return Heard(" ".join(t for t in texts if t), words)
