"""Small builders shared by the TUI tests: a synthetic dataset folder and recorded event files."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050


def tone(seconds: float, freq: float = 220.0, amp: float = 0.3, gap_at: float | None = None,
         gap: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = (amp * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    if gap_at is not None:
        a, b = int(gap_at * SR), int((gap_at + gap) * SR)
        x[a:b] = 0.0
    return x


def make_dataset(root: Path, n_per_source: int = 3) -> Path:
    """A dataset folder in `xtts-ft prep`'s format (dataset.json + wavs + CSVs), without whisper."""
    from engine.prep import dataset as ds

    root.mkdir(parents=True, exist_ok=True)
    (root / "wavs").mkdir(exist_ok=True)
    m = ds.empty_manifest("en", SR)
    m["settings"] = {"min_seconds": 2.0, "max_seconds": 11.0, "eval_fraction": 0.15, "normalize": True,
                     "target_lufs": -20.0}
    texts = ["the quick brown fox jumps over the lazy dog", "a journey of a thousand miles",
             "she sells sea shells by the shore", "rain fell softly on the quiet town",
             "every morning the baker opens the shop", "good voices need clean recordings"]
    k = 0
    for src_i, src in enumerate(("alpha_aaaa01", "beta_bbbb02")):
        m["sources"].append({"id": src, "name": f"{src}.wav", "path": f"/nowhere/{src}.wav", "duration": 30.0,
                             "sample_rate": 44100, "channels": 1,
                             "quality": {"lufs": -21.0 - 4 * src_i, "peak_dbfs": -1.0, "clipping_ratio": 0.0,
                                         "snr_db": 40.0 + 10 * src_i, "dc_offset": 0.0, "speech_seconds": 20.0}})
        t = 0.0
        for i in range(n_per_source):
            dur = 3.0 + i
            sid = f"{src}_{i:03d}"
            rel = f"wavs/{sid}.wav"
            sf.write(str(root / rel), tone(dur, 200 + 40 * i, gap_at=1.5), SR, subtype="PCM_16")
            flags = []
            if i == 0 and src_i == 1:
                flags = ["low_confidence"]
            m["segments"].append({"id": sid, "file": rel, "source": src, "speaker": "tester", "start": round(t, 3),
                                  "end": round(t + dur, 3), "duration": dur, "text": texts[k % len(texts)],
                                  "confidence": 0.9 - 0.3 * (flags == ["low_confidence"]), "flags": flags,
                                  "split": "eval" if i == 1 and src_i == 0 else "train", "excluded": False,
                                  "text_source": "asr"})
            t += dur + 0.25
            k += 1
    ds.save(root, m)
    return root


class EventLog:
    """Writes a training events.jsonl like the engine's worker does (same field names)."""

    def __init__(self, run: Path, t0: float = 1_700_000_000.0):
        self.run = run
        run.mkdir(parents=True, exist_ok=True)
        self.fh = open(run / "events.jsonl", "w", encoding="utf-8")
        self.ts = t0

    def emit(self, type_: str, dt: float = 0.5, **fields) -> None:
        self.ts += dt
        self.fh.write(json.dumps({"v": 1, "ts": round(self.ts, 3), "type": type_, **fields}) + "\n")

    def close(self) -> None:
        self.fh.close()


def write_config(run: Path, dataset: Path | str = "/nowhere/ds", epochs: int = 3, **kw) -> None:
    cfg = {"dataset": str(dataset), "model": "/nowhere/model", "run": str(run), "epochs": epochs, "batch_size": 2,
           "grad_accum": 1, "lr": 5e-6, **kw}
    (run / "run_config.json").write_text(json.dumps(cfg))


