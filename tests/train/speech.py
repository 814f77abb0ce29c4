"""A small espeak-ng dataset in the format `xtts-ft prep` writes (wavs/, metadata_*.csv, dataset.json)."""

from __future__ import annotations

import json
from pathlib import Path

TRAIN_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with one step.",
    "She sells sea shells by the sea shore.",
    "Peter picked a peck of pickled peppers.",
    "It was the best of times, it was the worst of times.",
    "Numbers like one, two and three are spoken every day.",
    "Please call Stella and ask her to bring these things.",
    "The rainbow is a division of white light into many colors.",
    "How much wood would a woodchuck chuck?",
    "Every morning the baker opens the shop at six.",
    "Rain fell softly on the quiet harbour town.",
    "Good voices need clean and steady recordings.",
    # 6-10 s clips: reference candidates for export
    "It was the age of wisdom, it was the age of foolishness, it was the epoch of belief, "
    "it was the season of light.",
    "The rainbow takes the shape of a long round arch, with its path high above, and its two ends "
    "apparently beyond the horizon.",
]
EVAL_TEXTS = [
    "The old clock struck nine in the empty hall.",
    "Seven swans swam slowly across the lake.",
    "Bright lamps lit the narrow street at night.",
]


def speak(text: str, out: Path, speed: int = 150) -> None:
    import soundfile as sf

    from speechgen import RATE, say

    sf.write(str(out), say(text, speed=speed, pitch=50, trim_silence=False), RATE, subtype="PCM_16")


def make_dataset(root: Path) -> Path:
    wavs = root / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    for name, texts in (("train", TRAIN_TEXTS), ("eval", EVAL_TEXTS)):
        rows = ["audio_file|text|speaker_name"]
        for i, text in enumerate(texts):
            rel = f"wavs/{name}_{i:02d}.wav"
            speak(text, root / rel, speed=120 if len(text) > 80 else 150)
            rows.append(f"{rel}|{text}|tester")
        (root / f"metadata_{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "dataset.json").write_text(json.dumps({"language": "en", "speaker": "tester"}))
    return root
