"""`xtts-ft listen RUN`: the listening test over a run's checkpoints and the base model, as its own
detached job.

A job of the one protocol (engine/jobs/, kind `listen`, docs/events.md) in the run folder R:
R/listen_events.jsonl (state, progress, listen, recommendation, log), R/listen_process.json (the
detached process: `spawn` starts `xtts-ft listen R --foreground`), R/listen.log (its output).
Its results are in R/listen/: testset.json, one folder per test (base/, step<N>/) with the wav files
and result.json, and `recommended.json` (the checkpoint the rule in engine/listen/select.py picks).
SIGINT/SIGTERM (`stop`, `xtts-ft listen R --stop`, the studio) stop the job between two sentences:
it ends `stopped`; finished tests stay, the unfinished one leaves no result.json.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from engine.events import EventWriter
from engine.jobs import Job, JobFiles, states, stop_job, summarize
from engine.jobs import process as jp
from engine.listen.encoders import ListenError
from engine.listen.testset import listen_dir


def options_from_args(args) -> dict:
    return {"checkpoints": args.checkpoints, "base": not args.no_base, "whisper_model": args.whisper_model,
            "device": args.device, "max_new_tokens": args.max_new_tokens, "language": args.language,
            "model": args.model, "sentences": args.sentences}


def _run_config(run: Path) -> dict:
    p = Path(run) / "run_config.json"
    if not p.is_file():
        raise ListenError(f"{run} is not a training run (no run_config.json)")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ListenError(f"{p} is damaged ({exc})") from exc


def resolve_targets(run: Path, spec: str) -> list[tuple[str, Path]]:
    """[(name, checkpoint file)] for best, last, best-listen, all, or paths (comma-separated)."""
    from engine.train import checkpoints as ck

    run = Path(run)
    out: list[tuple[str, Path]] = []
    for part in [p.strip() for p in (spec or "best,last").split(",") if p.strip()]:
        if part == "best":
            p = run / "best_model.pth"
            if p.is_file():
                out.append(("best", p))
        elif part == "best-listen":
            p = run / "best_listen.pth"
            if p.is_file():
                out.append(("best-listen", p))
        elif part == "last":
            found = ck.list_checkpoints(run)
            if found:
                out.append(("last", found[-1][1]))
        elif part == "all":
            out += [(f"checkpoint_{s}", p) for s, p in ck.list_checkpoints(run)]
            if (run / "best_model.pth").is_file():
                out.append(("best", run / "best_model.pth"))
        else:
            p = Path(part)
            if not p.is_file():
                raise ListenError(f"--checkpoints: file not found: {p}")
            out.append((p.name, p))
    if not out:
        raise ListenError(f"{run} has no checkpoint to listen to (no best_model.pth, no checkpoints/): "
                          "train first, or pass --checkpoints PATH")
    seen, uniq = set(), []
    for name, p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            uniq.append((name, p))
    return uniq


def _checkpoint_info(path: Path) -> dict:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ListenError(f"{path}: not a loadable checkpoint ({type(exc).__name__})") from exc
    step = data.get("step") if isinstance(data, dict) else None
    epoch = data.get("epoch") if isinstance(data, dict) else None
    return {"step": int(step) if step is not None else None, "epoch": epoch}


class ListenJob:
    """The job's side: one `xtts-ft listen RUN --foreground` process (engine.jobs.Job, kind listen)."""

    def __init__(self, run: Path, opts: dict, echo=None):
        self.run = Path(run)
        self.opts = opts
        self.dir = listen_dir(self.run)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.job = Job("listen", self.run, writer=EventWriter(files(self.run).events, echo=echo))
        self.stop_requested = False

    def emit(self, type_: str, **kw) -> None:
        self.job.emit(type_, **kw)

    def _signals(self) -> None:
        def handler(signum, frame):
            self.stop_requested = True
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise InterruptedError

    def main(self) -> int:
        self._signals()
        self.job.start(cmd=sys.argv, state="preparing", pid=os.getpid())
        try:
            rc = self._work()
        except InterruptedError:
            self.job.end("stopped", reason="stop requested: the finished tests are kept")
            return states.EXIT_CODES["stopped"]
        except ListenError as exc:
            self.emit("log", level="error", msg=str(exc))
            self.job.end("failed", reason=str(exc))
            return 2
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            self.job.end("failed", reason=f"{type(exc).__name__}: {exc}")
            return 1
        finally:
            self.job.close()
        return rc

    def _work(self) -> int:
        import torch

        from engine.listen import select, testset
        from engine.listen.run import Listener, load_results
        from engine.model import synth

        self._check_stop()
        cfg = _run_config(self.run)
        if self.opts.get("language"):
            cfg["language"] = self.opts["language"]
        targets = resolve_targets(self.run, self.opts.get("checkpoints") or "best,last")
        infos = []
        for name, path in targets:
            info = _checkpoint_info(path)
            infos.append((name, path, info))
        model_dir = self.opts.get("model") or cfg["model"]
        from engine.model.files import check_model

        check_model(model_dir)
        self._check_stop()
        ts = testset.build(self.run, cfg, datasets=testset.extra_datasets(cfg),
                           sentences=int(self.opts.get("sentences") or cfg.get("listen_sentences") or 0))
        dev = self.opts.get("device") or "auto"
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.emit("log", level="info", msg=f"loading {model_dir} and the listening models on {dev}")
        model = synth.load_model(model_dir, device=dev)
        self._check_stop()
        cap = int(self.opts.get("max_new_tokens") or cfg.get("max_new_tokens") or 0) or None
        listener = Listener(self.run, ts, xtts=model, device=dev, whisper_model=self.opts.get("whisper_model") or "auto",
                            max_new_tokens=cap)
        for note in listener.describe()["notes"]:
            self.emit("log", level="warning", msg=note, code="listen_note")
        plan = []
        have = {r.get("label"): r for r in load_results(self.run)}
        if self.opts.get("base", True):
            b = have.get("base")
            if not (b and b.get("testset") == ts.get("hash")):
                plan.append(("base", None, {"weights": str(model_dir)}))
        labels = set()
        for name, path, info in infos:
            label = f"step{info['step']}" if info.get("step") is not None else Path(path).stem
            if label in labels:      # best_model.pth and the last checkpoint are often the same step
                continue
            labels.add(label)
            plan.append((label, path, {"name": name, "weights": str(path), **info}))
        per = sum(len(v["items"]) for v in ts["voices"])
        total = per * len(plan)
        self.job.state("listening", tests=len(plan), sentences=total)
        done = 0
        for label, path, info in plan:
            self._check_stop()
            if path is not None:
                synth.load_run_weights(model, path)
            t0 = time.time()

            def on_item(i, n, row, label=label, done=done):
                self.emit("progress", label=label, done=done + i, total=total, item=row["id"], cer=row["cer"],
                          flags=row["flags"])

            result = listener.test(model, label, info=info, on_item=on_item, should_stop=lambda: self.stop_requested)
            done += per
            self.emit("listen", label=label, step=info.get("step"), epoch=info.get("epoch"), source="job",
                      seconds=round(time.time() - t0, 2), result=str(listen_dir(self.run) / label / "result.json"),
                      **_event_summary(result))
        rec = select.recommend(load_results(self.run))
        if rec:
            from engine.atomic import write_json

            write_json(self.dir / "recommended.json", rec)
            self.emit("recommendation", **rec)
        self.job.end("finished")
        return 0


