"""Sub-commands: check-model, tiny-model, train, resume, stop, runs, status, export, synth."""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import time
from pathlib import Path

from engine.cli import UserError
from engine.train import config as tc


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

    p = sub.add_parser("train", help="finetune the XTTS GPT on a prepared dataset (runs in its own process)")
    p.add_argument("--dataset", help="dataset folder written by `xtts-ft prep` (metadata_train.csv ...)")
    p.add_argument("--model", help="base model folder (models/xtts/<name>/)")
    p.add_argument("--run", help="run folder to create (checkpoints, events, logs)")
    p.add_argument("--config", help="TOML file with the same option names (CLI flags win)")
    p.add_argument("--base-checkpoint", help="start from an earlier run (folder) or export (model.pth)")
    for opt in tc.OPTIONS:
        add_option(p, opt)
    p.add_argument("--detach", action="store_true", help="start the run and return at once")
    p.add_argument("--restart", action="store_true",
                   help="--run already holds a run: delete it (its checkpoints too) and start this one in its place")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a stopped run from its last checkpoint")
    p.add_argument("run", help="run folder")
    p.add_argument("--epochs", default=None, help="raise the planned number of epochs")
    p.add_argument("--detach", action="store_true", help="start the run and return at once")
    p.add_argument("--restart", action="store_true",
                   help="start the run again from step 0 with its saved settings (deletes its checkpoints); "
                   "the way out when it ended before its first checkpoint")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("stop", help="stop a run safely (finish the step, write a checkpoint)")
    p.add_argument("run", help="run folder")
    p.add_argument("--now", action="store_true", help="stop at once, without a checkpoint")
    p.add_argument("--wait", action="store_true", help="wait until the run has stopped")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("runs", help="list training runs and their state")
    p.add_argument("dir", nargs="?", default="runs", help="folder holding run folders (default: runs)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("status", help="state of one run (process checked)")
    p.add_argument("run", help="run folder")
    p.add_argument("--follow", action="store_true", help="follow the run until it ends")
    p.add_argument("--json", action="store_true", help="print the state as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("export", help="export a run as a compact model folder (AllTalk / coqui-tts)")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", required=True, help="e.g. models/xtts/myvoice")
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
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("synth", help="speak a sentence with a model folder")
    p.add_argument("model_dir", help="model folder (the six files)")
    p.add_argument("--text", required=True, help="the sentence to speak")
    p.add_argument("--speaker-wav", required=True, nargs="+", help="reference clip(s) of the voice")
    p.add_argument("--out", required=True, help="WAV file to write")
    p.add_argument("--language", default="en", help="language code of the text")
    p.add_argument("--weights", help="a run's best_model.pth / checkpoint to lay over the model's GPT")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap on generated audio tokens (tiny random models: 60)")
    p.set_defaults(func=cmd_synth)


def add_option(p, opt: tc.Option) -> None:
    """One `engine.train.config` option as a flag (value unset = None, so TOML and defaults apply)."""
    shown = "on" if opt.default is True else "off" if opt.default is False else (opt.default if opt.default != ""
                                                                              else "none")
    extra = f" [{opt.lo:g}..{opt.hi:g}]" if opt.lo is not None and not opt.choices else ""
    extra += "" if "default" in opt.help else f" (default: {shown})"
    if opt.type is bool:
        p.add_argument(opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction, default=None,
                       help=f"{opt.help}{extra}")
    else:
        metavar = "{" + ",".join(opt.choices) + "}" if opt.choices else {int: "N", float: "X"}.get(opt.type, "TEXT")
        p.add_argument(opt.flag, dest=opt.name, default=None, metavar=metavar,
                       help=f"{opt.help}{extra}")


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


# ------------------------------------------------------------------ train
def _dataset_language(dataset: Path) -> str | None:
    p = dataset / "dataset.json"
    if p.is_file():
        try:
            lang = json.loads(p.read_text(encoding="utf-8")).get("language")
            return str(lang) if lang else None
        except (OSError, ValueError):
            return None
    return None


def check_dataset(dataset: Path) -> tuple[int, int]:
    if not dataset.is_dir():
        raise UserError(f"--dataset: folder not found: {dataset}")
    counts = []
    for name, required in (("metadata_train.csv", True), ("metadata_eval.csv", False)):
        p = dataset / name
        if not p.is_file():
            if required:
                raise UserError(f"--dataset {dataset}: {name} is missing (run `xtts-ft prep` first)")
            counts.append(0)
            continue
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter="|")
            header = next(reader, None)
            if not header or "audio_file" not in header or "text" not in header:
                raise UserError(f"{p}: expected a header 'audio_file|text|speaker_name', got {header!r}")
            rows = [r for r in reader if r]
        missing = [r[0] for r in rows if not (dataset / r[0]).is_file()]
        if missing:
            raise UserError(f"{p}: {len(missing)} audio files are missing, e.g. {missing[0]}")
        counts.append(len(rows))
    if counts[0] == 0:
        raise UserError(f"--dataset {dataset}: metadata_train.csv has no clips")
    return counts[0], counts[1]