def record_run(run: Path, epochs: int = 3, spe: int = 10, alerts: bool = False, fail_at: int | None = None,
               gpu: bool = False, final: str | None = "finished", seed: int = 0) -> Path:
    """A plausible run: preflight, steps with falling loss, an eval + best model per epoch,
    checkpoints, resources; optional alerts (OOM, overtraining, plateau, low VRAM) and a failure."""
    rnd = random.Random(seed)
    log = EventLog(run)
    write_config(run, epochs=epochs)
    log.emit("state", state="preparing", resume=False, pid=999999)
    log.emit("log", tag="MODEL", level="info", msg="✓ All required files found for model: tiny", details=[])
    gpu_info = {"available": True, "name": "NVIDIA GeForce RTX 4070", "total_mb": 11264.0, "free_mb": 11000.0,
                "cuda_version": "12.1"} if gpu else {"available": False, "reason": "no CUDA GPU visible to torch"}
    log.emit("preflight", check="gpu", ok=True, gpu=gpu_info, device="cuda" if gpu else "cpu")
    if gpu:
        log.emit("log", tag="GPU", level="warning", msg="Your available VRAM is below the recommended 12GB threshold.",
                 details=[])
    log.emit("log", tag="DATA", level="warning", msg="Very small training dataset",
             details=["14 clips, 1.0 minutes; the guide recommends several minutes of clean speech"])
    log.emit("state", state="training", epochs=epochs, global_step=0)
    gs = 0
    best = math.inf
    evals = []
    for ep in range(epochs):
        log.emit("epoch_start", epoch=ep, epochs=epochs, steps_per_epoch=spe, epoch_step=0, global_step=gs)
        log.emit("log", tag="TRAIN", level="info", msg=f"> EPOCH: {ep + 1}/{epochs}", details=[])
        for st in range(1, spe + 1):
            gs += 1
            base = 6.8 * math.exp(-gs / (epochs * spe * 1.5)) + rnd.uniform(-0.05, 0.05)
            log.emit("step", dt=0.3, epoch=ep, epochs=epochs, step=st, steps_per_epoch=spe, global_step=gs,
                     opt_step=gs, loss_text_ce=0.05 + rnd.uniform(0, 0.005), loss_mel_ce=base - 0.05, loss=base,
                     lr=5e-6 * (0.5 + 0.5 * math.cos(math.pi * st / spe)), grad_norm=None, step_time=0.25,
                     loader_time=0.01, batch_size=2, grad_accum=1, optimizer_step=True)
            if st % 5 == 0:
                g = {"available": True, "name": "NVIDIA GeForce RTX 4070", "total_mb": 11264.0,
                     "used_mb": 9000.0 + 100 * (st % 3), "free_mb": 2000.0, "util_percent": 97,
                     "torch_allocated_mb": 8000.0, "torch_reserved_mb": 8600.0} if gpu else \
                    {"available": False, "reason": "no GPU"}
                log.emit("resources", gpu=g, ram={"total_mb": 32000.0, "available_mb": 20000.0,
                                                  "used_percent": 37.5, "process_rss_mb": 1400.0})
            if fail_at is not None and gs == fail_at:
                log.emit("alert", kind="oom", level="error", msg="CUDA out of memory. Tried to allocate 2.00 GiB",
                         advice=["Reduce the batch size (--batch-size)."], global_step=gs, batch_size=2,
                         grad_accum=1, backoff=False)
                log.emit("log", tag="ERROR", level="error", msg="CUDA out of memory at global step %d" % gs,
                         details=["Reduce the batch size (--batch-size)."])
                log.emit("state", state="failed", reason="CUDA out of memory at batch size 1", oom=True)
                log.close()
                return run
            if alerts and gs == spe + 3:
                log.emit("alert", kind="oom", level="error", msg="CUDA out of memory. Tried to allocate 2.00 GiB",
                         advice=["Reduce the batch size (--batch-size).",
                                 "Increase gradient accumulation (--grad-accum) to keep the effective batch size."],
                         global_step=gs, batch_size=4, grad_accum=1, backoff=True)
                log.emit("config_change", reason="oom_backoff", batch_size=2, grad_accum=2,
                         previous={"batch_size": 4, "grad_accum": 1}, global_step=gs)
        ev = 6.9 * math.exp(-gs / (epochs * spe * 1.2)) if not alerts else 6.0 + 0.05 * max(0, ep - 1)
        evals.append(ev)
        log.emit("eval", epoch=ep, global_step=gs, train_loss=base, avg_loss_text_ce=0.055, avg_loss_mel_ce=ev - 0.05,
                 avg_loss=ev, avg_loader_time=0.01)
        if ev < best:
            best = ev
            log.emit("best_model", path=str(run / "best_model.pth"), loss=ev, source="eval", global_step=gs, epoch=ep)
            log.emit("log", tag="TRAIN", level="info", msg=f"BEST MODEL = {run / 'best_model.pth'}", details=[])
        log.emit("epoch_end", epoch=ep, epochs=epochs, global_step=gs, train_loss=base)
        ck = run / "checkpoints" / f"checkpoint_{gs}.pth"
        log.emit("checkpoint", path=str(ck), global_step=gs, epoch=ep, reason="periodic", size_bytes=9_300_000,
                 seconds=0.2, removed=[])
        if alerts and ep == epochs - 1:
            log.emit("alert", kind="overtraining", level="warning",
                     msg="Eval loss has not improved for 3 evaluations while the training loss fell 4.0%",
                     stale_evals=3, train_fall=0.04, best=best, global_step=gs)
    if final == "finished":
        log.emit("sample", variant="base", path=str(run / "samples" / "final_base_1.wav"), text="Hello there.",
                 reference="ref.wav", tag="final")
        log.emit("sample", variant="finetuned", path=str(run / "samples" / "final_finetuned_1.wav"),
                 text="Hello there.", reference="ref.wav", tag="final")
        log.emit("state", state="finished", reason="completed all epochs", global_step=gs, best_loss=best)
    elif final == "stopped":
        log.emit("state", state="stopped", reason=f"stopped by request at global step {gs}")
    log.close()
    return run


