"""Audio helpers of the listening test: mono 16 kHz loading and where the sound really ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 16000
FRAME_S = 0.02
SILENCE_DB = 35.0     # a frame this far under the loudest frame counts as silence


def to_mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def resample(audio: np.ndarray, src: int, dst: int = RATE) -> np.ndarray:
    if src == dst:
        return audio.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(src), int(dst))
    return resample_poly(audio, dst // g, src // g).astype(np.float32)


def load16k(path: str | Path) -> np.ndarray:
    """Any file soundfile reads, as float32 mono 16 kHz. Raises ValueError with a clear message."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"audio file not found: {p}")
    try:
        audio, rate = sf.read(str(p), dtype="float32", always_2d=False)
    except Exception as exc:
        raise ValueError(f"{p}: not a readable audio file ({exc})") from exc
    audio = to_mono(audio)
    if audio.size == 0:
        raise ValueError(f"{p}: the file holds no audio")
    return resample(audio, int(rate))


def frame_db(audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    n = max(1, int(FRAME_S * rate))
    frames = len(audio) // n
    if frames == 0:
        return np.array([-120.0])
    x = audio[: frames * n].reshape(frames, n).astype(np.float64)
    rms = np.sqrt((x * x).mean(axis=1)) + 1e-9
    return 20 * np.log10(rms)


def sound_span(audio: np.ndarray, rate: int = RATE) -> tuple[float, float]:
    """(first, last) second with sound: frames within SILENCE_DB of the loudest frame
    (and above -60 dBFS)."""
    db = frame_db(audio, rate)
    thr = max(db.max() - SILENCE_DB, -60.0)
    idx = np.flatnonzero(db > thr)
    if idx.size == 0:
        return 0.0, 0.0
    return float(idx[0] * FRAME_S), float((idx[-1] + 1) * FRAME_S)
