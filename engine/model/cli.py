"""Sub-commands over model folders: check-model, tiny-model, export, synth (`xtts-ft vocab`: vocab_cli)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from engine.cli import UserError


def register(sub) -> None:
    p = sub.add_parser("check-model", help="check an XTTS model folder (the six files, size, languages)")
    p.add_argument("dir", help="model folder, e.g. models/xtts/xttsv2_2.0.3")
    p.add_argument("--deep", action="store_true", help="also open every .pth file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_check_model)

    p = sub.add_parser("tiny-model", help="write a tiny random-weight XTTS model (tests, demos)")
    p.add_argument("dir", help="folder to write (the six files of a real XTTS v2 model folder)")
    p.add_argument("--force", action="store_true", help="overwrite an existing folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.set_defaults(func=cmd_tiny_model)

    p = sub.add_parser("export", help="export a run as a compact model folder (AllTalk / coqui-tts)")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", help="the model folder to write, e.g. models/xtts/myvoice (needed unless --status/--stop)")
    p.add_argument("--checkpoint", default="best",
                   help="best | best-listen (the listening test's pick) | last | PATH; with --best-by listen, "
                        "best = best-listen")
    p.add_argument("--speaker-name", default=None,
                   help="name of the finetuned voice in the export's speakers_xtts.pth (default: the dataset's "
                   "speaker), usable as `speaker=NAME` in coqui-tts and in AllTalk's voice list")
    p.add_argument("--no-speaker", action="store_true",
                   help="do not add the voice to speakers_xtts.pth (keep the base model's speakers only)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing folder; replace a base speaker of the same --speaker-name")
    p.add_argument("--detach", action="store_true",
                   help="run as a detached job and return at once (RUN/export_process.json, RUN/export_events.jsonl)")
    p.add_argument("--status", action="store_true", help="show the run's export job: running, or how it ended")
    p.add_argument("--stop", action="store_true", help="stop the export job running for RUN (nothing is written)")
    p.add_argument("--json", action="store_true", help="with --status: print the state as JSON")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("synth", help="speak a sentence with a model folder")
    p.add_argument("model_dir", help="model folder (the six files)")
    p.add_argument("--text", required=True, help="the sentence to speak")
    p.add_argument("--speaker-wav", required=True, nargs="+", help="reference clip(s) of the voice")
    p.add_argument("--out", required=True, help="WAV file to write")
    p.add_argument("--language", default="en", help="language code of the text")
    p.add_argument("--weights", help="a run's best_model.pth / checkpoint to lay over the model's GPT")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap on generated audio tokens (default: the model's own, config.json xtts_ft.max_new_tokens)")
    p.set_defaults(func=cmd_synth)


# ------------------------------------------------------------------ check-model / tiny-model
def cmd_check_model(args) -> int:
    from engine.model.files import ModelFilesError, check_model, describe

    try:
        info = check_model(args.dir, deep=args.deep)
    except ModelFilesError as exc:
        if args.json:
            print(json.dumps({"ok": False, "folder": str(exc.folder), "problems": exc.problems}))
            return 2
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps({"ok": True, **info.as_dict()}))
        return 0
    print(f"[MODEL] ✓ All required files found for model: {info.name}")
    for line in describe(info):
        print(line)
    return 0


def cmd_tiny_model(args) -> int:
    from engine.model.tiny import make_tiny_model

    out = Path(args.dir)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UserError(f"{out} exists and is not empty (use --force)")
    t0 = time.time()
    make_tiny_model(out, seed=args.seed)
    print(f"[MODEL] tiny random-weight XTTS model written to {out} in {time.time() - t0:.1f} s")
    return cmd_check_model(argparse.Namespace(dir=str(out), deep=False, json=False))


# ------------------------------------------------------------------ export / synth
def cmd_export(args) -> int:
    """A job of the one protocol (engine/jobs/, kind `export`, in the run folder): `--detach` starts it
    detached; SIGINT stops it with nothing written (the export is built in a temporary folder)."""
    import os
    import sys

    from engine.jobs import Job, states
    from engine.jobs import process as jp
    from engine.model import export
    from engine.model.export import ExportError, export_run, files, summary_lines
    from engine.model.files import ModelFilesError

    run = Path(args.run)
    if not (run / "run_config.json").is_file():
        raise UserError(f"{run} is not a training run (no run_config.json)")
    if args.status:
        s = export.job_summary(run)
        print(json.dumps(s, default=str) if args.json else export.format_status(run, s))
        return 0
    if args.stop:
        try:
            pid = export.stop(run)
        except ProcessLookupError as exc:
            raise UserError(str(exc)) from None
        print(f"stop sent to the export job (pid {pid}): it ends with nothing written to its folder")
        return 0
    if not args.out:
        raise UserError("give --out DIR, the model folder to write (e.g. models/xtts/myvoice)")
    f = files(run)
    if f.alive() and jp.pid_of(f.process) != os.getpid():
        raise UserError(f"an export of {run} is already running (pid {jp.pid_of(f.process)})")
    if args.detach:
        argv = [str(run), "--out", str(args.out), "--checkpoint", args.checkpoint,
                *(["--speaker-name", args.speaker_name] if args.speaker_name is not None else []),
                *(["--no-speaker"] if args.no_speaker else []), *(["--force"] if args.force else [])]
        offset = f.events.stat().st_size if f.events.is_file() else 0
        cmd = jp.engine_cmd("export", *argv)
        proc = jp.spawn_detached(cmd, f.log)
        jp.write_process(f.process, proc.pid, "export", cmd=cmd, events=f.events, stop_signal="SIGINT", offset=offset)
        print(f"export started as a detached job (pid {proc.pid}); it ends in {f.events}; follow it with "
              f"`xtts-ft export {run} --status`, stop it with `xtts-ft export {run} --stop`")
        return 0
    job = Job("export", run)
    job.start(cmd=sys.argv, out=str(args.out), checkpoint=args.checkpoint)
    try:
        res = export_run(args.run, args.out, checkpoint=args.checkpoint, force=args.force,
                         speaker_name=args.speaker_name, add_speaker=not args.no_speaker)
        lines = summary_lines(res, add_speaker=not args.no_speaker)
        job.end("finished", summary=lines, **res)
    except (ExportError, ModelFilesError) as exc:
        job.end("failed", reason=str(exc))
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        job.end("stopped", reason=f"stopped: nothing written to {args.out}")
        print(f"export stopped: nothing written to {args.out}")
        return states.EXIT_CODES["stopped"]
    except BaseException as exc:
        job.end("failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        job.close()
    print("\n".join(lines))
    return 0


def cmd_synth(args) -> int:
    from engine.model import synth
    from engine.model.files import ModelFilesError, check_model

    try:
        check_model(args.model_dir)
    except ModelFilesError as exc:
        raise UserError(str(exc)) from None
    for w in args.speaker_wav:
        if not Path(w).is_file():
            raise UserError(f"--speaker-wav: file not found: {w}")
    model = synth.load_model(args.model_dir)
    if args.weights:
        try:
            synth.load_run_weights(model, args.weights)
        except ValueError as exc:  # not weights-only (refused unrun), or GPT weights that do not fit
            raise UserError(f"--weights: {exc}") from None
    res = synth.synthesize(model, args.text, args.speaker_wav if len(args.speaker_wav) > 1 else args.speaker_wav[0],
                           args.language, args.out, max_new_tokens=args.max_new_tokens)
    print(f"[INFO] wrote {res['path']} ({res['seconds']:.2f} s of audio in {res['elapsed']:.1f} s)")
    return 0