async def until(pilot, pred, timeout=30.0, what="condition"):
    """Wait (in the app's loop) until `pred()` holds, then a little more for the screen to draw."""
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            await pilot.pause(0.3)
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sync(fn):
    """Run an async test with asyncio (no pytest async plugin is needed)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def add_cleaning(root: Path, denoise: bool = True) -> Path:
    """Give a make_dataset() folder prep's cleaning results (docs/prep.md "Cleaning checks"): every
    clip's speaker similarity, SNR (before/after denoise), speech seconds and pause measures; one
    clip of another speaker (left out), one noisy, one with music under the speech."""
    from engine.prep import dataset as ds

    m = json.loads((root / "dataset.json").read_text())
    m["settings"].update({"denoise": denoise, "speaker_check": True, "speaker_threshold": None})
    for i, s in enumerate(m["segments"]):
        s["speaker_similarity"] = round(0.97 - 0.01 * i, 3)
        s["snr_db"] = 38.0 + i
        if denoise:
            s["snr_db_before"] = 21.0 + i
        s["speech_seconds"] = round(s["duration"] - 0.4, 2)
        s["pauses"] = {"pauses": 1, "early_db": -41.0, "late_db": -55.0, "flatness": 0.42, "t60_s": None}
    by_id = {s["id"]: s for s in m["segments"]}
    other = by_id["beta_bbbb02_002"]
    other.update(speaker_similarity=0.61, flags=sorted(set(other["flags"]) | {"other_speaker"}), excluded=True,
                 exclude_reason="other_speaker")
    noisy = by_id["alpha_aaaa01_002"]
    noisy.update(snr_db=12.4, snr_db_before=6.0 if denoise else None, flags=sorted(set(noisy["flags"]) | {"noisy"}))
    music = by_id["beta_bbbb02_001"]
    music["pauses"] = {"pauses": 1, "early_db": -28.0, "late_db": -31.0, "flatness": 0.08, "t60_s": None}
    music["flags"] = sorted(set(music["flags"]) | {"music"})
    m["warnings"] = [{"tag": "AUDIO", "msg": "1 clip(s) sound like another speaker (similarity under 0.80); left out "
                      "of training, flag other_speaker", "code": "other_speaker"},
                     {"tag": "AUDIO", "msg": "beta_bbbb02.wav: music or sound effects under the speech in 1 clip(s)",
                      "code": "music"}]
    ds.save(root, m)
    return root


def extended_model(folder: Path, code: str = "tlh", cleaner: str = "basic") -> Path:
    """A model folder as `xtts-ft vocab extend --language CODE` leaves it, as far as the studio
    reads it: config.json with the extra language (the weights are placeholders)."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model": "xtts", "model_args": {"gpt_layers": 2}, "languages": ["en", "de", code],
           "xtts_ft": {"extra_languages": {code: cleaner}}}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "vocab.json").write_text(json.dumps({"model": {"vocab": {}}}))
    import zipfile

    for name in ("model.pth", "mel_stats.pth", "speakers_xtts.pth", "dvae.pth"):
        with zipfile.ZipFile(folder / name, "w") as zf:  # torch.save's layout, as far as check-model looks
            zf.writestr(f"{name[:-4]}/data.pkl", b"placeholder")
    return folder
