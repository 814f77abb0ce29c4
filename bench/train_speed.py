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
sys.path.insert(0, str(ROOT / "tests" / "train"))

med = statistics.median
OUT: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    OUT.append(line)


def tiny_runs(a) -> None:
    import train_overhead as to
    from speech import make_dataset

    from engine.model.tiny import make_tiny_model

    with tempfile.TemporaryDirectory(prefix="xtts-ft-speed-") as td:
        tmp = Path(td)
        model = make_tiny_model(tmp / "tiny")
        dataset = make_dataset(tmp / "data")
        base = argparse.Namespace(epochs=a.epochs, batch=2, workers=0, threads=a.threads, detach=True)
        res = {"engine defaults": ([], []), "engine + checkpointing": ([], []), "bare coqui": ([], [])}
        orig = to.run_engine
        for i in range(a.repeats):
            e, ec = orig(model, dataset, tmp, f"d{i}", base)
            res["engine defaults"][0].extend(e)
            res["engine defaults"][1].extend(ec)
            to_run = _engine_with(["--grad-checkpointing", "on"])
            e, ec = to_run(model, dataset, tmp, f"c{i}", base)
            res["engine + checkpointing"][0].extend(e)
            res["engine + checkpointing"][1].extend(ec)
            b, bc = to.run_bare(model, dataset, tmp, i, base)
            res["bare coqui"][0].extend(b)
            res["bare coqui"][1].extend(bc)
        bw, bc = med(res["bare coqui"][0]), med(res["bare coqui"][1])
        say(f"1. tiny model, CPU, batch 2, xtts-ft train --detach, {a.threads} thread(s), {a.repeats} x {a.epochs} epochs each:")
        for name, (w, c) in res.items():
            say(f"   {name:24s} {med(w) * 1000:7.1f} ms/step wall ({med(w) / bw:.3f} x bare), "
                f"{med(c) * 1000:7.1f} ms CPU ({med(c) / bc:.3f} x bare), {len(w)} steps")
        (ew, ec), (cw, cc) = res["engine defaults"], res["engine + checkpointing"]
        say(f"   activation checkpointing cost (engine + checkpointing / engine defaults): {med(cw) / med(ew):.3f} x "
            f"wall, {med(cc) / med(ec):.3f} x CPU")


def _engine_with(extra: list[str]):
    import os
    import subprocess

    def run(model, dataset, tmp, i, a):
        from engine.events import read_events

        run_dir = tmp / f"engine{i}"
        env = dict(os.environ)
        env.pop("XTTS_FT_FAULT", None)
        subprocess.run([sys.executable, "-m", "engine", "train", "--dataset", str(dataset), "--model", str(model),
                        "--run", str(run_dir), "--epochs", str(a.epochs), "--batch-size", str(a.batch),
                        "--workers", str(a.workers), "--threads", str(a.threads), "--seed", "1",
                        "--ab-samples", "0", "--save-every-steps", "1000", "--scheduler", "none", *extra,
                        *(["--detach"] if a.detach else [])],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        from engine.train import process

        while a.detach and process.process_alive(run_dir):  # detached: wait quietly for the worker
            time.sleep(2)
        evs, _ = read_events(run_dir / "events.jsonl")
        state = [e for e in evs if e["type"] == "state"][-1]
        assert state["state"] == "finished", state
        import train_overhead as to

        stamps = [(e["epoch"], e["ts"]) for e in evs if e["type"] == "step"]
        cpu = [e["cpu_time"] for e in evs if e["type"] == "step" and e.get("cpu_time") is not None]
        return to.intervals(stamps), cpu

    return run


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
