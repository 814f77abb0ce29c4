"""Benchmark: the listening test's cost and calibration.

1. Calibration table: espeak-ng speech of known sentences (and damaged versions of it) scored by
   `engine.listen.score.Scorer` — CER, similarity (resemblyzer), MOS, tail seconds, flags.
2. Seconds per test sentence, split into synthesis (the model: here the tiny random model on this
   machine's CPU; a real 2 GB model on a GPU needs the device run) and scoring (whisper +
   speaker encoders + DNSMOS, the same for any model), over --repeats interleaved repeats (median, spread).
3. The share of a run's time at the default `--listen-every auto`: the budget rule keeps it at most
   10% on a GPU by construction; printed: how often `auto` listens for a measured test cost and a
   range of epoch lengths, and what a fixed `--listen-every N` would cost instead.

    .venv/bin/python bench/listen.py [--repeats 3] [--model DIR] [--whisper-model PATH]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import numpy as np
import soundfile as sf
import speechgen
from speechgen import RATE, SENTENCES, say


def calibration(scorer, d: Path) -> list[tuple]:
    from engine.listen import textmetrics as tm

    rng = np.random.default_rng(0)
    a = say(SENTENCES[0])
    pad = np.zeros(int(0.3 * RATE), np.float32)

    def w(name, x):
        p = d / f"{name}.wav"
        sf.write(p, np.concatenate([pad, x, pad]), RATE)
        return p

    ref = w("ref", np.concatenate([say(SENTENCES[3]), pad, say(SENTENCES[7])]))
    refs = scorer.references([ref])
    cases = [
        ("clean speech", w("clean", a), SENTENCES[0]),
        ("+ 2 s babble", w("tail", np.concatenate([a, speechgen.say(SENTENCES[5])[::-1][: 2 * RATE]])), SENTENCES[0]),
        ("+ 2 s noise", w("noise_tail", np.concatenate([a, (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32)])),
         SENTENCES[0]),
        ("said twice", w("twice", np.concatenate([a, pad, a])), SENTENCES[0]),
        ("cut in half", w("half", a[: len(a) // 2]), SENTENCES[0]),
        ("other voice", w("other", say(SENTENCES[0], voice="en+f4", pitch=90)), SENTENCES[0]),
        ("white noise", w("noise", (0.1 * rng.standard_normal(3 * RATE)).astype(np.float32)), SENTENCES[0]),
    ]
    rows = []
    for name, path, text in cases:
        r = scorer.score(path, text, refs)
        rows.append((name, r))
    clean = rows[0][1]
    other_cer = tm.error_rates(SENTENCES[1], clean["transcript"])["cer"]
    return rows, other_cer


def fmt(v, nd=3):
    return "   -  " if v is None else f"{v:.{nd}f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", help="XTTS model folder (default: a tiny random one, built here)")
    ap.add_argument("--whisper-model", default=None, help="default: the bundled tiny.en")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    from engine.audio.transcribe import BUNDLED
    from engine.listen.score import Scorer
    from engine.model import synth

    tmp = Path(tempfile.mkdtemp(prefix="bench_listen_"))
    model_dir = Path(args.model) if args.model else tmp / "tiny"
    if not args.model:
        subprocess.run([sys.executable, "-m", "engine", "tiny-model", str(model_dir)], check=True, cwd=ROOT,
                       capture_output=True)
    t0 = time.time()
    scorer = Scorer("en", model_dir=model_dir, whisper_model=args.whisper_model or BUNDLED, device=args.device)
    load_s = time.time() - t0
    print(f"listening models loaded in {load_s:.1f} s: {scorer.describe()}")

    # 1. calibration
    rows, other_cer = calibration(scorer, tmp)
    print("\n## Calibration (espeak-ng, reference = two other sentences of the same voice)")
    print(f"{'case':<14} {'CER':>6} {'sim':>6} {'MOS':>6} {'tail s':>7}  flags / transcript")
    for name, r in rows:
        print(f"{name:<14} {fmt(r['cer'])} {fmt(r['similarity'])} {fmt(r['mos'], 2):>6} {r['tail_s']:7.2f}  "
              f"{','.join(r['flags']) or '-'}  | {r['transcript'][:50]!r}")
    print(f"clean speech scored against another sentence: CER {other_cer:.3f}")

    # 2. seconds per sentence
    model = synth.load_model(model_dir, device=args.device)
    ref = tmp / "ref.wav"
    sentences = [SENTENCES[k] for k in (2, 4, 6)]
    synth_t, score_t, audio_s = [], [], []
    refs = scorer.references([ref])
    for rep in range(args.repeats):
        cond = synth.conditioning(model, [ref])
        for k, text in enumerate(sentences):
            out = tmp / f"s{rep}_{k}.wav"
            t1 = time.time()
            g = synth.synthesize(model, text, [ref], "en", out, max_new_tokens=60, seed=k, conditioning=cond)
            t2 = time.time()
            scorer.score(out, text, refs, generation=g)
            t3 = time.time()
            synth_t.append(t2 - t1)
            score_t.append(t3 - t2)
            audio_s.append(g["seconds"])

    def med(xs):
        return f"{statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f})"

    print(f"\n## Seconds per test sentence ({args.device}, {len(synth_t)} sentences, {args.repeats} repeats)")
    print(f"synthesis ({model_dir.name}, {statistics.median(audio_s):.1f} s of audio): {med(synth_t)}")
    print(f"scoring (whisper {Path(scorer.ear.model_name).name}, resemblyzer, DNSMOS): {med(score_t)}")
    per = statistics.median(synth_t) + statistics.median(score_t)
    print(f"total per sentence: {per:.2f} s; a default test (~7 sentences): {7 * per:.0f} s")

    # 3. share of a run
    print("\n## Share of a run's time")
    print("auto: listens at an epoch end when listening time (incl. the next test) <= 10% of the run so far;")
    print("the base test at the start counts too. Simulated with test cost T and epoch length E (10 epochs):")
    print(f"{'T s':>5} {'E s':>6}  {'auto: tests':>11} {'share':>6}   {'every 1: share':>14}")
    from engine.listen.training import BUDGET

    for T in (15.0, 7 * per):
        for E in (30.0, 60.0, 180.0, 600.0):
            spent, elapsed, tests, last = T, T, 0, T
            for ep in range(10):
                elapsed += E
                if spent + last <= BUDGET * (elapsed + last):
                    spent += T
                    elapsed += T
                    tests += 1
            share_every1 = (T * 11) / (10 * E + 11 * T)
            print(f"{T:5.0f} {E:6.0f}  {tests:11d} {spent / elapsed:6.1%}   {share_every1:14.1%}")
    print("(T = 15 s: ~7 sentences at ~2 s each, a GPU estimate for the real model; not measured here.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
