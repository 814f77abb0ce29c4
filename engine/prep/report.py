"""Tagged output ([INFO] [MODEL] [GPU] [AUDIO] [SEG] [DUP] [DATA] [WARNING]) and progress.

A Reporter sends every message to up to three places: a rich console (people), a plain log
file (later reading) and an EventWriter (the TUI and tests). Engine code only calls the
Reporter; it never prints.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engine.events import EventWriter

TAG_STYLES = {
    "INFO": "cyan",
    "MODEL": "magenta",
    "GPU": "green",
    "AUDIO": "blue",
    "SEG": "bright_blue",
    "DUP": "yellow",
    "DATA": "bright_cyan",
    "TRAIN": "bright_green",
    "ERROR": "bold red",
}


class Reporter:
    def __init__(
        self,
        console: Console | None = None,
        log_path: str | Path | None = None,
        events: EventWriter | None = None,
        show_progress: bool = True,
    ):
        self.console = console
        self.events = events
        self.show_progress = show_progress and console is not None
        self._log = open(log_path, "a", encoding="utf-8") if log_path else None
        self._listeners: list[Callable[[dict], None]] = []
        self.warnings: list[dict] = []
        self.write_error: OSError | None = None    # the first failed write to the log file

    # --- messages ----------------------------------------------------------------
    def add_listener(self, fn: Callable[[dict], None]) -> None:
        self._listeners.append(fn)

    def _dispatch(self, event_type: str, **fields) -> None:
        if self.events is not None:
            self.events.emit(event_type, **fields)
        if self._listeners:
            record = {"type": event_type, **fields}
            for fn in self._listeners:
                fn(record)

    def log(self, tag: str, msg: str, level: str = "info", details: list[str] | None = None, **data) -> None:
        details = details or []
        prefix = f"[WARNING] [{tag}]" if level == "warning" and tag != "WARNING" else f"[{tag}]"
        if level == "error":
            prefix = f"[ERROR] [{tag}]" if tag != "ERROR" else "[ERROR]"
        if self.console is not None:
            style = "bold yellow" if level == "warning" else TAG_STYLES.get(tag, "white")
            if level == "error":
                style = "bold red"
            try:
                self.console.print(f"[{style}]{escape(prefix)}[/] {escape(msg)}", highlight=False, soft_wrap=True)
                for line in details:
                    self.console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
            except OSError as exc:     # the console may be a log file on a full disk (the training worker)
                if self.write_error is None:
                    self.write_error = exc
        if self._log is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            try:
                self._log.write(f"{stamp} {prefix} {msg}\n" + "".join(f"{stamp}   {line}\n" for line in details))
                self._log.flush()
            except OSError as exc:
                # a full disk must not turn a message into a crash; the job reports the disk its own way
                if self.write_error is None:
                    exc.filename = exc.filename or self._log.name
                    self.write_error = exc
        if level == "warning":
            self.warnings.append({"tag": tag, "msg": msg, **data})
        self._dispatch("log", tag=tag, level=level, msg=msg, details=details, **data)

    def info(self, msg: str, tag: str = "INFO", **kw) -> None:
        self.log(tag, msg, **kw)

    def warn(self, msg: str, tag: str = "WARNING", **kw) -> None:
        self.log(tag, msg, level="warning", **kw)

    def error(self, msg: str, tag: str = "ERROR", **kw) -> None:
        self.log(tag, msg, level="error", **kw)

    def event(self, event_type: str, **fields) -> None:
        """A structured event with no console line (summaries, per-file reports)."""
        self._dispatch(event_type, **fields)

    # --- progress ----------------------------------------------------------------
    @contextlib.contextmanager
    def progress(self, stage: str, description: str, total: float | None) -> Iterator["ProgressTask"]:
        bar = None
        if self.show_progress and self.console is not None and self.console.is_terminal:
            bar = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            bar.start()
        task = ProgressTask(self, stage, description, total, bar)
        try:
            yield task
        finally:
            task.finish()
            if bar is not None:
                bar.stop()

    def close(self) -> None:
        if self._log is not None:
            try:
                self._log.close()
            except OSError:
                pass
            self._log = None


class ProgressTask:
    """Advances a rich bar and emits throttled `progress` events (at most ~4 per second)."""

    def __init__(self, reporter: Reporter, stage: str, description: str, total, bar):
        self.reporter, self.stage, self.description, self.total = reporter, stage, description, total
        self.done = 0.0
        self._bar = bar
        self._task_id = bar.add_task(description, total=total) if bar is not None else None
        self._last_emit = 0.0
        reporter._dispatch("progress", stage=stage, description=description, done=0, total=total)

    def advance(self, amount: float = 1.0, description: str | None = None) -> None:
        self.done += amount
        if self._bar is not None:
            self._bar.update(self._task_id, advance=amount, description=description or self.description)
        now = time.monotonic()
        if now - self._last_emit >= 0.25:
            self._last_emit = now
            self.reporter._dispatch(
                "progress", stage=self.stage, description=description or self.description,
                done=round(self.done, 3), total=self.total,
            )

    def finish(self) -> None:
        self.reporter._dispatch(
            "progress", stage=self.stage, description=self.description,
            done=round(self.done, 3), total=self.total, finished=True,
        )
