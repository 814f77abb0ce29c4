"""`xtts-ft listen`: score an audio file, or run the listening test over a run's checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "listen", help="listening test: score checkpoints of a run (or one audio file) by ear-like metrics",
        description="Listen to a run's checkpoints (synthesise a fixed test, score intelligibility, speaker "
                    "similarity, quality and hallucinations), or score one audio file with --score.",
    )
    p.add_argument("run", nargs="?", help="training run folder")
    p.add_argument("--checkpoints", default="best,last",
                   help="best, last, best-listen, all, or checkpoint files, comma-separated")
    p.add_argument("--no-base", action="store_true", help="do not score the base model (the baseline row)")
    p.add_argument("--foreground", action="store_true", help="run in this process (default: a detached job)")
    p.add_argument("--stop", action="store_true", help="stop the listening job running for RUN")
    p.add_argument("--status", action="store_true", help="show the listening job's state and results")
    p.add_argument("--score", metavar="WAV", help="score this audio file instead of a run")
    p.add_argument("--text", help="with --score: the sentence the audio should say")
    p.add_argument("--reference", action="append", metavar="REF.wav",
                   help="with --score: a speaker reference clip (repeat for several)")
    p.add_argument("--real", metavar="WAV", help="with --score: a real recording of the same sentence")
    p.add_argument("--language", default=None, help="language of the text (default: en, or the run's)")
    p.add_argument("--model", help="model folder whose XTTS speaker encoder is used (default: the run's base "
                                   "model; with --score the XTTS similarity is left out without it)")
    p.add_argument("--whisper-model", default="auto", help="whisper name or local folder (as in prep)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda")
    p.add_argument("--max-new-tokens", type=int, default=0, help="cap generated audio tokens (0 = model's limit)")
    p.add_argument("--sentences", type=int, default=0,
                   help="cap the test at N sentences per voice (0 = eval clips + all fixed sentences); "
                        "only used when the run has no test set yet")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_listen)


def _device(name: str) -> str:
    if name != "auto":
        return name
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001
        return "cpu"


def cmd_listen(args) -> int:
    from engine.cli import UserError
    from engine.listen.encoders import ListenError

    try:
        if args.score:
            return _score(args)
        if not args.run:
            raise UserError("give a RUN folder, or --score WAV --text TEXT --reference REF.wav")
        from engine.listen import job

        if args.stop:
            pid = job.stop(Path(args.run))
            print(f"stop sent to the listening job (pid {pid})")
            return 0
        if args.status:
            s = job.summary(Path(args.run))
            print(json.dumps(s, indent=2) if args.json else job.format_summary(s))
            return 0
        opts = job.options_from_args(args)
        if args.foreground:
            return job.run_foreground(Path(args.run), opts, echo=sys.stdout if args.json else None)
        pid = job.spawn(Path(args.run), opts)
        print(f"listening job started (pid {pid}); follow {job.files(Path(args.run)).events} or "
              f"`xtts-ft listen {args.run} --status`; stop it with `xtts-ft listen {args.run} --stop`")
        return 0
    except (ListenError, ValueError, FileNotFoundError, ProcessLookupError) as exc:
        raise UserError(str(exc)) from exc


def _score(args) -> int:
    from engine.cli import UserError
    from engine.listen.score import Scorer

    if not args.text:
        raise UserError("--score needs --text TEXT (what the audio should say)")
    if not args.reference:
        raise UserError("--score needs --reference REF.wav (a clip of the target voice)")
    for p in [args.score, *args.reference]:
        if not Path(p).is_file():
            raise UserError(f"file not found: {p}")
    language = args.language or "en"
    dev = _device(args.device)
    scorer = Scorer(language, model_dir=args.model, whisper_model=args.whisper_model, device=dev,
                    whisper_device=args.device)
    refs = scorer.references(args.reference)
    row = scorer.score(args.score, args.text, refs, real=args.real)
    row["models"] = scorer.describe()
    if args.json:
        print(json.dumps(row, indent=2, ensure_ascii=False))
        return 0
    print(format_row(row))
    return 0


def _f(v, fmt="{:.3f}"):
    return "n/a" if v is None else fmt.format(v)


def format_row(row: dict) -> str:
    m = row.get("models", {})
    lines = [
        f"heard      : {row['transcript']!r}",
        f"CER / WER  : {_f(row['cer'])} / {_f(row['wer'])}",
        f"similarity : {_f(row['similarity'])} (resemblyzer)   {_f(row['similarity_xtts'])} (XTTS encoder)",
        f"MOS        : {_f(row['mos'], '{:.2f}')} (DNSMOS overall)",
        f"rate       : {_f(row['rate_cps'], '{:.1f}')} chars/s",
        f"tail       : {row['tail_s']:.2f} s after the last word",
        f"flags      : {', '.join(row['flags']) or 'none'}",
    ]
    if m:
        lines.append(f"models     : whisper {m.get('whisper')}; encoders {', '.join(m.get('encoders', []))}")
        lines += [f"note       : {n}" for n in m.get("notes", [])]
    return "\n".join(lines)