def _event_summary(result: dict) -> dict:
    s = result["summary"]
    out = {k: s.get(k) for k in ("cer", "wer", "similarity", "similarity_xtts", "mos", "rate_ratio", "flagged")}
    out["flags"] = s.get("flags")
    if len(result["voices"]) > 1:
        out["voices"] = {v["name"]: {k: v["summary"].get(k) for k in ("cer", "similarity", "mos")}
                         for v in result["voices"]}
    return out


# ---------------------------------------------------------------------------- process handling
def files(run: Path) -> JobFiles:
    """The listen job's files in the run folder: R/listen_events.jsonl, R/listen_process.json, R/listen.log."""
    return JobFiles("listen", Path(run))


def running(run: Path) -> bool:
    return files(run).alive()


def run_foreground(run: Path, opts: dict, echo=None) -> int:
    _run_config(run)
    _refuse_if_running(run)
    return ListenJob(run, opts, echo=echo).main()


def _refuse_if_running(run: Path) -> None:
    f = files(run)
    if f.alive() and jp.pid_of(f.process) != os.getpid():   # the detached job runs this check too
        raise ListenError(f"a listening job is already running for {run} (stop it with xtts-ft listen {run} --stop)")


def option_args(opts: dict) -> list[str]:
    """`opts` (options_from_args) as the CLI arguments that give them back."""
    out = ["--checkpoints", opts.get("checkpoints") or "best,last"]
    if not opts.get("base", True):
        out.append("--no-base")
    for key in ("whisper_model", "device", "max_new_tokens", "language", "model", "sentences"):
        if opts.get(key) not in (None, "", 0):
            out += ["--" + key.replace("_", "-"), str(opts[key])]
    return out


