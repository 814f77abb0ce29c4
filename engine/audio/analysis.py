"""Quality measures of a decoded source, computed block by block (streaming).

Frame energies are kept at 10 ms resolution (100 values per second, ~1.4 MB per hour): they
serve the SNR estimate and the search for the quietest point when a long stretch of speech has
to be split.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

FRAME_SECONDS = 0.01
CLIP_LEVEL = 0.99          # |sample| at or above this counts as clipped (after resampling)
SNR_CAP_DB = 60.0

# thresholds for warnings (documented in docs/prep.md)
LOUDNESS_SPREAD_LU = 6.0
CLIPPING_RATIO = 0.001          # 0.1 % of samples
LOW_SNR_DB = 20.0
VERY_LOW_SNR_DB = 10.0
DC_OFFSET = 0.01
LOW_SAMPLE_RATE = 16000


@dataclass
class SignalStats:
    duration: float
    peak: float
    peak_dbfs: float | None
    clipped_samples: int
    clipping_ratio: float
    dc_offset: float
    rms_dbfs: float | None

    def as_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def db(x: float) -> float | None:
    return None if x <= 0 else 20.0 * math.log10(x)


def scan(path: Path, block_seconds: float = 10.0) -> tuple[SignalStats, np.ndarray]:
    """Stats of a mono working file plus its 10 ms frame power (mean square) array."""
    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        spf = sr * FRAME_SECONDS            # 220.5 samples at 22050 Hz: frame edges are rounded
        block = int(sr * block_seconds)
        n = 0
        peak = 0.0
        clipped = 0
        total = 0.0
        sq = 0.0
        powers: list[np.ndarray] = []
        carry = np.zeros(0, dtype=np.float64)
        carry_start = 0      # sample index of carry[0] in the file
        k_next = 0           # next frame to emit
        for chunk in f.blocks(blocksize=block, dtype="float32", always_2d=False):
            if chunk.ndim > 1:
                chunk = chunk.mean(axis=1)
            n += len(chunk)
            a = np.abs(chunk)
            if len(a):
                peak = max(peak, float(a.max()))
            clipped += int((a >= CLIP_LEVEL).sum())
            total += float(chunk.sum(dtype=np.float64))
            squares = np.concatenate([carry, np.square(chunk, dtype=np.float64)])
            sq += float(squares[len(carry):].sum())
            end = carry_start + len(squares)
            k_last = int(math.floor(end / spf)) - 1          # last frame that ends inside the data
            while k_last >= k_next and int(round((k_last + 1) * spf)) > end:
                k_last -= 1
            if k_last >= k_next:
                ks = np.arange(k_next, k_last + 2)
                edges = np.round(ks * spf).astype(np.int64) - carry_start
                cs = np.concatenate([[0.0], np.cumsum(squares)])
                powers.append((cs[edges[1:]] - cs[edges[:-1]]) / np.maximum(1, np.diff(edges)))
                cut = int(edges[-1])
                carry, carry_start, k_next = squares[cut:], carry_start + cut, k_last + 1
            else:
                carry = squares
        if len(carry):
            powers.append(np.array([carry.mean()]))
    power = np.concatenate(powers).astype(np.float32) if powers else np.zeros(0, np.float32)
    rms = math.sqrt(sq / n) if n else 0.0
    stats = SignalStats(
        duration=n / sr if sr else 0.0,
        peak=peak,
        peak_dbfs=db(peak),
        clipped_samples=clipped,
        clipping_ratio=clipped / n if n else 0.0,
        dc_offset=total / n if n else 0.0,
        rms_dbfs=db(rms),
    )
    return stats, power


def speech_mask(n_frames: int, regions: list[tuple[float, float]]) -> np.ndarray:
    mask = np.zeros(n_frames, dtype=bool)
    for start, end in regions:
        a = max(0, int(start / FRAME_SECONDS))
        b = min(n_frames, int(math.ceil(end / FRAME_SECONDS)))
        mask[a:b] = True
    return mask


def estimate_snr(power: np.ndarray, regions: list[tuple[float, float]]) -> dict:
    """SNR from VAD: mean speech power against the noise floor of the non-speech frames."""
    if len(power) == 0 or not regions:
        return {"snr_db": None, "noise_floor_dbfs": None, "speech_dbfs": None}
    mask = speech_mask(len(power), regions)
    speech = power[mask]
    noise = power[~mask]
    if len(noise) < 10:   # continuous speech: the quietest frames are the best guess for the floor
        noise = np.sort(power)[: max(1, len(power) // 10)]
    speech_p = float(speech.mean()) if len(speech) else 0.0
    noise_p = float(np.median(noise)) if len(noise) else 0.0
    speech_db = 10 * math.log10(speech_p) if speech_p > 0 else None
    noise_db = 10 * math.log10(noise_p) if noise_p > 1e-12 else None
    if speech_db is None:
        snr = None
    elif noise_db is None:
        snr = SNR_CAP_DB
    else:
        snr = min(SNR_CAP_DB, speech_db - noise_db)
    return {
        "snr_db": None if snr is None else round(snr, 1),
        "noise_floor_dbfs": None if noise_db is None else round(noise_db, 1),
        "speech_dbfs": None if speech_db is None else round(speech_db, 1),
    }