def resolve_base_checkpoint(p: str) -> str:
    path = Path(p)
    if path.is_dir():
        for cand in ("best_model.pth", "model.pth"):
            if (path / cand).is_file():
                return str((path / cand).resolve())
        from engine.train import checkpoints as ck

        ckpts = ck.list_checkpoints(path)
        if ckpts:
            return str(ckpts[-1][1].resolve())
        raise UserError(f"--base-checkpoint {p}: no best_model.pth, model.pth or checkpoints/ inside")
    if not path.is_file():
        raise UserError(f"--base-checkpoint: not found: {p}")
    return str(path.resolve())


def build_run_config(args) -> dict:
    from engine.model.files import ModelFilesError, check_model

    cli = {o.name: getattr(args, o.name, None) for o in tc.OPTIONS}
    cli.update(dataset=args.dataset, model=args.model, run=args.run, base_checkpoint=args.base_checkpoint)
    try:
        cfg = tc.resolve(cli, args.config)
    except tc.ConfigError as exc:
        raise UserError(str(exc)) from None
    dataset, model, run = Path(cfg["dataset"]), Path(cfg["model"]), Path(cfg["run"])
    try:
        info = check_model(model)
    except ModelFilesError as exc:
        raise UserError(str(exc)) from None
    n_train, n_eval = check_dataset(dataset)
    if not cfg["language"]:
        cfg["language"] = _dataset_language(dataset) or "en"
    if info.languages and cfg["language"] not in info.languages and cfg["language"].split("-")[0] not in [
            lang.split("-")[0] for lang in info.languages]:
        raise UserError(f"--language {cfg['language']}: the model supports {', '.join(info.languages)}")
    if cfg.get("base_checkpoint"):
        cfg["base_checkpoint"] = resolve_base_checkpoint(cfg["base_checkpoint"])
    restart = getattr(args, "restart", False)
    if run.exists() and (run / "run_config.json").exists() and not restart:
        from engine.train import checkpoints as ck

        if ck.list_checkpoints(run):
            raise UserError(f"--run {run} already holds a run: continue it with `xtts-ft resume {run}`, start it "
                            "again with --restart (deletes its checkpoints), or choose a new --run folder")
        raise UserError(f"--run {run} already holds a run that ended before its first checkpoint: start it again "
                        f"with --restart (or `xtts-ft resume {run} --restart` for its old settings), "
                        "or choose a new --run folder")
    if run.exists() and not (run / "run_config.json").exists() and any(
            p.name != locks_name() for p in run.iterdir()):
        raise UserError(f"--run {run} exists and is not empty (and holds no run: --restart will not clear it)")
    cfg.update(dataset=str(dataset.resolve()), model=str(model.resolve()), run=str(run.resolve()))
    from engine.train import distributed as dist

    try:
        dist.resolve_layout(cfg)  # gpus, nproc_per_node, world_size, backend
    except dist.GpuSpecError as exc:
        raise UserError(str(exc)) from None
    cfg["effective_batch"] = tc.effective_batch(cfg)
    cfg["train_clips"], cfg["eval_clips"] = n_train, n_eval
    cfg["steps_per_epoch"] = tc.steps_per_epoch(dist.per_rank_items(n_train, cfg), cfg["batch_size"])
    cfg["created"] = time.strftime("%Y-%m-%d %H:%M:%S")
    from engine import __version__

    cfg["xtts_ft_version"] = __version__
    return cfg