def spawn(run: Path, opts: dict) -> int:
    """Start `xtts-ft listen RUN --foreground` detached (engine/jobs/process.py) after checking the
    input here (bad input: one message, nothing started); R/listen_process.json records it."""
    run = Path(run)
    _run_config(run)
    resolve_targets(run, opts.get("checkpoints") or "best,last")
    _refuse_if_running(run)
    f = files(run)
    offset = f.events.stat().st_size if f.events.is_file() else 0   # before the job can write
    cmd = jp.engine_cmd("listen", str(run.resolve()), "--foreground", *option_args(opts))
    proc = jp.spawn_detached(cmd, f.log)
    jp.write_process(f.process, proc.pid, "listen", cmd=cmd, events=f.events, stop_signal="SIGINT", offset=offset)
    return proc.pid


def stop(run: Path) -> int:
    """Ask the running listening job to stop: it ends `stopped` after the current sentence."""
    return stop_job(files(run), "listening job")


def _fold(s: dict, e: dict) -> None:
    if e.get("type") == "progress":
        s["progress"] = {"done": e.get("done"), "total": e.get("total"), "label": e.get("label")}
    elif e.get("type") == "state" and e.get("state") == "listening":
        s["progress"] = {"done": 0, "total": e.get("sentences"), "label": None}


def job_summary(run: Path) -> dict:
    """The latest listening job's state (a dead process reads `failed`), reason, pid, progress. Results
    on disk without a job's events (written before listening was a job of its own) read `finished`."""
    from engine.listen.run import load_results

    s = summarize(files(run), fold=_fold, latest_only=True, extra={"progress": None})
    if s["state"] == states.NEW and not s["alive"] and load_results(run):
        s["state"] = "finished"
    return s


def summary(run: Path) -> dict:
    from engine.listen import select
    from engine.listen.run import load_results

    run = Path(run)
    js = job_summary(run)
    results = load_results(run)
    rows = [{"label": r["label"], "step": r.get("step"), "name": r.get("name"), **_event_summary(r)} for r in results]
    return {"run": str(run), "state": js["state"], "reason": js["reason"], "alive": js["alive"], "pid": js["pid"],
            "progress": js["progress"], "tests": rows, "recommended": select.recommend(results)}


def format_summary(s: dict) -> str:
    def f(v, p=3):
        return "   -  " if v is None else f"{v:.{p}f}"

    if s["state"] == states.NEW and not s["alive"] and not s["tests"]:
        return f"no listening job for {s['run']} (none was started; `xtts-ft listen {s['run']}` starts one)"
    lines = [f"listening job: {s['state']}" + (f" ({s['progress']['done']}/{s['progress']['total']} sentences)"
                                              if s.get("progress") and not states.is_final(s["state"]) else "")]
    if s.get("reason") and s["state"] in ("stopped", "failed"):
        lines.append(f"  {s['reason']}")
    if s["tests"]:
        lines.append(f"{'test':<12} {'CER':>6} {'WER':>6} {'sim':>6} {'simX':>6} {'MOS':>5} flagged")
        rec = (s.get("recommended") or {}).get("label")
        for r in s["tests"]:
            mark = "  <- recommended" if r["label"] == rec else ""
            lines.append(f"{r['label']:<12} {f(r['cer'])} {f(r['wer'])} {f(r['similarity'])} {f(r['similarity_xtts'])} "
                         f"{f(r['mos'], 2):>5} {r.get('flagged') or 0}{mark}")
        if s.get("recommended"):
            lines.append(f"recommended: {s['recommended']['label']} — {s['recommended']['reason']}")
    return "\n".join(lines)
