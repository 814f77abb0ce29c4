"""Cleaning checks on prepared clips: other speakers, background noise (and --denoise), music or
effects under the speech, and reverb. Every measure and threshold is documented in docs/prep.md.

All measures work on the 10 ms power envelope and the VAD regions prep already has, plus the
clip audio; nothing here needs a network or a model download (resemblyzer ships its weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FRAME = 0.01
SILERO_PAD = 0.03            # silero pads every region by 30 ms: the real offset is earlier

# thresholds
NOISY_SNR_DB = 15.0          # a clip under this SNR (after --denoise, if used) is flagged `noisy`
MUSIC_LATE_DB = -35.0        # sound still this loud 0.3 s after speech stops ...
MUSIC_DECAY_DB = 6.0         # ... and not decaying by this much ...
MUSIC_FLATNESS = 0.2         # ... and tonal (spectral flatness below this): music or effects
REVERB_EARLY_DB = -30.0      # energy right after speech stops (30-80 ms), relative to speech
REVERB_DECAY_DB = 6.0        # that then decays by at least this much by 300-400 ms
REVERB_T60_S = 0.3           # estimated decay time from which a clip is flagged `reverb`
MIN_PAUSE_S = 0.45           # pauses shorter than this are not used for music/reverb measures


def _levels_db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(power.astype(np.float64) + 1e-12)


def speech_mask(n: int, regions, offset: float = 0.0) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for a, b in regions:
        i0 = max(0, int((a - offset) / FRAME))
        i1 = min(n, int(math.ceil((b - offset) / FRAME)))
        if i1 > i0:
            mask[i0:i1] = True
    return mask


def snr_db(power: np.ndarray, mask: np.ndarray, floor_power: float | None = None) -> float | None:
    """Speech-to-noise ratio: (speech power - noise power) / noise power, noise = median of the
    non-speech frames at least 50 ms from speech (or `floor_power` when there are too few)."""
    if not mask.any():
        return None
    away = ~(np.convolve(mask.astype(float), np.ones(11), mode="same") > 0)    # ±50 ms from speech
    noise_frames = power[away]
    if len(noise_frames) >= 20:
        noise = float(np.median(noise_frames))
    elif floor_power is not None:
        noise = floor_power
    else:
        return None
    speech = float(power[mask].mean())
    if noise <= 1e-12:
        return 60.0
    return float(min(60.0, 10 * math.log10(max(speech - noise, 1e-12) / noise)))


def noise_floor(power: np.ndarray, mask: np.ndarray) -> float | None:
    away = ~(np.convolve(mask.astype(float), np.ones(11), mode="same") > 0)
    frames = power[away]
    return float(np.median(frames)) if len(frames) >= 20 else None


@dataclass
class PauseMeasures:
    pauses: int                 # pauses long enough to measure
    early_db: float | None      # level 30-80 ms after speech stops, relative to speech (median)
    late_db: float | None       # level 300-400 ms after speech stops (median)
    flatness: float | None      # spectral flatness of the late parts of the pauses (1 = noise, 0 = tones)
    t60_s: float | None         # decay time estimated from early -> late

    def music(self) -> bool:
        return (self.late_db is not None and self.late_db >= MUSIC_LATE_DB
                and self.early_db - self.late_db < MUSIC_DECAY_DB
                and self.flatness is not None and self.flatness < MUSIC_FLATNESS)

    def reverb(self) -> bool:
        return self.t60_s is not None and self.t60_s >= REVERB_T60_S

    def as_dict(self) -> dict:
        return {k: (None if v is None else round(float(v), 4 if k == "flatness" else 2))
                for k, v in self.__dict__.items()}


def pause_measures(power: np.ndarray, regions, audio: np.ndarray | None, rate: int, offset: float = 0.0) -> PauseMeasures:
    """What happens in the pauses after speech: music/effects persist, reverb decays, silence is silent."""
    levels = _levels_db(power)
    n = len(levels)
    mask = speech_mask(n, regions, offset)
    if not mask.any():
        return PauseMeasures(0, None, None, None, None)
    speech = float(np.median(levels[mask]))
    end_of_audio = offset + n * FRAME
    early, late, tails = [], [], []
    for k, (a, b) in enumerate(regions):
        off = b - SILERO_PAD
        nxt = regions[k + 1][0] if k + 1 < len(regions) else end_of_audio
        if nxt - off < MIN_PAUSE_S or off < offset:
            continue
        i = int((off - offset) / FRAME)
        if i + 40 > n:
            continue
        early.append(float(levels[i + 3 : i + 8].mean()) - speech)
        late.append(float(levels[i + 30 : i + 40].mean()) - speech)
        if audio is not None:
            s0, s1 = int((off + 0.3 - offset) * rate), int((nxt - 0.05 - offset) * rate)
            if s1 > s0:
                tails.append(audio[s0:s1])
    if not early:
        return PauseMeasures(0, None, None, None, None)
    e, lt = float(np.median(early)), float(np.median(late))
    flat = spectral_flatness(np.concatenate(tails), rate) if tails else None
    t60 = None
    if e >= REVERB_EARLY_DB and e - lt >= REVERB_DECAY_DB:
        t60 = 60.0 * 0.27 / (e - lt)       # the two windows are 0.27 s apart
    return PauseMeasures(len(early), e, lt, flat, t60)


def spectral_flatness(x: np.ndarray, rate: int) -> float | None:
    """Geometric over arithmetic mean of the power spectrum, 80 Hz-8 kHz: ~1 for noise, ~0 for tones."""
    from scipy.signal import welch

    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2048 or float(np.mean(x**2)) <= 1e-10:
        return None
    f, p = welch(x, rate, nperseg=2048)
    p = p[(f > 80) & (f < min(8000, rate / 2 - 1))] + 1e-20
    return float(np.exp(np.mean(np.log(p))) / np.mean(p))


def denoise(audio: np.ndarray, rate: int, noise_sample: np.ndarray | None) -> np.ndarray:
    """noisereduce's spectral gating: stationary with a noise profile from the recording's own
    pauses when there is one, non-stationary otherwise."""
    import noisereduce

    kwargs = dict(y=audio.astype(np.float32), sr=rate, prop_decrease=1.0)
    if noise_sample is not None and len(noise_sample) >= rate // 2:
        out = noisereduce.reduce_noise(y_noise=noise_sample.astype(np.float32), stationary=True, **kwargs)
    else:
        out = noisereduce.reduce_noise(stationary=False, **kwargs)
    return np.asarray(out, dtype=np.float32)


def frame_power(audio: np.ndarray, rate: int) -> np.ndarray:
    spf = rate * FRAME
    n = int(len(audio) // spf)
    if n == 0:
        return np.zeros(0, np.float32)
    edges = np.round(np.arange(n + 1) * spf).astype(np.int64)
    cs = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    return ((cs[edges[1:]] - cs[edges[:-1]]) / np.diff(edges)).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# other speakers

SPEAKER_MAD_K = 4.0          # a clip is "far" when its similarity is this many robust SDs under the median
SPEAKER_THRESHOLD_MIN = 0.70 # ... but clips above the ceiling are never flagged, and those under the floor always
SPEAKER_THRESHOLD_MAX = 0.88
SPEAKER_MIN_SPEECH_S = 2.0   # clips with less speech than this are never flagged (embedding too unsure)

_encoder = None


def _resemblyzer():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # webrtcvad's pkg_resources notice on import
        import resemblyzer
    return resemblyzer


def speaker_encoder():
    global _encoder
    if _encoder is None:
        import torch

        _encoder = _resemblyzer().VoiceEncoder(device="cuda" if torch.cuda.is_available() else "cpu", verbose=False)
    return _encoder


def _voice_wav(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resemblyzer's preprocessing (16 kHz, volume up to -30 dBFS, long silences shortened); a
    clip that is nearly all silence keeps its silence rather than vanishing."""
    rz = _resemblyzer()
    from resemblyzer import audio as rza

    audio = np.asarray(audio, np.float32)
    if rate != rza.sampling_rate:
        audio = rz.preprocess_wav(audio, source_sr=rate)      # its resampling (librosa), then the rest
        rate = rza.sampling_rate
    else:
        audio = rza.normalize_volume(audio, rza.audio_norm_target_dBFS, increase_only=True)
        trimmed = rza.trim_long_silences(audio)
        if len(trimmed) >= 1600:         # under 0.1 s of voiced audio left: embed what there is
            audio = trimmed
    return audio.astype(np.float32)


