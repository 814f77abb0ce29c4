"""Regenerates the bundled demo voice in datasets/demo/ (espeak-ng, GPL-3 program; its output
speech is not covered by the GPL and may be shipped).

    .venv/bin/python scripts/make_demo_voice.py

Four FLAC recordings of one espeak-ng voice reading public-domain-style sentences written for
this project, with pauses of several lengths, and a .txt transcript beside each.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import speechgen  # noqa: E402

EXTRA = [
    "Every morning the baker opens his shop before sunrise.",
    "The path to the lighthouse is steep, but the view is worth it.",
    "We counted the stars until the clouds rolled in.",
    "Her garden is full of roses, tulips and wild mint.",
    "The train to the coast leaves from platform four.",
    "Please speak slowly and clearly when you record your voice.",
    "A good recording has little noise and no music behind it.",
    "The orchestra tuned their instruments while the hall filled up.",
    "Old maps show the river running much closer to the town.",
    "He poured two cups of coffee and sat down by the window.",
    "Thunder rolled over the hills late in the evening.",
    "The children built a castle of sand near the water.",
    "Our neighbours moved here from a village in the north.",
    "The library keeps its rarest books in a cool dry room.",
    "At noon the square was quiet except for the fountain.",
    "She learned to play the piano when she was seven.",
    "The bridge was painted red and white last summer.",
    "Bring a warm coat, because the nights are cold in spring.",
    "The fisherman mended his nets on the harbour wall.",
    "Most of the guests arrived just after eight o'clock.",
    "He keeps a notebook for every journey he has taken.",
    "The wind turned the pages of the open newspaper.",
    "Fresh paint and new curtains made the room feel bright.",
    "They planted apple trees along the edge of the field.",
    "The museum guide spoke about the history of the castle.",
    "Snow fell softly on the roofs of the sleeping town.",
]


def main() -> None:
    out = ROOT / "datasets" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    pool = speechgen.SENTENCES + EXTRA + speechgen.LONG + speechgen.SHORT[:3]
    sessions = [pool[0:14], pool[14:28], pool[28:42], pool[42:]]
    pauses = [[0.5, 0.9, 0.35], [0.6, 1.3, 0.4, 0.8], [0.45, 0.7, 2.0], [0.5, 1.0, 0.3]]
    for k, (sentences, p) in enumerate(zip(sessions, pauses), 1):
        audio, _ = speechgen.compose(sentences, pauses=p, seed=k, voice="en-us", speed=160, pitch=45)
        path = out / f"session{k}.flac"
        speechgen.write(path, audio, rate=22050, codec_args=["-sample_fmt", "s16", "-compression_level", "12"])
        path.with_suffix(".txt").write_text(" ".join(sentences) + "\n", encoding="utf-8")
        print(f"{path.name}: {len(audio) / speechgen.RATE:.1f} s, {len(sentences)} sentences")


if __name__ == "__main__":
    main()
