"""A/B samples: sentences spoken by the base model and by the run's weights (`sample` events)."""

from __future__ import annotations

import gc
import traceback
from pathlib import Path

from engine.train import checkpoints as ck


def after_training(engine) -> None:
    """The A/B samples (base and finetuned) at the end of a run; a failure is a warning, never fatal."""
    if not engine.cfg["ab_samples"] or not engine.dist.is_main:
        return
    try:
        write_samples(engine, which="both", tag="final")
    except Exception as exc:  # noqa: BLE001 - samples are a bonus, never fail the run for them
        traceback.print_exc()
        engine.rep.warn(f"A/B samples not written: {type(exc).__name__}: {exc}", tag="TRAIN")

def write_samples(engine, which: str, tag: str) -> None:
    from engine.model import synth

    ref = synth.pick_reference(engine.cfg["dataset"])
    if ref is None:
        engine.rep.warn("no reference clip for the A/B samples", tag="TRAIN")
        return
    sentences = synth.sample_sentences(engine.cfg["language"], engine.cfg["dataset"], int(engine.cfg["ab_samples"]))
    out = engine.run / "samples"
    cap = int(engine.cfg["max_new_tokens"]) or (60 if engine.model_info.tiny else None)
    weights = engine.best_path if engine.best_path.exists() else None
    if engine.cfg.get("best_by") == "listen" and (engine.run / "best_listen.pth").exists():
        weights = engine.run / "best_listen.pth"      # --best-by listen: the listening test's pick
    if weights is None:
        last = ck.list_checkpoints(engine.run)
        weights = last[-1][1] if last else None
    engine.rep.info(f"Writing A/B samples into {out} (reference {Path(ref).name})", tag="TRAIN")
    model = synth.load_model(engine.cfg["model"], device=engine.device)
    variants = ["base", "finetuned"] if which == "both" else ["finetuned"]
    for variant in variants:
        if variant == "finetuned":
            if weights is None:
                break
            synth.load_run_weights(model, weights)
        for i, text in enumerate(sentences, 1):
            path = out / f"{tag}_{variant}_{i}.wav"
            info = synth.synthesize(model, text, ref, engine.cfg["language"], path, max_new_tokens=cap)
            engine.emit("sample", variant=variant, path=str(path), text=text, reference=str(ref),
                        weights=str(weights) if variant == "finetuned" else str(engine.cfg["model"]),
                        seconds=info["seconds"], tag=tag)
    del model
    gc.collect()
