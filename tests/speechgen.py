"""Speech with known text for tests, made with espeak-ng (no downloads, deterministic)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

SENTENCES = [
    "The morning train was late again today.",
    "She opened the window and looked at the garden.",
    "We should meet at the library after lunch.",
    "His brother plays the violin in a small orchestra.",
    "Please remember to water the plants on Friday.",
    "The river was cold and very clear.",
    "They walked home slowly through the quiet park.",
    "A strong wind blew across the open field.",
    "My neighbor bakes fresh bread every weekend.",
    "The old clock in the hall stopped at noon.",
    "Children were laughing on the playground.",
    "He forgot his umbrella at the station.",
    "The museum opens early on Sunday morning.",
    "Our teacher explained the problem very carefully.",
    "The cat slept all afternoon on the warm sofa.",
    "Fresh snow covered the mountains overnight.",
    "I would like a cup of tea with honey.",
    "The market was busy and full of color.",
    "She wrote a long letter to her grandmother.",
    "The little boat drifted toward the island.",
    "Nobody knew where the missing key had gone.",
    "The doctor asked him to rest for a week.",
    "Birds gathered on the roof before the storm.",
    "We painted the kitchen a bright yellow.",
]

RATE = 22050


def say(text: str, voice: str = "en-us", speed: int = 165, pitch: int = 50, trim_silence: bool = True) -> np.ndarray:
    """One utterance as float32 mono at 22050 Hz (espeak-ng's native rate)."""
    proc = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True, check=True,
    )
    import io

    audio, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    assert rate == RATE, rate
    return trim(audio) if trim_silence else audio


def trim(audio: np.ndarray, level: float = 1e-3) -> np.ndarray:
    idx = np.flatnonzero(np.abs(audio) > level)
    return audio[idx[0] : idx[-1] + 1] if len(idx) else audio


def compose(sentences: list[str], pauses: list[float] | float = 0.6, lead: float = 0.4, noise_db: float | None = None,
            seed: int = 0, **voice) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Sentences joined by pauses; returns audio and (start, end, text) of each sentence."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(lead * RATE), np.float32)]
    spans = []
    t = lead
    for k, text in enumerate(sentences):
        a = say(text, **voice)
        spans.append((t, t + len(a) / RATE, text))
        parts.append(a)
        t += len(a) / RATE
        p = pauses[k % len(pauses)] if isinstance(pauses, list) else pauses
        parts.append(np.zeros(int(p * RATE), np.float32))
        t += int(p * RATE) / RATE
    audio = np.concatenate(parts)
    if noise_db is not None:
        audio = audio + (10 ** (noise_db / 20)) * rng.standard_normal(len(audio)).astype(np.float32)
    return audio.astype(np.float32), spans


def write(path: Path, audio: np.ndarray, rate: int = RATE, channels: int = 1, codec_args: list[str] | None = None,
          gain_db: float = 0.0, src_rate: int = RATE) -> Path:
    """Write audio in any format ffmpeg knows (from the extension), resampled and with channels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".src.wav")
    sf.write(str(tmp), audio * (10 ** (gain_db / 20)), src_rate, subtype="FLOAT")
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(tmp),
           "-ar", str(rate), "-ac", str(channels), *(codec_args or []), str(path)]
    subprocess.run(cmd, check=True)
    tmp.unlink()
    return path

# utterances far from the 2-11 s range, as real recordings have them
SHORT = ["Yes.", "Thank you.", "Really?", "Of course.", "Good night.", "Not today."]
LONG = [
    "When we finally reached the top of the hill after walking for most of the afternoon, the whole valley "
    "opened up below us with its green fields, its narrow roads and the small white houses scattered along "
    "the river, and for a long moment nobody said a single word.",
    "The report that the committee published at the end of the year explained in great detail how the "
    "library had spent its budget, which services had been used the most by the people of the town, and "
    "what the staff hoped to change during the next twelve months.",
]


def two_voice_set(folder: Path, n_main: int = 16, n_other: int = 4, other_voice: str = "en+f4",
                  other_pitch: int = 90) -> dict[str, str]:
    """Short recordings of a main voice and a clearly different minority voice, each with its
    transcript in a .txt beside it. Returns {file name: "main" | "other"}."""
    S = SENTENCES
    truth = {}
    for k in range(n_main + n_other):
        is_main = k < n_main
        a, b = S[k % len(S)], S[(k + 5) % len(S)]
        kw = {} if is_main else {"voice": other_voice, "pitch": other_pitch}
        audio, _ = compose([a, b], pauses=0.4, seed=k, **kw)
        name = f"main_{k:02d}" if is_main else f"other_{k - n_main:02d}"
        write(folder / f"{name}.wav", audio)
        (folder / f"{name}.txt").write_text(f"{a} {b}")
        truth[f"{name}.wav"] = "main" if is_main else "other"
    return truth


# a made-up orthography: English words respelled with letters the tiny test vocabulary lacks
_CONLANG = str.maketrans({"a": "ą", "e": "ə", "o": "ø", "s": "ʃ", "g": "ɣ", "n": "ŋ",
                            "d": "ð", "w": "ƿ", "c": "ç", "y": "ɏ"})


def conlang(text: str) -> str:
    return text.lower().translate(_CONLANG)


def conlang_set(folder: Path, n: int = 12) -> dict[str, str]:
    """Short recordings with transcripts in the made-up orthography (.txt beside each file)."""
    out = {}
    for k in range(n):
        a, b = SENTENCES[k % len(SENTENCES)], SENTENCES[(k + 7) % len(SENTENCES)]
        audio, _ = compose([a, b], pauses=0.4, seed=k)
        write(folder / f"qx_{k:02d}.wav", audio)
        text = conlang(f"{a} {b}")
        (folder / f"qx_{k:02d}.txt").write_text(text, encoding="utf-8")
        out[f"qx_{k:02d}.wav"] = text
    return out
