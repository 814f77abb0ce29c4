"""Speech from a model folder (base, exported, or base + a run's weights) for listening tests."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

SENTENCES = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "Please call Stella and ask her to bring these things with her from the store.",
        "A journey of a thousand miles begins with a single step.",
    ],
}


def load_model(model_dir: str | Path, device: str = "cpu"):
    """Xtts exactly as coqui-tts loads it (config.json + Xtts.load_checkpoint)."""
    import torch
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    from engine.model.languages import install_for_model

    threads = torch.get_num_threads()
    d = Path(model_dir)
    install_for_model(d)         # language codes added by `xtts-ft vocab extend` (no-op otherwise)
    config = XttsConfig()
    config.load_json(str(d / "config.json"))
    model = Xtts(config)
    model.load_checkpoint(config, checkpoint_dir=str(d), eval=True)
    # the model's own generation cap (config.json xtts_ft.max_new_tokens; the tiny random model declares
    # one because random weights never emit the stop token, STACK.md)
    model._xf_max_new_tokens = json.loads((d / "config.json").read_text()).get("xtts_ft", {}).get("max_new_tokens")
    torch.set_num_threads(threads)
    if device == "cuda":
        model.cuda()
    return model


def load_run_weights(model, weights: str | Path) -> None:
    """Put a run checkpoint's GPT weights into a loaded Xtts (frozen parts are already the base's)."""
    from engine.model import weights as w

    state = w.state_dict(w.load(weights))        # refused here if the file is unsafe, before the model is touched
    w.load_gpt(model.gpt, state, str(weights))
    model.gpt.init_gpt_for_inference(kv_cache=model.args.kv_cache, use_deepspeed=False)
    model.gpt.eval()


def conditioning(model, speaker_wav: str | Path | list):
    """(GPT conditioning latents, speaker embedding) of the reference clip(s): compute once, pass to
    `synthesize(..., conditioning=)` for every sentence with the same weights."""
    import torch

    refs = [str(p) for p in speaker_wav] if isinstance(speaker_wav, list) else [str(speaker_wav)]
    with torch.inference_mode():
        return model.get_conditioning_latents(audio_path=refs, gpt_cond_len=6, max_ref_length=10)


def synthesize(model, text: str, speaker_wav: str | Path | list, language: str, out: str | Path,
               max_new_tokens: int | None = None, seed: int = 0, conditioning=None) -> dict:
    import soundfile as sf
    import torch

    torch.manual_seed(seed)
    refs = [str(p) for p in speaker_wav] if isinstance(speaker_wav, list) else [str(speaker_wav)]
    kwargs = {}
    if not max_new_tokens:
        max_new_tokens = getattr(model, "_xf_max_new_tokens", None)
    if max_new_tokens:
        kwargs["max_new_tokens"] = int(max_new_tokens)
    t0 = time.time()
    codes: list = []   # the audio tokens generate() returned: did it stop, or hit the token limit?
    gpt = model.gpt
    generate = gpt.generate

    def _generate(*args, **kw):
        out = generate(*args, **kw)
        codes.append(out[0] if isinstance(out, tuple) else out)
        return out

    gpt.generate = _generate
    try:
        with torch.inference_mode():
            if conditioning is None:
                latent, spk = model.get_conditioning_latents(audio_path=refs, gpt_cond_len=6, max_ref_length=10)
            else:
                latent, spk = conditioning
            res = model.inference(text, language, latent, spk, temperature=0.75, **kwargs)
    finally:
        del gpt.generate
    wav = res["wav"]
    wav = wav.cpu().numpy() if hasattr(wav, "cpu") else wav
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from engine.atomic import atomic_path

    with atomic_path(out, suffix=".wav") as tmp:
        sf.write(str(tmp), wav, 24000, subtype="PCM_16", format="WAV")
    stop = int(gpt.stop_audio_token)
    n_codes = sum(int((c != stop).sum()) for c in codes)
    stopped = all(bool((c == stop).any()) for c in codes) if codes else None
    limit = int(max_new_tokens) if max_new_tokens else int(getattr(gpt, "max_gen_mel_tokens", 0) or 0) or None
    return {"path": str(out), "seconds": round(len(wav) / 24000, 3), "elapsed": round(time.time() - t0, 3),
            "codes": n_codes, "stopped": stopped, "limit": limit}


def _clips(dataset: str | Path) -> list[tuple[Path, str, float]]:
    import soundfile as sf

    d = Path(dataset)
    out = []
    for name in ("metadata_train.csv", "metadata_eval.csv"):
        p = d / name
        if not p.is_file():
            continue
        with open(p, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="|"):
                wav = d / row.get("audio_file", "")
                try:
                    dur = sf.info(str(wav)).duration
                except Exception:  # noqa: BLE001
                    continue
                out.append((wav, row.get("text", ""), dur))
    return out


def pick_references(dataset: str | Path, n: int = 3, lo: float = 6.0, hi: float = 10.0) -> list[Path]:
    """The voice's best reference clips: 6-10 s, preferring ones near 8 s (and the prep's quality
    scores when dataset.json carries them); falls back to the longest clips."""
    clips = _clips(dataset)
    scores: dict = {}
    meta = Path(dataset) / "dataset.json"
    if meta.is_file():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            for c in info.get("clips", []) if isinstance(info.get("clips"), list) else []:
                if isinstance(c, dict) and "file" in c and isinstance(c.get("quality"), (int, float)):
                    scores[Path(c["file"]).name] = float(c["quality"])
        except (OSError, ValueError):
            pass
    inside = [c for c in clips if lo <= c[2] <= hi]
    if inside:
        inside.sort(key=lambda c: (-scores.get(c[0].name, 0.0), abs(c[2] - 8.0)))
        return [c[0] for c in inside[:n]]
    clips.sort(key=lambda c: -c[2])
    return [c[0] for c in clips[:n]]


def pick_reference(dataset: str | Path) -> Path | None:
    refs = pick_references(dataset, n=1)
    return refs[0] if refs else None


def sample_sentences(language: str, dataset: str | Path, n: int) -> list[str]:
    if language in SENTENCES:
        return SENTENCES[language][:n]
    texts = [t for _, t, _ in _clips(dataset) if t]
    return texts[:n]
