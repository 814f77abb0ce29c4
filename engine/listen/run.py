"""Synthesise the run's test with a model in memory and score it: one "listening test".

Used by the `listen` job (base model + checkpoints loaded one after the other into one Xtts) and
by training (`--listen-every`: the model being trained, already in memory, is switched to eval for
the test and back; nothing is copied). Results go to R/listen/<label>/: the test's wav files and
result.json (rows per voice and sentence, summaries), written atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from engine.listen.encoders import ListenError, XttsSpeakerEncoder
from engine.listen.score import Scorer, summarize
from engine.listen.testset import listen_dir

RESULT = "result.json"


class Listener:
    """Listening models + test set of one run, loaded once, then `test(xtts, label)` as often as needed."""

    def __init__(self, run: Path, testset: dict, xtts=None, model_dir: str | None = None, device: str = "cpu",
                 whisper_model: str = "auto", max_new_tokens: int | None = None, mos: bool = True):
        self.run = Path(run)
        self.testset = testset
        self.device = device
        self.max_new_tokens = max_new_tokens or None
        enc = None
        if xtts is not None:   # the speaker encoder of the model in memory (frozen: same in every checkpoint)
            enc = XttsSpeakerEncoder(xtts.hifigan_decoder.speaker_encoder, device)
        self.scorers: dict[str, Scorer] = {}
        self.refs: dict[str, object] = {}
        for v in testset["voices"]:
            lang = v["language"]
            if lang not in self.scorers:
                self.scorers[lang] = Scorer(lang, model_dir=model_dir if enc is None else None, device=device,
                                            whisper_model=whisper_model, xtts_encoder=enc, mos=mos,
                                            whisper_device="auto")
            missing = [r for r in v["references"] if not Path(r).is_file()]
            if missing:
                raise ListenError(f"reference clip missing: {missing[0]} (the test set in "
                                  f"{listen_dir(self.run)} names it)")
        self._enc_attached = enc is not None

    def describe(self) -> dict:
        return next(iter(self.scorers.values())).describe()

    def _refs(self, voice: dict):
        key = voice["name"] + "|" + voice["dataset"]
        if key not in self.refs:
            self.refs[key] = self.scorers[voice["language"]].references(voice["references"])
        return self.refs[key]

    def test(self, xtts, label: str, info: dict | None = None, on_item: Callable[[int, int, dict], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict:
        """Synthesise and score every test sentence with `xtts` (an Xtts in eval mode)."""
        from engine.model import synth

        t0 = time.time()
        out_dir = listen_dir(self.run) / label
        out_dir.mkdir(parents=True, exist_ok=True)
        total = sum(len(v["items"]) for v in self.testset["voices"])
        done = 0
        synth_s = score_s = 0.0
        voices = []
        for v in self.testset["voices"]:
            scorer = self.scorers[v["language"]]
            refs = self._refs(v)
            rows = []
            t1 = time.time()
            cond = synth.conditioning(xtts, v["references"])     # depends on the weights: once per test
            synth_s += time.time() - t1
            for k, item in enumerate(v["items"]):
                if should_stop and should_stop():
                    raise InterruptedError("stopped")
                wav = out_dir / f"{v['name']}_{item['id']}.wav"
                t1 = time.time()
                gen = synth.synthesize(xtts, item["text"], v["references"], v["language"], wav,
                                       max_new_tokens=self.max_new_tokens, seed=k, conditioning=cond)
                t2 = time.time()
                row = scorer.score(wav, item["text"], refs, real=item.get("real"), dataset_rate=v.get("rate_cps"),
                                   generation={"codes": gen["codes"], "stopped": gen["stopped"], "limit": gen["limit"]})
                t3 = time.time()
                synth_s += t2 - t1
                score_s += t3 - t2
                row.update(id=item["id"], kind=item["kind"], path=str(wav), synth_seconds=round(t2 - t1, 3))
                rows.append(row)
                done += 1
                if on_item:
                    on_item(done, total, row)
            voices.append({"name": v["name"], "language": v["language"], "summary": summarize(rows), "rows": rows})
        result = {"label": label, **(info or {}), "testset": self.testset.get("hash"), "voices": voices,
                  "summary": voices[0]["summary"], "seconds": round(time.time() - t0, 2),
                  "synth_seconds": round(synth_s, 2), "score_seconds": round(score_s, 2), "time": time.time(),
                  "models": self.describe()}
        from engine.atomic import write_json

        write_json(out_dir / RESULT, result)
        return result


def load_results(run: Path) -> list[dict]:
    """Every finished listening test of a run (base first, then by step)."""
    out = []
    d = listen_dir(run)
    if not d.is_dir():
        return out
    for p in d.glob(f"*/{RESULT}"):
        try:
            out.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    out.sort(key=lambda r: (r.get("label") != "base", r.get("step") or 0))
    return out


class in_eval_mode:
    """The training model in eval mode for a test (HiFiGAN on the GPT's device while it runs, every RNG
    restored after, so training continues exactly as it would have without the test)."""

    def __init__(self, trainer_model):
        self.m = trainer_model

    def __enter__(self):
        import random

        import numpy as np
        import torch

        self.was_training = self.m.training
        self.rng = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
                    torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        xtts = self.m.xtts
        self.dev = next(xtts.gpt.parameters()).device
        self.hifi_dev = next(xtts.hifigan_decoder.parameters()).device
        if self.hifi_dev != self.dev:
            xtts.hifigan_decoder.to(self.dev)
        self.m.eval()
        gpt = xtts.gpt
        if getattr(gpt, "gpt_inference", None) is None:
            gpt.init_gpt_for_inference(kv_cache=xtts.args.kv_cache, use_deepspeed=False)
        hf = getattr(gpt, "gpt", None)
        self.use_cache = getattr(getattr(hf, "config", None), "use_cache", None)
        if hf is not None:
            hf.config.use_cache = True
        return xtts

    def __exit__(self, *exc):
        import random

        import numpy as np
        import torch

        xtts = self.m.xtts
        hf = getattr(xtts.gpt, "gpt", None)
        if hf is not None and self.use_cache is not None:
            hf.config.use_cache = self.use_cache
        if self.hifi_dev != self.dev:
            xtts.hifigan_decoder.to(self.hifi_dev)
            if self.dev.type == "cuda":
                torch.cuda.empty_cache()
        if self.was_training:
            self.m.train()
        random.setstate(self.rng[0])
        np.random.set_state(self.rng[1])
        torch.set_rng_state(self.rng[2])
        if self.rng[3] is not None:
            torch.cuda.set_rng_state_all(self.rng[3])
        return False
