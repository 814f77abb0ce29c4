"""Existing transcripts: sidecar `.txt`/`.lab` files and coqui/LJSpeech metadata files, and the
alignment that lays a known text over whisper's word timings for a long recording."""

from __future__ import annotations

import csv
import errno
import difflib
from pathlib import Path

from engine.audio.segment import Word
from engine.prep.textnorm import comparable

METADATA_NAMES = ("metadata.csv", "metadata_train.csv", "metadata_eval.csv", "metadata.txt")


SIDECARS = (".txt", ".lab", ".TXT", ".LAB")


def has_sidecar(audio: Path) -> bool:
    return any(_is_file(audio.with_suffix(ext)) for ext in SIDECARS)


def sidecar_text(audio: Path) -> str | None:
    for ext in SIDECARS:
        p = audio.with_suffix(ext)
        if _is_file(p):
            text = p.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return " ".join(text.split())
    return None


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except OSError:
        return False


def metadata_texts(folders: list[Path], errors: list[dict] | None = None) -> dict[Path, str]:
    """Texts from coqui (`audio_file|text|speaker_name`) or LJSpeech (`id|text|normalized`) files.

    A metadata file that cannot be read is left out and, with `errors`, listed there ({"path", "reason"})."""
    found: dict[Path, str] = {}
    for folder in folders:
        for name in METADATA_NAMES:
            meta = folder / name
            try:
                if not meta.is_file():
                    continue
                with open(meta, encoding="utf-8", errors="replace", newline="") as fh:
                    rows = list(csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE))
            except OSError as exc:
                if errors is not None and exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    errors.append({"path": str(meta), "reason": f"transcript file not readable ({exc.strerror})"})
                continue
            if not rows:
                continue
            start = 1 if rows[0] and rows[0][0].strip() == "audio_file" else 0
            for row in rows[start:]:
                if len(row) < 2 or not row[0].strip():
                    continue
                key = row[0].strip()
                text = (row[2] if start == 0 and len(row) >= 3 and row[2].strip() else row[1]).strip()
                candidates = [folder / key]
                if start == 0:   # LJSpeech: ids without folder or extension
                    candidates += [folder / "wavs" / f"{key}.wav", folder / f"{key}.wav"]
                for c in candidates:
                    if _is_file(c):
                        found[c.resolve()] = " ".join(text.split())
                        break
    return found


def align_known_text(known: str, asr_words: list[Word]) -> tuple[list[Word], float]:
    """Give each word of `known` the timing of the whisper word it matches (interpolating between
    matches for the rest). Returns (words, share of known words matched)."""
    tokens = known.split()
    if not tokens:
        return [], 0.0
    if not asr_words:
        return [], 0.0
    a = [comparable(t) for t in tokens]
    b = [comparable(w.text) for w in asr_words]
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    timing: list[tuple[float, float] | None] = [None] * len(tokens)
    matched = 0
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            w = asr_words[block.b + k]
            timing[block.a + k] = (w.start, w.end)
            matched += 1
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op in ("replace", "delete") and i2 > i1:
            if j2 > j1:
                t0, t1 = asr_words[j1].start, asr_words[j2 - 1].end
            else:
                t0 = asr_words[j1 - 1].end if j1 > 0 else asr_words[0].start
                t1 = asr_words[j1].start if j1 < len(asr_words) else asr_words[-1].end
                t0, t1 = min(t0, t1), max(t0, t1)
            step = (t1 - t0) / (i2 - i1)
            for k in range(i1, i2):
                timing[k] = (t0 + step * (k - i1), t0 + step * (k - i1 + 1))
    words = [Word(t[0], max(t[1], t[0]), " " + tok, 1.0) for tok, t in zip(tokens, timing) if t is not None]
    return words, matched / len(tokens)
