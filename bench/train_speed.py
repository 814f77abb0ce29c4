"""Benchmark: step time of the engine's defaults (issue 9 options) against the bare coqui trainer.

1. Tiny model, real runs on CPU (same data, seed, batch, threads): `xtts-ft train --detach` (as
   bench/train_overhead.py: the worker alone, no foreground follower in the process) with its
   defaults (on a CPU: fp32, tanh GELU, fused AdamW, no activation checkpointing) and with
   `--grad-checkpointing on`, against bench/bare_coqui_train.py (coqui's recipe). Interleaved runs;
   ratio of the median step intervals (and of process CPU time per step).
2. Full-size XTTS v2 GPT (random weights), a few real training steps on CPU (batch 1, 3 s clip):
   coqui's settings (gelu_new, foreach AdamW) against the engine's (tanh GELU, fused AdamW), and
   the engine's with activation checkpointing; ratio of the median step times.
3. Loss effect of bf16 autocast (inexact): tiny GPT, 30 AdamW steps on fixed batches, fp32 vs
   CPU bf16 autocast, relative difference of the losses (the CUDA path is not measured here).

    .venv/bin/python bench/train_speed.py [--epochs 3] [--repeats 2] [--full-steps 3] [--skip-tiny]

Writes bench/results/train_speed.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))  # speechgen
sys.path.insert(0, str(ROOT / "tests" / "train"))

med = statistics.median
OUT: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    OUT.append(line)


def tiny_runs(a) -> None:
    """Section 1 on clips of one length (bench/train_overhead.py's equalize): XTTS's dataset draws a
    random clip per item and the engine keys each draw by (seed, epoch, item) while coqui draws from
    one stream, so on clips of unequal length the two sides would train on different audio (the
    1.34 x once reported here: `draw_lengths` shows why). Arms interleaved, order rotated."""
    import train_overhead as to
    from speech import make_dataset

    from engine.model.tiny import make_tiny_model

    with tempfile.TemporaryDirectory(prefix="xtts-ft-speed-") as td:
        tmp = Path(td)
        model = make_tiny_model(tmp / "tiny")
        dataset = make_dataset(tmp / "data")
        drawn = draw_lengths(dataset, seed=1, epochs=a.epochs, batch=2)
        if a.clip_seconds > 0:
            to.equalize(dataset, a.clip_seconds)
        base = argparse.Namespace(epochs=a.epochs, batch=2, workers=0, threads=a.threads, detach=True)
        arms = {"engine defaults": [], "engine + checkpointing": ["--grad-checkpointing", "on"], "bare coqui": None}
        names = list(arms)
        res = {n: ([], []) for n in names}
        for i in range(a.repeats):
            for n in names[i % 3:] + names[:i % 3]:
                w, c = (to.run_bare(model, dataset, tmp, i, base) if arms[n] is None
                        else to.run_engine(model, dataset, tmp, f"{n[7]}{i}", base, arms[n]))
                res[n][0].extend(w)
                res[n][1].extend(c)
        bw, bc = med(res["bare coqui"][0]), med(res["bare coqui"][1])
        clips = f"every clip {a.clip_seconds:g} s" if a.clip_seconds > 0 else "clips of unequal length (2-10 s)"
        say(f"1. tiny model, CPU, batch 2, {clips}, xtts-ft train --detach, {a.threads} thread(s), "
            f"{a.repeats} x {a.epochs} epochs each, interleaved (order rotated):")
        for name, (w, c) in res.items():
            say(f"   {name:24s} {med(w) * 1000:7.1f} ms/step wall ({med(w) / bw:.3f} x bare), "
                f"{med(c) * 1000:7.1f} ms CPU ({med(c) / bc:.3f} x bare), {len(w)} steps")
        (ew, ec), (cw, cc) = res["engine defaults"], res["engine + checkpointing"]
        say(f"   activation checkpointing cost (engine + checkpointing / engine defaults): {med(cw) / med(ew):.3f} x "
            f"wall, {med(cc) / med(ec):.3f} x CPU")
        say(f"   the draws on the unequal clips (before equalizing; seed 1, {a.epochs} epochs x 7 steps of 2): engine "
            f"{drawn['engine']:.2f} s, bare coqui {drawn['bare']:.2f} s of padded audio per step on average "
            f"({drawn['engine'] / drawn['bare']:.3f} x; medians {drawn['engine_median']:.2f} s and "
            f"{drawn['bare_median']:.2f} s, {drawn['engine_median'] / drawn['bare_median']:.3f} x): what the 1.34 x "
            "measured")


def draw_lengths(dataset: Path, seed: int, epochs: int, batch: int) -> dict:
    """Average padded audio seconds per step that each side draws, replaying XTTSDataset's draws
    (coqui-tts 0.28, trainer/dataset.py) on the clip lengths alone: the samples shuffled with
    `random.seed(seed)`; per item `random.choice(languages)` and `random.randint(0, n - 1)`, then
    the conditioning slice's two `randint`s. The bare trainer draws all items from that one stream
    (one loader for the whole fit); the engine re-seeds every item by item_seed(seed, epoch, item)
    (engine/train/distributed.py) and restores the stream after it."""
    import random

    import soundfile as sf

    from engine.train.distributed import item_seed

    rows = [r.split("|")[0] for r in (dataset / "metadata_train.csv").read_text().splitlines()[1:] if r.strip()]
    lengths = []
    for r in rows:
        info = sf.info(str(dataset / r))
        lengths.append(int(info.frames * 22050 / info.samplerate))
    lo, hi = 66150, 132300  # min/max conditioning length (engine/train/build.py)

    def draw(n_clips: int) -> int:
        random.choice(["en"])
        k = random.randint(0, n_clips - 1)
        length = order[k]
        size = random.randint(lo, hi)
        if length - size < 0:
            size = length // 2
        random.randint(0, length - size)
        return length

    random.seed(seed)
    order = list(lengths)
    random.shuffle(order)
    n, steps = len(order), -(-len(order) // batch)
    bare, eng = [], []
    for epoch in range(epochs):
        for s in range(steps):
            items = range(s * batch, min(n, (s + 1) * batch))
            bare.append(max(draw(n) for _ in items))
            state = random.getstate()
            got = []
            for item in items:
                random.seed(item_seed(seed, epoch, item))
                got.append(draw(n))
            random.setstate(state)
            eng.append(max(got))
    import statistics

    return {"engine": sum(eng) / len(eng) / 22050, "bare": sum(bare) / len(bare) / 22050,
            "engine_median": statistics.median(eng) / 22050, "bare_median": statistics.median(bare) / 22050}


def full_size(a) -> None:
    import gc

    import memory as bm
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    sets = {
        "coqui (gelu_new, foreach AdamW)": bm.OPTION_SETS["coqui (fp32, gelu_new, foreach AdamW)"],
        "engine (tanh GELU, fused AdamW)": bm.OPTION_SETS["fp32 + tanh GELU + fused AdamW"],
        "engine + checkpointing": bm.OPTION_SETS["fp32 + tanh + fused + checkpointing"],
    }
    times, cpus = {}, {}
    B, S = 1, 3.0
    for name, opts in sets.items():
        gpt, _ = bm.build_gpt(False, opts)
        for p in gpt.parameters():
            p.requires_grad_(True)
        fused = opts["optimizer"] == "adamw-fused"
        opt = torch.optim.AdamW(gpt.parameters(), lr=1e-5, fused=fused, foreach=None if fused else True)
        nt, nc = bm.text_tokens_for(S), bm.em.codes_for(S)
        torch.manual_seed(0)
        ti, ac = torch.randint(4, 6681, (B, nt + 2)), torch.randint(0, 1024, (B, nc + 2))
        cm = torch.randn(B, 1, 80, bm.em.COND_MEL_FRAMES)
        ts, cs = [], []
        for step in range(a.full_steps + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            te = gpt.text_embedding(ti) + gpt.text_pos_embedding(ti)
            me = gpt.mel_embedding(ac) + gpt.mel_pos_embedding(ac)
            cl = gpt.get_style_emb(cm).transpose(1, 2)
            tl, ml = gpt.get_logits(te, gpt.text_head, me, gpt.mel_head, prompt=cl,
                                    attn_mask_text=torch.ones(B, nt + 2, dtype=torch.bool),
                                    attn_mask_mel=torch.ones(B, nc + 2, dtype=torch.bool))
            loss = F.cross_entropy(tl, ti) + F.cross_entropy(ml, ac)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step:  # the first step allocates the optimizer states
                ts.append(time.perf_counter() - t0)
                cs.append(time.process_time() - c0)
        times[name], cpus[name] = med(ts), med(cs)
        print(f"   full-size {name}: {[round(t, 2) for t in ts]} s wall, {[round(c, 2) for c in cs]} s CPU",
              flush=True)
        del gpt, opt, loss, tl, ml
        gc.collect()
    ref, cref = times["coqui (gelu_new, foreach AdamW)"], cpus["coqui (gelu_new, foreach AdamW)"]
    say(f"2. full-size XTTS v2 GPT (441M, random weights), CPU, {a.threads} thread(s), batch {B} x {S:g} s "
        f"(T = {bm.em.sequence_length(S)}), median of {a.full_steps} steps after a first one:")
    for name, t in times.items():
        say(f"   {name:34s} {t:6.2f} s/step wall ({t / ref:.3f} x coqui), {cpus[name]:6.2f} s CPU "
            f"({cpus[name] / cref:.3f} x coqui)")
    say("   (CPU, batch 1: the AdamW step over 441M parameters is a larger share of a step than on a GPU at")
    say("   batch 8 x 11 s, so the coqui/engine ratio here is not the GPU one; the checkpointing cost is one")
    say("   more forward of the 30 blocks, which grows with batch and clip length.)")
    e, c = "engine (tanh GELU, fused AdamW)", "engine + checkpointing"
    say(f"   activation checkpointing cost (engine + checkpointing / engine): {times[c] / times[e]:.3f} x wall, "
        f"{cpus[c] / cpus[e]:.3f} x CPU")


def bf16_effect(a) -> None:
    import torch
    from test_memory import gpt_step, tiny_gpt

    torch.set_num_threads(a.threads)
    curves = {}
    for ac in (False, True):
        g = tiny_gpt()
        opt = torch.optim.AdamW(g.parameters(), lr=1e-3, fused=True)
        losses = []
        for s in range(30):
            opt.zero_grad()
            loss, _ = gpt_step(g, seed=1 + s % 4, autocast=ac)
            opt.step()
            losses.append(loss)
        curves[ac] = losses
    rel = [abs(b - f) / f for f, b in zip(curves[False], curves[True])]
    say("3. bf16 autocast (CPU) vs fp32, tiny GPT, 30 AdamW steps (lr 1e-3) on 4 fixed batches:")
    say(f"   fp32 loss {curves[False][0]:.4f} -> {curves[False][-1]:.4f}; bf16 {curves[True][0]:.4f} -> "
        f"{curves[True][-1]:.4f}; relative difference: median {med(rel) * 100:.2f}%, max {max(rel) * 100:.2f}%")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1,
                    help="1 by default: wall times on a shared 2-core machine swing with 2 threads")
    ap.add_argument("--full-steps", type=int, default=3)
    ap.add_argument("--clip-seconds", type=float, default=3.0,
                    help="section 1: make every clip this long (0: keep the unequal espeak clips)")
    ap.add_argument("--skip-tiny", action="store_true")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--append", action="store_true", help="keep the sections of train_speed.txt not re-run")
    a = ap.parse_args()
    if not a.skip_tiny:
        tiny_runs(a)
    if not a.skip_full:
        full_size(a)
    bf16_effect(a)
    OUT[:0] = [f"# bench/train_speed.py — {time.strftime('%Y-%m-%d')}, {' '.join(sys.argv[1:]) or '(defaults)'}; "
               f"torch {__import__('torch').__version__}, {os.cpu_count()} CPU cores shared with other jobs, no GPU",
               "# CPU ratios are the steadier figures on a shared machine (wall time includes the neighbours).", ""]
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    path = ROOT / "bench" / "results" / "train_speed.txt"
    if a.append and path.exists():  # sections not re-run this time are kept from the file
        old, sec = {}, None
        for line in path.read_text().splitlines():
            if line[:2] in ("1.", "2.", "3."):
                sec = line[0]
            if sec:
                old.setdefault(sec, []).append(line)
        new, sec = {}, None
        for line in OUT[3:]:
            if line[:2] in ("1.", "2.", "3."):
                sec = line[0]
            new.setdefault(sec, []).append(line)
        merged = {**old, **{k: v for k, v in new.items() if k}}
        OUT[3:] = [x for k in sorted(merged) for x in merged[k]]
    path.write_text("\n".join(OUT) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
