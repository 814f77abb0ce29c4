"""Follow a run in plain text: the tagged log lines the worker emits, a progress bar per epoch
(on a terminal) or a step line every ~10% of an epoch (in a pipe/log), until a final state."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engine.events import read_events
from engine.jobs import states
from engine.prep.report import TAG_STYLES
from engine.train import process


def _fmt(x, nd=4):
    return "-" if x is None else f"{x:.{nd}f}"


class Follower:
    def __init__(self, run: Path, console: Console | None = None, forward_ctrl_c: bool = True):
        self.run = Path(run)
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.forward = forward_ctrl_c
        self.progress: Progress | None = None
        self.task = None
        self.task_epoch = None
        self.last_printed_step = -1
        self.final: dict | None = None
        self.interrupts = 0

    def _print_log(self, e: dict) -> None:
        tag, level, msg = e.get("tag", "INFO"), e.get("level", "info"), e.get("msg", "")
        prefix = f"[{tag}]"
        style = TAG_STYLES.get(tag, "white")
        if level == "warning":
            prefix, style = (f"[WARNING] [{tag}]" if tag != "WARNING" else "[WARNING]"), "bold yellow"
        elif level == "error":
            prefix, style = (f"[ERROR] [{tag}]" if tag != "ERROR" else "[ERROR]"), "bold red"
        self.console.print(f"[{style}]{escape(prefix)}[/] {escape(msg)}")
        for d in e.get("details") or []:
            self.console.print(f"  {escape(d)}")

    def _step(self, e: dict) -> None:
        spe, step, epoch = e.get("steps_per_epoch") or 0, e.get("step") or 0, e.get("epoch") or 0
        desc = (f"Epoch {epoch + 1}/{e.get('epochs')} loss {_fmt(e.get('loss'))} "
                f"(text_ce {_fmt(e.get('loss_text_ce'))} mel_ce {_fmt(e.get('loss_mel_ce'))})")
        if self.console.is_terminal:
            if self.progress is None:
                self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                         TimeElapsedColumn(), console=self.console, transient=True)
                self.progress.start()
            if self.task is None or self.task_epoch != epoch:
                if self.task is not None:
                    self.progress.remove_task(self.task)
                self.task = self.progress.add_task(desc, total=spe)
                self.task_epoch = epoch
            self.progress.update(self.task, completed=step, total=spe, description=desc)
        else:
            every = max(1, spe // 10)
            if step % every == 0 or step == spe:
                self.console.print(f"[TRAIN] step {step}/{spe} (global {e.get('global_step')}) {desc}"
                                   f" lr {e.get('lr') or 0:.3g} {_fmt(e.get('step_time'), 3)} s/step")

    def handle(self, e: dict) -> None:
        t = e.get("type")
        if t == "log":
            self._print_log(e)
        elif t == "step":
            self._step(e)
        elif t == "state":
            st = e.get("state")
            if st in states.FINAL:
                self.final = e
            msg = f"[INFO] run {st}" + (f": {e['reason']}" if e.get("reason") else "")
            self.console.print(escape(msg), style="bold" if st in states.FINAL else None)
        elif t == "alert" and e.get("kind") == "oom":
            pass  # printed as log lines already
        elif t == "sample":
            self.console.print(f"[TRAIN] sample ({e.get('variant')}): {escape(str(e.get('path')))}")

    def _on_sigint(self, signum, frame):
        self.interrupts += 1
        try:
            process.send_stop(self.run, signal.SIGINT)
            if self.interrupts == 1:
                self.console.print("[bold yellow][INFO] Ctrl-C: the run stops after the current step and writes a "
                                   "checkpoint. Press Ctrl-C again to stop at once.[/]")
            else:
                self.console.print("[bold red][INFO] stopping at once[/]")
        except ProcessLookupError:
            raise KeyboardInterrupt from None

    def follow(self, from_start: bool = True, poll: float = 0.25, stop_when_dead: bool = True) -> int:
        path = self.run / "events.jsonl"
        offset = 0 if from_start else (path.stat().st_size if path.exists() else 0)
        old = None
        if self.forward:
            old = signal.signal(signal.SIGINT, self._on_sigint)
        dead_polls = 0
        try:
            while True:
                events, offset = read_events(path, offset)
                for e in events:
                    self.handle(e)
                if self.final is not None:
                    t0 = time.time()  # let the process finish exiting, so a following command sees it gone
                    while process.process_alive(self.run) and time.time() - t0 < 30:
                        time.sleep(0.1)
                    break
                if stop_when_dead and not process.process_alive(self.run):
                    dead_polls += 1
                    if dead_polls > 8:  # give the last lines time to land
                        events, offset = read_events(path, offset)
                        for e in events:
                            self.handle(e)
                        if self.final is None:
                            self.console.print("[bold red][ERROR] the training process ended without a final "
                                               f"state; see {self.run / 'train.log'}[/]")
                            return 1
                        break
                time.sleep(poll)
        finally:
            if self.progress is not None:
                self.progress.stop()
            if old is not None:
                signal.signal(signal.SIGINT, old)
        return states.EXIT_CODES.get(self.final.get("state"), 1)
