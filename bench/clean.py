"""Benchmark of prep's cleaning checks.

1. Precision and recall of the `other_speaker` flag on a two-voice set (espeak-ng: a main voice
   and a clearly different minority voice, transcripts beside the files so no ASR runs).
2. The time the cleaning adds to prep, as a ratio of prep without it, on the same set:
   speaker check only, and speaker check + --denoise.

    .venv/bin/python bench/clean.py [--main 40 --other 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import speechgen  # noqa: E402

from engine.prep import PrepOptions, run_prep  # noqa: E402
from engine.prep.report import Reporter  # noqa: E402


def run(src: Path, out: Path, **kw) -> tuple[float, dict]:
    t = time.perf_counter()
    result = run_prep(PrepOptions([str(src)], out, transcripts="files", **kw), Reporter(console=None))
    elapsed = time.perf_counter() - t
    assert result.ok, result.reason
    return elapsed, json.loads((out / "dataset.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--main", type=int, default=40)
    ap.add_argument("--other", type=int, default=10)
    args = ap.parse_args()
    from engine.audio import clean, vad

    vad.load_model()
    clean.speaker_encoder()       # model loads are not what is measured
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        truth = speechgen.two_voice_set(tmp / "src", args.main, args.other)
        t_plain, _ = run(tmp / "src", tmp / "plain", speaker_check=False)
        t_spk, m = run(tmp / "src", tmp / "spk")
        t_all, _ = run(tmp / "src", tmp / "all", denoise=True)
    names = {s["id"]: s["name"] for s in m["sources"]}
    flagged = {names[s["source"]] for s in m["segments"] if "other_speaker" in s["flags"]}
    other = {n for n, v in truth.items() if v == "other"}
    tp = len(flagged & other)
    precision = tp / len(flagged) if flagged else 1.0
    recall = tp / len(other) if other else 1.0
    sims = sorted((s["speaker_similarity"], names[s["source"]]) for s in m["segments"])
    print(f"two-voice set: {args.main} main + {args.other} other clips (espeak-ng en-us vs en+f4 pitch 90)")
    print(f"other_speaker flag: precision {precision:.2f}, recall {recall:.2f} ({tp} of {len(other)} found, "
          f"{len(flagged) - tp} false alarms)")
    main_sims = [s for s, n in sims if truth[n] == "main"]
    other_sims = [s for s, n in sims if truth[n] == "other"]
    print(f"similarity to the main voice: main {min(main_sims):.3f}-{max(main_sims):.3f}, "
          f"other {min(other_sims):.3f}-{max(other_sims):.3f}")
    print(f"prep without cleaning: {t_plain:.2f} s")
    print(f"time ratio with speaker check / without: {t_spk / t_plain:.2f}")
    print(f"time ratio with speaker check + --denoise / without: {t_all / t_plain:.2f}")


if __name__ == "__main__":
    main()