def _start(run: Path, detach: bool, resume: bool) -> int:
    from engine.train import process
    from engine.train.follow import Follower

    pid = process.spawn_worker(run, resume=resume)
    print(f"[INFO] training process started (pid {pid}); events: {run / 'events.jsonl'}, log: {run / 'train.log'}")
    if detach:
        print(f"[INFO] follow it with `xtts-ft status {run} --follow`, stop it with `xtts-ft stop {run}`")
        return 0
    print(f"[INFO] following the run (Ctrl-C stops it safely; closing the terminal does not stop it)")
    return Follower(run).follow(from_start=not resume)


def locks_name() -> str:
    from engine import locks

    return locks.LOCK_NAME


def _not_busy(run: Path) -> None:
    """Refuse at once when a process holds the run (its pid named), before anything is changed."""
    from engine import locks
    from engine.train import process

    holder = locks.holder(run) if run.is_dir() else None
    if holder is not None:
        raise UserError(locks.busy_message(run, holder))
    if process.process_alive(run):
        raise UserError(f"{run} is still running (pid {process.worker_pid(run)})")


def _clear_run(run: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete what an earlier attempt left in RUN (checkpoints, events, logs, samples...)."""
    import shutil

    from engine import locks

    for p in run.iterdir():
        if p.name in keep or p.name == locks.LOCK_NAME:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    print(f"[INFO] {run}: the earlier attempt was deleted; starting again from step 0")


def cmd_train(args) -> int:
    from engine.atomic import write_text

    cfg = build_run_config(args)
    run = Path(cfg["run"])
    if getattr(args, "restart", False) and (run / "run_config.json").exists():
        _not_busy(run)
        _clear_run(run)
    run.mkdir(parents=True, exist_ok=True)
    write_text(run / "run_config.json", tc.dump(cfg))
    print(f"[MODEL] Training configuration saved to {run / 'run_config.json'}")
    print(f"- Epochs: {cfg['epochs']}  Batch Size: {cfg['batch_size']}  Gradient Accumulation: {cfg['grad_accum']}"
          f"  -> Effective Batch Size: {_batch_text(cfg)}")
    print(f"- Learning Rate: {cfg['lr']:g}  Optimizer: {cfg['optimizer']}  Scheduler: {cfg['scheduler']}"
          f"  Precision: {cfg['precision']}  Language: {cfg['language']}")
    print(f"- {cfg['train_clips']} training clips, {cfg['eval_clips']} eval clips, "
          f"{cfg['steps_per_epoch']} steps per epoch")
    from engine.train import distributed as dist

    if cfg.get("distributed"):
        print(f"- DistributedDataParallel: {cfg['world_size']} processes ({cfg['nproc_per_node']} per node x "
              f"{cfg['nnodes']} node(s)), backend {cfg['backend']}" + (f", GPUs {cfg['gpus']}" if cfg["gpus"] else ""))
    for line in dist.lr_advice(cfg):
        print(f"[WARNING] [TRAIN] {line}")
    return _start(run, args.detach, resume=False)


def _batch_text(cfg: dict) -> str:
    from engine.train import distributed as dist

    return dist.batch_breakdown(cfg)


def cmd_resume(args) -> int:
    from engine.atomic import write_text
    from engine.train import checkpoints as ck

    run = Path(args.run)
    cfg_path = run / "run_config.json"
    if not cfg_path.is_file():
        raise UserError(f"{run} is not a training run (no run_config.json)")
    _not_busy(run)
    if args.restart:
        _clear_run(run, keep=("run_config.json",))
    elif not ck.list_checkpoints(run):
        raise UserError(f"{run}: no checkpoint to resume from (the run ended before its first checkpoint); "
                        f"start it again with `xtts-ft resume {run} --restart`")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if args.epochs is not None:
        try:
            cfg["epochs"] = tc.validate_value(tc.OPTIONS_BY_NAME["epochs"], args.epochs)
        except tc.ConfigError as exc:
            raise UserError(str(exc)) from None
        write_text(cfg_path, tc.dump(cfg))
    return _start(run, args.detach, resume=not args.restart)


def cmd_stop(args) -> int:
    from engine.train import process

    run = Path(args.run)
    try:
        pid = process.send_stop(run, signal.SIGTERM)
        if args.now:
            time.sleep(0.2)
            process.send_stop(run, signal.SIGTERM)
    except ProcessLookupError as exc:
        raise UserError(str(exc)) from None
    print(f"[INFO] stop requested (pid {pid})" + (": stopping at once" if args.now else
                                                 ": the run finishes its step and writes a checkpoint"))
    if args.wait:
        while process.process_alive(run):
            time.sleep(0.3)
        s = process.summarize(run)
        print(f"[INFO] run {s['state']}" + (f": {s['reason']}" if s.get("reason") else ""))
    return 0


# ------------------------------------------------------------------ runs / status
def _status_line(s: dict) -> str:
    prog = ""
    if s.get("global_step") is not None:
        prog = (f"epoch {(s['epoch'] or 0) + 1}/{s['epochs']} step {s['step']}/{s['steps_per_epoch']} "
                f"(global {s['global_step']})")
    best = f" best {s['best']['loss']:.4f}" if s.get("best") and s["best"].get("loss") is not None else ""
    return f"{s['state']:<9} {prog}{best}"


def cmd_runs(args) -> int:
    from engine.train import process

    runs = process.find_runs(Path(args.dir))
    rows = [process.summarize(r) for r in runs]
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        print(f"no runs in {args.dir}")
        return 0
    width = max(len(Path(r["run"]).name) for r in rows)
    for r in rows:
        print(f"{Path(r['run']).name:<{width}}  {_status_line(r)}")
    return 0


def cmd_status(args) -> int:
    from engine.train import process

    run = Path(args.run)
    if not (run / "run_config.json").is_file():
        raise UserError(f"{run} is not a training run (no run_config.json)")
    if args.follow:
        from engine.train.follow import Follower

        return Follower(run, forward_ctrl_c=False).follow(from_start=True)
    s = process.summarize(run)
    if args.json:
        print(json.dumps(s, default=str))
        return 0
    print(f"{run}: {_status_line(s)}" + (f" (pid {s['pid']})" if s["alive"] else ""))
    if s.get("reason"):
        print(f"  reason: {s['reason']}")
    if s.get("loss") is not None:
        print(f"  last train loss {s['loss']:.5f}, lr {s['lr']:.3g}")
    if s.get("eval"):
        print(f"  last eval avg_loss {s['eval']['avg_loss']:.5f}")
    if s.get("best"):
        print(f"  BEST MODEL = {s['best']['path']}")
    for a in s["alerts"][-3:]:
        print(f"  [WARNING] {a['kind']}: {a['msg']}")
    return 0


# ------------------------------------------------------------------ export / synth
def cmd_export(args) -> int:
    from engine.model.export import ExportError, export_run
    from engine.model.files import ModelFilesError

    try:
        res = export_run(args.run, args.out, checkpoint=args.checkpoint, force=args.force,
                         speaker_name=args.speaker_name, add_speaker=not args.no_speaker)
    except (ExportError, ModelFilesError) as exc:
        raise UserError(str(exc)) from None
    print(f"[MODEL] exported {res['checkpoint']} (global step {res['step']}) to {res['out']}")
    print(f"- model.pth {res['model_pth_bytes'] / 1e6:.1f} MB; reference clips: {', '.join(res['references']) or 'none'}")
    if res.get("speaker"):
        print(f"- named voice {res['speaker']!r} added to speakers_xtts.pth ({res['speakers']} speakers): "
              f"coqui-tts `speaker={res['speaker']!r}`, AllTalk's voice list")
    elif not args.no_speaker:
        print("- no named voice: the dataset has no clip to compute it from")
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
        synth.load_run_weights(model, args.weights)
    res = synth.synthesize(model, args.text, args.speaker_wav if len(args.speaker_wav) > 1 else args.speaker_wav[0],
                           args.language, args.out, max_new_tokens=args.max_new_tokens)
    print(f"[INFO] wrote {res['path']} ({res['seconds']:.2f} s of audio in {res['elapsed']:.1f} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
