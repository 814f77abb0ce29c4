"""`xtts-ft prep` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rich.console import Console


def register(sub) -> None:
    p = sub.add_parser(
        "prep",
        help="prepare a training dataset from recordings",
        description="Turn recordings (mp3/wav/flac/ogg/m4a, any rate, mono or stereo) into an XTTS training set: "
        "quality report, loudness normalisation, VAD segmentation, whisper transcription, duplicate checks, "
        "train/eval split. Sources are never modified. Run it again with more sources to add to a dataset.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="audio files or folders (searched recursively)")
    p.add_argument("--out", required=True, type=Path, metavar="DATASET_DIR", help="dataset folder (created or added to)")
    p.add_argument("--language", default="en", help="language code of the speech (default: en)")
    p.add_argument("--speaker", default=None, help="speaker name written in the CSVs (default: the dataset folder's name)")
    p.add_argument("--speaker-from-folders", action="store_true",
                   help="name the speaker after each source's sub-folder (several speakers in one run)")
    p.add_argument("--whisper-model", default="auto", metavar="NAME|PATH",
                   help="faster-whisper model name, local model folder, or bundled-tiny.en (offline, English) "
                   "(default: large-v3 on CUDA, small on CPU; bundled-tiny.en when neither can be had)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where whisper runs (default: auto)")
    p.add_argument("--min-seconds", type=float, default=2.0, help="shortest clip (default: 2)")
    p.add_argument("--max-seconds", type=float, default=11.0, help="longest clip (default: 11)")
    p.add_argument("--eval-fraction", type=float, default=0.15, help="share of clips kept for evaluation (default: 0.15)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/eval split (default: 0)")
    p.add_argument("--no-normalize", action="store_true", help="keep each file's loudness instead of normalising")
    p.add_argument("--target-lufs", type=float, default=-20.0, help="loudness target of the clips (default: -20 LUFS)")
    p.add_argument("--transcripts", choices=["auto", "asr", "files"], default="auto",
                   help="auto: use a .txt/.lab beside a recording or a coqui/LJSpeech metadata file when there is one, "
                   "else whisper; asr: always whisper; files: only recordings that have a transcript")
    p.add_argument("--batch-size", type=int, default=None, help="whisper batch size (default: 8 on CUDA, 4 on CPU)")
    p.add_argument("--denoise", action="store_true",
                   help="remove steady background noise from the clips (noisereduce spectral gating); "
                   "the report shows SNR before and after")
    p.add_argument("--no-speaker-check", dest="speaker_check", action="store_false",
                   help="do not look for other speakers (by default clips far from the main voice are left out)")
    p.add_argument("--speaker-ref", default=None, metavar="WAV",
                   help="a clip of the target voice: clips far from it are flagged other_speaker")
    p.add_argument("--speaker-threshold", type=float, default=None, metavar="SIM",
                   help="cosine similarity under which a clip counts as another speaker "
                   "(default: adaptive, between 0.70 and 0.93; see docs/prep.md)")
    p.add_argument("--min-confidence", type=float, default=None, metavar="P",
                   help="leave out clips whose mean word probability is under P, or whose two whisper passes "
                   "disagree (flag doubtful; restore them in Review) (default: off; clips under 0.5 are kept, flagged "
                   "low_confidence)")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="base XTTS model folder: the content report measures its vocab.json's coverage of the text")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (messages go to stderr)")
    p.set_defaults(func=run)


def run(args) -> int:
    import signal

    from engine import locks
    from engine.events import EventWriter
    from engine.prep import PrepOptions, run_prep
    from engine.prep.builder import PrepError, check_out_folder
    from engine.prep.report import Reporter

    console = Console(stderr=True, highlight=False) if args.json else Console(highlight=False)
    out = args.out.expanduser()
    try:
        # before anything is written there: a read-only or foreign folder is one line, not a traceback
        check_out_folder(out)
    except PrepError as exc:
        return _refuse(args, str(exc))
    # SIGTERM (a stop from another program) ends prep the way Ctrl-C does: finished work is saved
    signal.signal(signal.SIGTERM, lambda signum, frame: signal.default_int_handler(signum, frame))
    try:
        lock = locks.hold(out, "xtts-ft prep")
        lock.__enter__()
    except locks.Busy as exc:
        return _refuse(args, str(exc))
    try:
        events = EventWriter(out / "prep_events.jsonl")
        reporter = Reporter(console=console, log_path=out / "prep.log", events=events)
        opts = PrepOptions(
            sources=args.sources, out=out, language=args.language, speaker=args.speaker,
            speaker_from_folders=args.speaker_from_folders, whisper_model=args.whisper_model, device=args.device,
            min_seconds=args.min_seconds, max_seconds=args.max_seconds, eval_fraction=args.eval_fraction,
            seed=args.seed, normalize=not args.no_normalize, target_lufs=args.target_lufs,
            transcripts=args.transcripts, batch_size=args.batch_size, denoise=args.denoise,
            speaker_check=args.speaker_check, speaker_ref=args.speaker_ref, speaker_threshold=args.speaker_threshold,
            min_confidence=args.min_confidence, model=args.model,
        )
        reporter.event("state", state="running", job="prep", pid=os.getpid())
        result = run_prep(opts, reporter, lock=False)
        if result.ok:
            reporter.event("state", state="finished", job="prep", interrupted=result.interrupted)
        else:
            reporter.error(result.reason)
            reporter.event("state", state="failed", job="prep", reason=result.reason)
        reporter.close()
        events.close()
    finally:
        lock.__exit__(None, None, None)
    if args.json:
        print(json.dumps({"ok": result.ok, "reason": result.reason, **result.summary}, indent=2, ensure_ascii=False))
    if not result.ok:
        if not args.json:
            print(f"xtts-ft prep: {result.reason}", file=sys.stderr)
        return 1
    return 130 if result.interrupted else 0


def _refuse(args, reason: str) -> int:
    """A job that could not start: one line on stderr (and the JSON answer with --json), exit 1."""
    if args.json:
        print(json.dumps({"ok": False, "reason": reason}, indent=2, ensure_ascii=False))
    print(f"xtts-ft prep: {reason}", file=sys.stderr)
    return 1