def speaker_embeddings(audios: list[np.ndarray], rate: int, batch: int = 256) -> list[np.ndarray]:
    """Resemblyzer voice prints of many clips (what `embed_utterance` gives clip by clip): every
    clip's 1.6 s partials go through the LSTM together, a few hundred at a time."""
    import torch
    from resemblyzer import audio as rza

    enc = speaker_encoder()
    mels: list[np.ndarray] = []
    owner: list[int] = []
    for k, a in enumerate(audios):
        wav = _voice_wav(a, rate)
        wav_slices, mel_slices = enc.compute_partial_slices(len(wav), 1.3, 0.75)
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        mel = rza.wav_to_mel_spectrogram(wav)
        mels += [mel[s] for s in mel_slices]
        owner += [k] * len(mel_slices)
    if not mels:
        return []
    # the encoder is a small LSTM: one thread is as fast idle and ~10x faster on a busy machine
    # (measured: 8 clips in 1.8 s on 1 thread, 33 s on 2 threads with other jobs running)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        with torch.no_grad():
            parts = np.concatenate([
                enc(torch.from_numpy(np.stack(mels[i : i + batch])).to(enc.device)).cpu().numpy()
                for i in range(0, len(mels), batch)
            ])
    finally:
        torch.set_num_threads(threads)
    who = np.asarray(owner)
    out = []
    for k in range(len(audios)):
        raw = parts[who == k].mean(axis=0)
        out.append((raw / max(1e-9, float(np.linalg.norm(raw)))).astype(np.float32))
    return out


def speaker_embedding(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resemblyzer's voice print of one clip (16 kHz input skips a resampling)."""
    return speaker_embeddings([audio], rate)[0]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(1e-9, float(np.linalg.norm(v)))


def main_voice(embeddings: np.ndarray, reference: np.ndarray | None = None,
               threshold: float | None = None) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity of every clip to the main voice: (similarities, threshold used, centroid).

    The main voice is the reference's embedding when given, else the dominant cluster: the median
    embedding, refined once with the clips that are close to it.
    """
    e = np.stack([_unit(x) for x in embeddings])
    centroid = _unit(reference) if reference is not None else _unit(np.median(e, axis=0))
    sims = e @ centroid

    def rule(s: np.ndarray) -> float:
        if threshold is not None:
            return threshold
        med = float(np.median(s))
        mad = 1.4826 * float(np.median(np.abs(s - med)))
        return float(np.clip(med - SPEAKER_MAD_K * max(mad, 0.005), SPEAKER_THRESHOLD_MIN, SPEAKER_THRESHOLD_MAX))

    if reference is None:
        keep = sims >= rule(sims)
        if keep.sum() >= 2:
            centroid = _unit(e[keep].mean(axis=0))
            sims = e @ centroid
    return sims, rule(sims), centroid
