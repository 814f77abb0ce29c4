"""`xtts-ft listen RUN`: the listening test over a run's checkpoints and the base model, as its own
detached job.

Job folder R/listen/: job.json (options), process.json (pid + start time), events.jsonl (state,
progress, listen, recommendation, log — docs/events.md), job.log, testset.json, and one folder per
test (base/, step<N>/) with the wav files and result.json. `recommended.json` names the checkpoint
the rule in engine/listen/select.py picks. SIGTERM/SIGINT stop the job between two sentences;
finished tests stay, the unfinished one leaves no result.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from engine.events import EventWriter, read_events
from engine.listen.encoders import ListenError
from engine.listen.testset import listen_dir

FINAL = ("finished", "stopped", "failed")


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


class Job:
    def __init__(self, run: Path, opts: dict, echo=None):
        self.run = Path(run)
        self.opts = opts
        self.dir = listen_dir(self.run)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ev = EventWriter(self.dir / "events.jsonl", echo=echo)
        self.stop_requested = False

    def emit(self, type_: str, **kw) -> None:
        self.ev.emit(type_, job="listen", **kw)

    def _signals(self) -> None:
        def handler(signum, frame):
            self.stop_requested = True
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def main(self) -> int:
        self._signals()
        self.emit("state", state="preparing", pid=os.getpid())
        try:
            rc = self._work()
        except InterruptedError:
            self.emit("state", state="stopped", reason="stop requested")
            return 0
        except ListenError as exc:
            self.emit("log", level="error", msg=str(exc))
            self.emit("state", state="failed", reason=str(exc))
            return 2
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            self.emit("state", state="failed", reason=f"{type(exc).__name__}: {exc}")
            return 1
        finally:
            self.ev.close()
        return rc

    def _work(self) -> int:
        import torch

        from engine.listen import select, testset
        from engine.listen.run import Listener, load_results
        from engine.model import synth

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
        ts = testset.build(self.run, cfg, datasets=testset.extra_datasets(cfg),
                           sentences=int(self.opts.get("sentences") or cfg.get("listen_sentences") or 0))
        dev = self.opts.get("device") or "auto"
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.emit("log", level="info", msg=f"loading {model_dir} and the listening models on {dev}")
        model = synth.load_model(model_dir, device=dev)
        cap = int(self.opts.get("max_new_tokens") or cfg.get("max_new_tokens") or 0) or None
        listener = Listener(self.run, ts, xtts=model, device=dev, whisper_model=self.opts.get("whisper_model") or "auto",
                            max_new_tokens=cap)
        for note in listener.describe()["notes"]:
            self.emit("log", level="warning", msg=note)
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
        self.emit("state", state="listening", tests=len(plan), sentences=total)
        done = 0
        for label, path, info in plan:
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
        self.emit("state", state="finished")
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
def run_foreground(run: Path, opts: dict, echo=None) -> int:
    _run_config(run)
    _refuse_if_running(run)
    return Job(run, opts, echo=echo).main()


def _refuse_if_running(run: Path) -> None:
    from engine.train.process import process_alive

    if process_alive(listen_dir(run)) and _last_state(run) not in FINAL:
        raise ListenError(f"a listening job is already running for {run} (stop it with xtts-ft listen {run} --stop)")


def spawn(run: Path, opts: dict) -> int:
    run = Path(run)
    _run_config(run)
    resolve_targets(run, opts.get("checkpoints") or "best,last")     # bad input: one message, nothing started
    _refuse_if_running(run)
    d = listen_dir(run)
    d.mkdir(parents=True, exist_ok=True)
    from engine.atomic import write_json

    write_json(d / "job.json", opts)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "engine.listen.job", str(run.resolve())]
    with open(d / "job.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env, cwd=os.getcwd())
    from engine.train.process import _create_time

    write_json(d / "process.json", {"pid": proc.pid, "create_time": _create_time(proc.pid), "cmd": cmd,
                                    "started": time.time(), "kind": "listen"})
    return proc.pid


def stop(run: Path) -> int:
    from engine.train.process import process_alive, worker_pid

    d = listen_dir(run)
    if not process_alive(d):
        raise ProcessLookupError(f"no listening job is running for {run}")
    pid = worker_pid(d)
    os.kill(pid, signal.SIGTERM)
    return pid


def _last_state(run: Path) -> str | None:
    evs, _ = read_events(listen_dir(run) / "events.jsonl")
    states = [e.get("state") for e in evs if e.get("type") == "state"]
    return states[-1] if states else None


def summary(run: Path) -> dict:
    from engine.listen import select
    from engine.listen.run import load_results
    from engine.train.process import process_alive

    run = Path(run)
    state = _last_state(run) or "new"
    alive = process_alive(listen_dir(run))
    if state not in FINAL and state != "new" and not alive:
        state = "failed"
    evs, _ = read_events(listen_dir(run) / "events.jsonl")
    prog = next((e for e in reversed(evs) if e.get("type") == "progress"), None)
    results = load_results(run)
    rows = [{"label": r["label"], "step": r.get("step"), "name": r.get("name"), **_event_summary(r)} for r in results]
    return {"run": str(run), "state": state, "alive": alive,
            "progress": {"done": prog["done"], "total": prog["total"]} if prog else None,
            "tests": rows, "recommended": select.recommend(results)}


def format_summary(s: dict) -> str:
    def f(v, p=3):
        return "   -  " if v is None else f"{v:.{p}f}"

    lines = [f"listening job: {s['state']}" + (f" ({s['progress']['done']}/{s['progress']['total']} sentences)"
                                              if s.get("progress") and s["state"] not in FINAL else "")]
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run = Path(argv[0])
    opts = json.loads((listen_dir(run) / "job.json").read_text(encoding="utf-8"))
    return Job(run, opts).main()


if __name__ == "__main__":
    sys.exit(main())
