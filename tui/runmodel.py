"""What the studio knows about a run or a prep job, rebuilt only from its events file.

Pure Python (no Textual): a follower thread feeds events in (`absorb`), the screens read a
consistent view under `lock` on a timer and redraw when `version` changed. Memory is bounded
whatever the length of the run: curves are downsampled (`Series`), logs and alerts are rings.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from engine.events import read_events

FINAL_STATES = ("stopped", "finished", "failed")
ACTIVE_STATES = ("preparing", "training", "stopping")
CHUNK_BYTES = 4 * 1024 * 1024
BANNER_ON_REPLAY = ("oom", "overtraining", "plateau", "low_vram")


class Series:
    """(x, y) points, at most `cap` (+1): each kept point is the mean of `stride` consecutive raw
    points; when the list is full, neighbours are merged pairwise over the whole history and the
    stride doubles. Coverage stays even from the first step to the last, the newest raw point is
    always the last one shown, and a week-long run costs the same memory as a short one.
    """

    __slots__ = ("_xs", "_ys", "cap", "count", "last", "last_x", "stride", "_px", "_py", "_pn")

    def __init__(self, cap: int = 1000):
        self._xs: list[float] = []
        self._ys: list[float] = []
        self.cap = max(8, cap) & ~1
        self.count = 0  # points ever added
        self.last: float | None = None
        self.last_x: float | None = None
        self.stride = 1
        self._px = self._py = 0.0
        self._pn = 0

    def add(self, x: float, y: float | None) -> None:
        if y is None or y != y:  # None or NaN
            return
        self.count += 1
        self.last = float(y)
        self.last_x = float(x)
        self._px += float(x)
        self._py += float(y)
        self._pn += 1
        if self._pn >= self.stride:
            self._xs.append(self._px / self._pn)
            self._ys.append(self._py / self._pn)
            self._px = self._py = 0.0
            self._pn = 0
            if len(self._xs) >= self.cap:
                self._compress()

    def _compress(self) -> None:
        xs, ys = self._xs, self._ys
        n = len(xs) & ~1
        self._xs = [(xs[i] + xs[i + 1]) / 2 for i in range(0, n, 2)] + xs[n:]
        self._ys = [(ys[i] + ys[i + 1]) / 2 for i in range(0, n, 2)] + ys[n:]
        self.stride *= 2

    @property
    def xs(self) -> list[float]:
        return self._xs if self.stride == 1 else self._xs + [self.last_x]

    @property
    def ys(self) -> list[float]:
        return self._ys if self.stride == 1 else self._ys + [self.last]

    def __len__(self) -> int:
        return len(self._xs) + (0 if self.stride == 1 else 1)


class EventTail:
    """Reads an events file from an offset in bounded chunks; survives the file not existing yet
    and being replaced (offset past the end: read again from 0)."""

    def __init__(self, path: str | Path, offset: int = 0):
        self.path = Path(path)
        self.offset = offset
        self.reset = False

    def poll(self, max_bytes: int = CHUNK_BYTES) -> list[dict]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:  # truncated / replaced
            self.offset = 0
            self.reset = True
        if size == self.offset:
            return []
        events, self.offset = read_events(self.path, self.offset, max_bytes=max_bytes)
        return events

    def at_end(self) -> bool:
        try:
            return self.path.stat().st_size <= self.offset
        except OSError:
            return True


def _num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and x == x else None


class EventModel:
    """State rebuilt from an event stream: `absorb(e)` one event, `absorb_all` a batch under the
    lock; `version` grows with every change so views redraw only when something changed."""

    def __init__(self):
        self.lock = threading.RLock()
        self.version = 0
        self.clear()

    def clear(self) -> None:
        raise NotImplementedError

    def absorb(self, e: dict) -> None:
        raise NotImplementedError

    def absorb_all(self, events: list[dict]) -> None:
        with self.lock:
            for e in events:
                self.absorb(e)
            if events:
                self.version += 1


class RunModel(EventModel):
    """The state of one training run, rebuilt from R/events.jsonl."""

    LOG_LINES = 1500
    ALERTS = 200

    def __init__(self, run: str | Path | None = None, cap: int = 1000):
        self.run = Path(run) if run else None
        self.cap = cap
        super().__init__()

    def clear(self) -> None:
        cap = self.cap
        self.events = 0
        self.state = "new"
        self.reason = ""
        self.state_info: dict = {}
        self.alive: bool | None = None
        self.pid = None
        self.started_ts: float | None = None
        self.last_ts: float | None = None
        self.epoch = 0
        self.epochs = 0
        self.step = 0
        self.steps_per_epoch = 0
        self.global_step = 0
        self.batch_size = None
        self.grad_accum = None
        self.last_step: dict = {}
        self.step_time_avg: float | None = None
        self.wall_per_step: float | None = None
        self._prev_step_ts: float | None = None
        self.train_loss = Series(cap)
        self.train_text = Series(cap)
        self.train_mel = Series(cap)
        self.lr = Series(cap)
        self.eval_loss = Series(cap)
        self.eval_text = Series(cap)
        self.eval_mel = Series(cap)
        self.epoch_loss = Series(cap)
        self.evals: deque = deque(maxlen=400)  # (global_step, epoch, avg_loss, text, mel)
        self.best: dict | None = None
        self.best_marks: deque = deque(maxlen=100)  # (global_step, loss)
        self.checkpoints: dict[str, dict] = {}
        self.alerts: deque = deque(maxlen=self.ALERTS)
        self.pending_alerts: deque = deque(maxlen=20)  # not yet notified by the UI
        self.banner: dict | None = None  # the alert the banner shows until dismissed
        self.gpu: dict | None = None
        self.gpus: list[dict] | None = None  # distributed runs: one sample per rank / GPU
        self.world_size = 1  # processes of a distributed run (preflight `distributed` / resources)
        self.backend: str | None = None
        self.ram: dict | None = None
        self.gpu_preflight: dict | None = None
        self.device: str | None = None
        self.preflight: dict[str, dict] = {}
        self.log: deque = deque(maxlen=self.LOG_LINES)  # (level, tag, msg)
        self.log_seq = 0  # lines ever added (the log view appends the new ones)
        self.samples: list[dict] = []
        # the listening test (engine/listen): one curve point per test, the base row apart
        self.listen_cer = Series(cap)
        self.listen_sim = Series(cap)
        self.listen_mos = Series(cap)
        self.listen_tests: list[dict] = []
        self.listen_base: dict | None = None
        self.listening: dict | None = None     # the test in progress: {label, done, total}
        self.best_listen: dict | None = None
        self.config_changes: list[dict] = []
        self.resumes: list[dict] = []
        self.warnings = 0
        self.errors = 0
        self._vram_alerted = False
        self.replaying = True  # until the follower first reaches the end of the file
        self.version += 1

    # ------------------------------------------------------------------ feeding
    def _log(self, level: str, tag: str, msg: str) -> None:
        self.log.append((level, tag, msg))
        self.log_seq += 1

    def absorb(self, e: dict) -> None:  # noqa: C901 - one branch per event type
        self.events += 1
        t = e.get("type")
        ts = e.get("ts")
        if isinstance(ts, (int, float)):
            self.last_ts = ts
            if self.started_ts is None:
                self.started_ts = ts
        if t == "step":
            self.epoch = e.get("epoch", self.epoch) or 0
            self.epochs = e.get("epochs", self.epochs) or self.epochs
            self.step = e.get("step", self.step) or 0
            self.steps_per_epoch = e.get("steps_per_epoch", self.steps_per_epoch) or self.steps_per_epoch
            gs = e.get("global_step", self.global_step) or 0
            self.global_step = gs
            self.batch_size = e.get("batch_size", self.batch_size)
            self.grad_accum = e.get("grad_accum", self.grad_accum)
            self.last_step = e
            self.train_loss.add(gs, _num(e.get("loss")))
            self.train_text.add(gs, _num(e.get("loss_text_ce")))
            self.train_mel.add(gs, _num(e.get("loss_mel_ce")))
            self.lr.add(gs, _num(e.get("lr")))
            st = _num(e.get("step_time"))
            if st is not None:
                self.step_time_avg = st if self.step_time_avg is None else 0.9 * self.step_time_avg + 0.1 * st
            if isinstance(ts, (int, float)):
                if self._prev_step_ts is not None:
                    dt = ts - self._prev_step_ts
                    if 0 <= dt < 120:  # a longer gap is a pause / resume, not a step
                        self.wall_per_step = dt if self.wall_per_step is None else 0.9 * self.wall_per_step + 0.1 * dt
                self._prev_step_ts = ts
        elif t == "resources":
            self.gpu = e.get("gpu") if isinstance(e.get("gpu"), dict) else None
            self.ram = e.get("ram") if isinstance(e.get("ram"), dict) else None
            gpus = e.get("gpus")
            if isinstance(gpus, list):
                self.gpus = [g for g in gpus if isinstance(g, dict)] or None
            if isinstance(e.get("world_size"), int) and e["world_size"] > 0:
                self.world_size = e["world_size"]
            full = []
            for g in self.gpus or [self.gpu or {}]:
                if g.get("available") and g.get("total_mb") and g.get("used_mb") is not None:
                    full.append((g["used_mb"] / g["total_mb"], g))
            if full:
                frac, g = max(full, key=lambda x: x[0])
                if frac >= 0.97 and not self._vram_alerted:
                    self._vram_alerted = True
                    which = f"GPU {g.get('index')}: " if self.gpus and len(self.gpus) > 1 else ""
                    self._alert({"kind": "vram_full", "level": "warning",
                                 "msg": f"{which}VRAM {g['used_mb'] / 1024:.1f} of {g['total_mb'] / 1024:.1f} GB used"},
                                ts)
                elif frac < 0.9:
                    self._vram_alerted = False
        elif t == "log":
            level = e.get("level", "info")
            msg = str(e.get("msg", ""))
            if level == "warning":
                self.warnings += 1
                low = msg.lower()
                if "below the recommended 12gb" in low:
                    self._alert({"kind": "low_vram", "level": "warning", "msg": msg}, ts)
                elif "very small training dataset" in low:
                    self._alert({"kind": "small_dataset", "level": "warning", "msg": msg + ": " +
                                 " ".join(e.get("details") or [])}, ts)
            elif level == "error":
                self.errors += 1
            self._log(level, str(e.get("tag", "INFO")), msg)
            for d in e.get("details") or []:
                self._log(level, "", f"  {d}")
        elif t == "eval":
            gs = e.get("global_step", self.global_step) or 0
            self.eval_loss.add(gs, _num(e.get("avg_loss")))
            self.eval_text.add(gs, _num(e.get("avg_loss_text_ce")))
            self.eval_mel.add(gs, _num(e.get("avg_loss_mel_ce")))
            self.evals.append((gs, e.get("epoch"), _num(e.get("avg_loss")), _num(e.get("avg_loss_text_ce")),
                               _num(e.get("avg_loss_mel_ce"))))
        elif t == "epoch_start":
            self.epoch = e.get("epoch", self.epoch) or 0
            self.epochs = e.get("epochs", self.epochs) or self.epochs
            self.steps_per_epoch = e.get("steps_per_epoch", self.steps_per_epoch) or self.steps_per_epoch
            self.step = e.get("epoch_step", 0) or 0
            self.global_step = e.get("global_step", self.global_step) or self.global_step
        elif t == "epoch_end":
            self.epoch_loss.add(e.get("global_step", self.global_step) or 0, _num(e.get("train_loss")))
        elif t == "best_model":
            self.best = {k: e.get(k) for k in ("path", "loss", "global_step", "epoch", "source")}
            if _num(e.get("loss")) is not None:
                self.best_marks.append((e.get("global_step") or 0, e.get("loss")))
        elif t == "checkpoint":
            path = str(e.get("path"))
            self.checkpoints[path] = {k: e.get(k) for k in ("path", "global_step", "epoch", "reason", "size_bytes")}
            for r in e.get("removed") or []:
                self.checkpoints.pop(str(r), None)
        elif t == "alert":
            self._alert({k: e.get(k) for k in ("kind", "level", "msg", "advice", "global_step", "backoff")}, ts)
        elif t == "state":
            st = e.get("state")
            self.state = st or self.state
            self.reason = e.get("reason") or ""
            self.state_info = e
            if e.get("pid"):
                self.pid = e.get("pid")
            if st == "preparing":
                self._prev_step_ts = None
            if st in ("stopped", "finished", "failed"):
                self._log("error" if st == "failed" else "info", "INFO",
                          f"run {st}" + (f": {self.reason}" if self.reason else ""))
        elif t == "preflight":
            check = str(e.get("check"))
            self.preflight[check] = e
            if check == "distributed":
                if isinstance(e.get("world_size"), int) and e["world_size"] > 0:
                    self.world_size = e["world_size"]
                self.backend = e.get("backend") or self.backend
            if check == "gpu":
                self.gpu_preflight = e.get("gpu") if isinstance(e.get("gpu"), dict) else None
                self.device = e.get("device")
        elif t == "config_change":
            self.config_changes.append(e)
            self.batch_size = e.get("batch_size", self.batch_size)
            self.grad_accum = e.get("grad_accum", self.grad_accum)
        elif t == "resumed":
            self.resumes.append(e)
            self.global_step = e.get("global_step", self.global_step) or self.global_step
            self._log("info", "INFO", f"resumed from {e.get('checkpoint')} at global step {e.get('global_step')}")
        elif t == "listen_progress":
            self.listening = {k: e.get(k) for k in ("label", "done", "total")}
        elif t == "listen":
            self.listening = None
            keep = {k: e.get(k) for k in ("label", "step", "epoch", "cer", "wer", "similarity", "similarity_xtts",
                                          "mos", "flagged", "flags", "seconds", "share", "result", "train_loss")}
            if e.get("label") == "base":     # the base is the curves' point at step 0
                self.listen_base = keep
                self.listen_cer.add(0, _num(e.get("cer")))
                self.listen_sim.add(0, _num(e.get("similarity")))
                self.listen_mos.add(0, _num(e.get("mos")))
            else:
                self.listen_tests = [x for x in self.listen_tests if x.get("label") != keep["label"]] + [keep]
                x = e.get("step") or 0
                self.listen_cer.add(x, _num(e.get("cer")))
                self.listen_sim.add(x, _num(e.get("similarity")))
                self.listen_mos.add(x, _num(e.get("mos")))
        elif t == "best_listen":
            self.best_listen = {k: e.get(k) for k in ("path", "label", "step", "reason", "cer", "similarity")}
        elif t == "sample":
            self.samples.append({k: e.get(k) for k in ("variant", "path", "text", "reference", "tag")})
            if len(self.samples) > 200:
                del self.samples[:-200]

    def _alert(self, a: dict, ts) -> None:
        a["ts"] = ts
        a.setdefault("global_step", self.global_step)
        self.alerts.append(a)
        if self.replaying:
            # re-opening a run: no toasts for old news; the banner keeps the last alert that matters
            if a.get("kind") in BANNER_ON_REPLAY:
                self.banner = a
            return
        self.pending_alerts.append(a)
        self.banner = a

    # ------------------------------------------------------------------ derived
    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def shown_state(self) -> str:
        """The state to show: an active state whose process is gone is a failure."""
        if self.state in ACTIVE_STATES and self.alive is False:
            return "failed"
        return self.state

    def shown_reason(self) -> str:
        if self.state in ACTIVE_STATES and self.alive is False:
            return f"the training process ended without a final state (last: {self.state}); see train.log"
        return self.reason

    def eta_seconds(self) -> float | None:
        if not self.epochs or not self.steps_per_epoch or self.final:
            return None
        per = self.wall_per_step or self.step_time_avg
        if per is None:
            return None
        left = (self.epochs - self.epoch - 1) * self.steps_per_epoch + max(0, self.steps_per_epoch - self.step)
        return max(0.0, left * per)


class PrepModel(EventModel):
    """The state of a prep job, from DATASET/prep_events.jsonl (from the offset the job started at)."""

    def clear(self) -> None:
        self.state = "new"
        self.reason = ""
        self.stages: dict[str, dict] = {}
        self.log: deque = deque(maxlen=2000)
        self.log_seq = 0
        self.sources: list[dict] = []
        self.summary: dict | None = None
        self.warnings = 0
        self.alive: bool | None = None
        self.started = time.time()
        self.version += 1

    def absorb(self, e: dict) -> None:
        t = e.get("type")
        if t == "log":
            level = e.get("level", "info")
            if level == "warning":
                self.warnings += 1
            self.log.append((level, str(e.get("tag", "INFO")), str(e.get("msg", ""))))
            self.log_seq += 1
            for d in e.get("details") or []:
                self.log.append((level, "", f"  {d}"))
                self.log_seq += 1
        elif t == "progress":
            self.stages[str(e.get("stage"))] = e
        elif t == "source_report":
            if isinstance(e.get("source"), dict):
                self.sources.append(e["source"])
        elif t == "prep_summary":
            self.summary = e
        elif t == "state":
            self.state = e.get("state", self.state)
            self.reason = e.get("reason") or ""


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"
