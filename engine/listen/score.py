"""Score one utterance: what whisper heard against the sentence, the voice against the reference
clips, predicted quality, speaking rate and hallucination flags.

Flags (names as they appear in JSON and the studio):
  tail        sound continues more than TAIL_S seconds after the last transcribed word (babble,
              noise or breathing after the sentence ended)
  loop        the transcript repeats n-grams the sentence has once, repeats a phrase back to back,
              or is far longer than the sentence (textmetrics.looped)
  truncated   the sentence's final words are missing (textmetrics.truncated)
  token_limit generation stopped at the audio-token limit without emitting the stop token (only
              known for audio the test synthesised itself)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.listen import textmetrics as tm
from engine.listen.audio import RATE, load16k, sound_span
from engine.listen.encoders import ListenError, ResemblyzerEncoder, XttsSpeakerEncoder, centroid, cosine

TAIL_S = 1.0
FLAGS = ("tail", "loop", "truncated", "token_limit")


@dataclass
class References:
    paths: list[str]
    emb: dict[str, np.ndarray] = field(default_factory=dict)   # encoder name -> centroid


class Scorer:
    """Holds the listening models (loaded once). `xtts_encoder` may be a module already in memory."""

    def __init__(self, language: str, model_dir: str | Path | None = None, whisper_model: str = "auto",
                 device: str = "cpu", xtts_encoder: XttsSpeakerEncoder | None = None, mos: bool = True,
                 whisper_device: str = "auto"):
        from engine.listen.asr import Ear
        from engine.listen.encoders import mos_available

        self.language = language
        self._real: dict[str, dict] = {}
        t0 = time.time()
        self.encoders: list = []
        if xtts_encoder is None and model_dir is not None:
            xtts_encoder = XttsSpeakerEncoder.from_model_dir(model_dir, device=device)
        if xtts_encoder is not None:
            self.encoders.append(xtts_encoder)
        self.encoders.append(ResemblyzerEncoder(device))
        self.ear = Ear(language, whisper_model, whisper_device)
        self.mos_ok, self.mos_note = mos_available() if mos else (False, "DNSMOS turned off")
        self.notes = [n for n in (self.ear.note, self.mos_note) if n]
        self.load_seconds = round(time.time() - t0, 2)

    def describe(self) -> dict:
        return {"whisper": self.ear.model_name, "encoders": [e.name for e in self.encoders],
                "mos": "dnsmos" if self.mos_ok else None, "notes": self.notes}

    def references(self, paths: list[str | Path]) -> References:
        if not paths:
            raise ListenError("no speaker reference clip")
        audio = []
        for p in paths:
            if not Path(p).is_file():
                raise ListenError(f"reference clip missing: {p}")
            try:
                audio.append(load16k(p))
            except ValueError as exc:
                raise ListenError(str(exc)) from exc
        refs = References([str(p) for p in paths])
        for enc in self.encoders:
            refs.emb[enc.name] = centroid([enc.embed(a) for a in audio])
        return refs

    def embed_all(self, audio16k: np.ndarray) -> dict[str, np.ndarray]:
        return {enc.name: enc.embed(audio16k) for enc in self.encoders}

    def score(self, audio: str | Path | np.ndarray, text: str, refs: References, real: str | Path | None = None,
              dataset_rate: float | None = None, generation: dict | None = None) -> dict:
        """`audio`: a path or 16 kHz float32 mono; `real`: the real recording of the same sentence;
        `dataset_rate`: the dataset's characters per second; `generation`: {"codes", "stopped",
        "limit"} from the synthesis (token-limit flag)."""
        t0 = time.time()
        y = load16k(audio) if not isinstance(audio, np.ndarray) else np.asarray(audio, dtype=np.float32)
        seconds = len(y) / RATE
        heard = self.ear.hear(y)
        er = tm.error_rates(text, heard.text, self.language)
        emb = self.embed_all(y) if seconds >= 0.1 else {}
        sim = {name: round(cosine(e, refs.emb[name]), 4) for name, e in emb.items()}
        sim_real = None
        if real is not None and Path(real).is_file() and emb:
            key = str(real)
            if key not in self._real:
                self._real[key] = self.embed_all(load16k(real))
            r_emb = self._real[key]
            sim_real = {name: round(cosine(emb[name], r_emb[name]), 4) for name in emb}
        mos = None
        if self.mos_ok and seconds >= 0.5:
            from engine.listen.encoders import dnsmos

            mos = dnsmos(y)
        s0, s1 = sound_span(y)
        # the sentence ends at the last heard word that belongs to it: words whisper made of babble
        # after the sentence are part of the tail
        tu = tm.timed_units(heard.words, self.language)
        k = tm.last_matched_unit(text, [u for _, _, u in tu], self.language)
        last = tu[k][1] if k is not None else heard.last_end
        tail = round(max(0.0, s1 - last), 3) if last is not None else round(s1 - s0, 3)
        speech_s = (last - heard.first_start) if heard.words and last > heard.first_start else (s1 - s0)
        chars = len(er["reference_norm"].replace(" ", ""))
        rate = chars / speech_s if speech_s > 0.05 else None
        loop, loop_info = tm.looped(text, heard.text, self.language)
        trunc, missing = tm.truncated(text, heard.text, self.language)
        flags = []
        if tail > TAIL_S:
            flags.append("tail")
        if loop:
            flags.append("loop")
        if trunc:
            flags.append("truncated")
        if generation and generation.get("stopped") is False:
            flags.append("token_limit")
        return {
            "text": text, "transcript": heard.text, "cer": er["cer"], "wer": er["wer"],
            "similarity": sim.get("resemblyzer"), "similarity_xtts": sim.get("xtts"),
            "similarity_real": (sim_real or {}).get("resemblyzer"), "similarity_real_xtts": (sim_real or {}).get("xtts"),
            "mos": mos["mos"] if mos else None, "mos_detail": mos,
            "seconds": round(seconds, 3), "speech_seconds": round(float(speech_s), 3),
            "rate_cps": round(rate, 2) if rate else None,
            "rate_ratio": round(rate / dataset_rate, 3) if rate and dataset_rate else None,
            "tail_s": tail, "missing_final_words": missing, **loop_info,
            "generation": generation, "flags": flags, "score_seconds": round(time.time() - t0, 3),
        }


def summarize(rows: list[dict]) -> dict:
    """Means over sentences and the worst sentence, for one checkpoint."""
    def mean(key):
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        return round(float(np.mean(vals)), 4) if vals else None

    out = {k: mean(k) for k in ("cer", "wer", "similarity", "similarity_xtts", "similarity_real",
                                 "similarity_real_xtts", "mos", "rate_ratio", "tail_s")}
    out["sentences"] = len(rows)
    out["flags"] = {f: sum(1 for r in rows if f in r.get("flags", [])) for f in FLAGS}
    out["flagged"] = sum(1 for r in rows if r.get("flags"))
    if rows:
        worst = max(range(len(rows)), key=lambda i: (rows[i].get("cer") or 0.0))
        out["worst"] = {"index": worst, "text": rows[worst].get("text"), "cer": rows[worst].get("cer"),
                        "transcript": rows[worst].get("transcript"), "flags": rows[worst].get("flags")}
        sims = [(r.get("similarity"), i) for i, r in enumerate(rows) if r.get("similarity") is not None]
        out["worst_similarity"] = round(min(sims)[0], 4) if sims else None
    return out
