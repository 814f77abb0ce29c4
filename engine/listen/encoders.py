"""The models that listen: speaker encoders (XTTS's own and resemblyzer) and DNSMOS.

Each loads once and embeds/scores 16 kHz mono float32 audio. Nothing here downloads anything:
the XTTS speaker encoder comes from the model folder's model.pth, resemblyzer and DNSMOS ship
their weights inside their wheels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPEAKER_ENCODER_PREFIX = "hifigan_decoder.speaker_encoder."
# HifiDecoder's defaults (coqui-tts TTS/tts/layers/xtts/hifigan_decoder.py)
_SE_AUDIO = {"fft_size": 512, "win_length": 400, "hop_length": 160, "sample_rate": 16000,
             "preemphasis": 0.97, "num_mels": 64}


class ListenError(Exception):
    """A problem the user can fix (missing file, unsupported language...): one clear line."""


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def centroid(embeddings: list[np.ndarray]) -> np.ndarray:
    m = np.mean([e / (np.linalg.norm(e) + 1e-12) for e in embeddings], axis=0)
    return m / (np.linalg.norm(m) + 1e-12)


class XttsSpeakerEncoder:
    """XTTS's speaker encoder (the ResNet inside the HiFiGAN decoder that conditions the voice).

    Either from a model folder (only its speaker-encoder weights are read, memory-mapped) or from a
    module already in memory (the model being trained: nothing is copied)."""

    name = "xtts"

    def __init__(self, module, device: str = "cpu"):
        self.module = module
        self.device = device

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, device: str = "cpu") -> XttsSpeakerEncoder:
        import torch

        path = Path(model_dir) / "model.pth"
        if not path.is_file():
            raise ListenError(f"{model_dir}: no model.pth (the XTTS speaker encoder lives in it)")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            raise ListenError(f"{path}: could not be read as a plain weights file ({type(exc).__name__})") from exc
        state = data.get("model", data) if isinstance(data, dict) else {}
        sub = {}
        for k, v in state.items():
            key = k.removeprefix("xtts.")
            if key.startswith(SPEAKER_ENCODER_PREFIX):
                sub[key[len(SPEAKER_ENCODER_PREFIX):]] = v
        if not sub:
            raise ListenError(f"{path} has no XTTS speaker encoder (no '{SPEAKER_ENCODER_PREFIX}*' weights): "
                              "use the base model folder or an export made by xtts-ft")
        from TTS.encoder.models.resnet import ResNetSpeakerEncoder

        module = ResNetSpeakerEncoder(input_dim=64, proj_dim=512, log_input=True, use_torch_spec=True,
                                      audio_config=dict(_SE_AUDIO))
        missing, _unexpected = module.load_state_dict(sub, strict=False)
        missing = [k for k in missing if not k.startswith("torch_spec.")]
        if missing:
            raise ListenError(f"{path}: the speaker encoder weights are incomplete (missing {missing[:3]})")
        module.eval().to(device)
        return cls(module, device)

    def embed(self, audio16k: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32))[None].to(self.device)
        dev = next(self.module.parameters()).device
        with torch.inference_mode():
            e = self.module.forward(x.to(dev), l2_norm=True)
        return e.float().cpu().numpy().ravel()


class ResemblyzerEncoder:
    """resemblyzer's GE2E encoder (independent of XTTS; weights inside the wheel)."""

    name = "resemblyzer"

    def __init__(self, device: str = "cpu"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # webrtcvad imports pkg_resources
            from resemblyzer import VoiceEncoder
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):   # it prints "Loaded the voice encoder..."
            self.enc = VoiceEncoder(device)

    def embed(self, audio16k: np.ndarray) -> np.ndarray:
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(np.asarray(audio16k, dtype=np.float32), source_sr=16000)
        if len(wav) < 1600:   # its VAD left almost nothing: embed the raw audio
            wav = np.asarray(audio16k, dtype=np.float32)
        return self.enc.embed_utterance(wav)


def mos_available() -> tuple[bool, str]:
    try:
        from speechmos import dnsmos  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return False, f"DNSMOS unavailable ({type(exc).__name__}: {exc})"
    return True, ""


def dnsmos(audio16k: np.ndarray) -> dict:
    """DNSMOS P.835 (ovrl/sig/bak) and P.808 of 16 kHz audio; `mos` is the overall score."""
    from speechmos import dnsmos as _d

    x = np.asarray(audio16k, dtype=np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 1.0:
        x = x / peak
    r = _d.run(x, sr=16000)
    return {"mos": round(float(r["ovrl_mos"]), 3), "sig": round(float(r["sig_mos"]), 3),
            "bak": round(float(r["bak_mos"]), 3), "p808": round(float(r["p808_mos"]), 3)}
