"""TensorBoard event files beside events.jsonl (issue 13): what coqui users expect to open.

`TensorBoardEvents` wraps the run's event writer: every event is written to events.jsonl first (the
studio's only source, unchanged), then mirrored into `R/tensorboard/` with torch's SummaryWriter:

- scalars: train/loss, train/loss_text_ce, train/loss_mel_ce, train/lr, train/grad_norm (with
  --grad-clip; coqui logs 0 otherwise), train/epoch_loss; eval/avg_loss, eval/avg_loss_text_ce, eval/avg_loss_mel_ce;
  time/step_time, time/loader_time; gpu/used_mb, gpu/torch_peak_allocated_mb, gpu/util_percent;
  ram/process_rss_mb — all at the run's global step (continuing across resumes);
- audio: every A/B listening sample (`sample` events) as samples/<tag>/<variant>_<n>.

    tensorboard --logdir runs/        # then http://localhost:6006 (over SSH: ssh -L 6006:localhost:6006)

TensorBoard is a convenience: if the library is missing or a write fails, training goes on and
one log line says so.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

STEP_SCALARS = {"loss": "train/loss", "loss_text_ce": "train/loss_text_ce", "loss_mel_ce": "train/loss_mel_ce",
                "lr": "train/lr", "grad_norm": "train/grad_norm", "step_time": "time/step_time",
                "loader_time": "time/loader_time"}
EVAL_SCALARS = {"avg_loss": "eval/avg_loss", "avg_loss_text_ce": "eval/avg_loss_text_ce",
                "avg_loss_mel_ce": "eval/avg_loss_mel_ce"}
GPU_SCALARS = ("used_mb", "torch_peak_allocated_mb", "util_percent")
FOLDER = "tensorboard"


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x == x else None


class TensorBoardSink:
    """Writes the scalars and audio of a run's events into TensorBoard event files."""

    def __init__(self, logdir: Path):
        self.logdir = Path(logdir)
        self._writer = None
        self._failed: str | None = None
        self._lock = threading.Lock()
        self.global_step = 0
        self._samples: dict[str, int] = {}

    def _w(self):
        if self._writer is None and self._failed is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.logdir), flush_secs=10)
            except Exception as exc:  # noqa: BLE001 - no tensorboard: the run goes on
                self._failed = f"{type(exc).__name__}: {exc}"
        return self._writer

    @property
    def failure(self) -> str | None:
        return self._failed

    def handle(self, ev: dict) -> None:
        t = ev.get("type")
        if t not in ("step", "eval", "epoch_end", "resources", "sample", "state"):
            return
        with self._lock:
            try:
                self._handle(t, ev)
            except Exception as exc:  # noqa: BLE001 - never let the mirror stop training
                self._failed = f"{type(exc).__name__}: {exc}"

    def _scalar(self, tag: str, value: Any, step: int | None = None) -> None:
        v = _num(value)
        w = self._w()
        if v is not None and w is not None:
            w.add_scalar(tag, v, self.global_step if step is None else step)

    def _handle(self, t: str, ev: dict) -> None:
        gs = ev.get("global_step")
        if isinstance(gs, int):
            self.global_step = gs
        if t == "step":
            for k, tag in STEP_SCALARS.items():
                self._scalar(tag, ev.get(k))
        elif t == "eval":
            for k, tag in EVAL_SCALARS.items():
                self._scalar(tag, ev.get(k))
        elif t == "epoch_end":
            self._scalar("train/epoch_loss", ev.get("train_loss"))
        elif t == "resources":
            gpu = ev.get("gpu") or {}
            if gpu.get("available"):
                for k in GPU_SCALARS:
                    self._scalar(f"gpu/{k}", gpu.get(k))
            self._scalar("ram/process_rss_mb", (ev.get("ram") or {}).get("process_rss_mb"))
        elif t == "sample":
            self._audio(ev)
        elif t == "state" and ev.get("state") in ("finished", "stopped", "failed"):
            w = self._w()
            if w is not None:
                w.flush()

    def _audio(self, ev: dict) -> None:
        import soundfile as sf
        import torch

        path = Path(str(ev.get("path") or ""))
        if not path.is_file():
            return
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        key = f"samples/{ev.get('tag') or 'final'}/{ev.get('variant') or 'sample'}"
        n = self._samples.get(key, 0) + 1
        self._samples[key] = n
        w = self._w()
        if w is not None:
            w.add_audio(f"{key}_{n}", torch.from_numpy(data.mean(axis=1)), self.global_step, sample_rate=sr)
            w.flush()

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.flush()
                self._writer.close()
                self._writer = None


class TensorBoardEvents:
    """An event writer that also mirrors each event into TensorBoard (same emit/close interface)."""

    def __init__(self, events, run: Path):
        self.events = events
        self.sink = TensorBoardSink(Path(run) / FOLDER)
        self._told = False

    def emit(self, event_type: str, **fields: Any) -> dict:
        record = self.events.emit(event_type, **fields)
        self.sink.handle(record if isinstance(record, dict) else {"type": event_type, **fields})
        if self.sink.failure and not self._told:
            self._told = True
            self.events.emit("log", level="warning", tag="WARNING",
                             msg=f"TensorBoard files are not written ({self.sink.failure}); events.jsonl is complete")
        return record

    def close(self) -> None:
        self.sink.close()
        self.events.close()

    def __getattr__(self, name: str):
        return getattr(self.events, name)
