"""Sub-commands of training runs: train, resume, stop, runs, status."""

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
    """The checkpoint file `--base-checkpoint` names (a run or model folder: its best / latest one),
    checked to hold weights only before any run starts."""
    path = Path(p)
    if path.is_dir():
        found = None
        for cand in ("best_model.pth", "model.pth"):
            if (path / cand).is_file():
                found = path / cand
                break
        if found is None:
            from engine.train import checkpoints as ck

            ckpts = ck.list_checkpoints(path)
            if not ckpts:
                raise UserError(f"--base-checkpoint {p}: no best_model.pth, model.pth or checkpoints/ inside")
            found = ckpts[-1][1]
        path = found
    if not path.is_file():
        raise UserError(f"--base-checkpoint: not found: {p}")
    _refuse_unsafe(path, "--base-checkpoint")
    return str(path.resolve())


def _refuse_unsafe(path: Path, option: str) -> None:
    """A file that is not weights-only (a pickle that would run code) is refused here, unrun."""
    from engine.model import weights

    try:
        weights.load(path, mmap=True)
    except weights.UnsafeCheckpoint as exc:
        raise UserError(f"{option}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - not a torch file at all, truncated...
        raise UserError(f"{option} {path}: not a readable checkpoint ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None


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
    print("[INFO] following the run (Ctrl-C stops it safely; closing the terminal does not stop it)")
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




if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
