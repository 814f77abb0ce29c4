"""The xtts-ft terminal studio: a Textual app over the engine.

It never trains or transcribes itself: prep and training run as detached child processes
(`python -m engine ...`), followed only through their events files. `make_app()` builds the app
for the console script and for the tests alike.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import Static
from textual.worker import get_current_worker

from tui.messages import GpuInfo, ProjectChanged
from tui.runmodel import EventTail, PrepModel, RunModel
from tui.studio import Studio

MIN_WIDTH, MIN_HEIGHT = 80, 24


class TooSmall(ModalScreen):
    """Shown instead of a garbled layout when the terminal is below 80x24."""

    DEFAULT_CSS = """
    TooSmall { align: center middle; background: $background; }
    TooSmall > Static { width: auto; height: auto; padding: 0 1; text-align: center; }
    """
    BINDINGS = [Binding("q,ctrl+q", "app.quit", "Quit", id="quit")]

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.shown_size = size

    def compose(self) -> ComposeResult:
        yield Static(id="msg")

    def on_mount(self) -> None:
        self.update_size(self.shown_size)

    def update_size(self, size: tuple[int, int] | None = None) -> None:
        w, h = self.shown_size = tuple(size or self.app.size)
        self.query_one("#msg", Static).update(
            f"Terminal too small: {w}x{h}.\nxtts-ft needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n"
            "Enlarge the window (training runs are not affected).\nq quits")


def text_focus(screen) -> bool:
    """True when the focused widget takes typed characters (an Input or a TextArea)."""
    from textual.widgets import Input, TextArea

    return isinstance(getattr(screen, "focused", None), (Input, TextArea))


def _screen(spec: str) -> Screen:
    import importlib

    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)()


class XttsStudio(App):
    TITLE = "xtts-ft studio"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    MODES = {
        "home": partial(_screen, "tui.screens.home:HomeScreen"),
        "prep": partial(_screen, "tui.screens.prep:PrepScreen"),
        "review": partial(_screen, "tui.screens.review:ReviewScreen"),
        "params": partial(_screen, "tui.screens.params:ParamsScreen"),
        "train": partial(_screen, "tui.screens.training:TrainingScreen"),
        "results": partial(_screen, "tui.screens.results:ResultsScreen"),
    }
    DEFAULT_MODE = "home"
    BINDINGS = [
        Binding("1", "goto('home')", "Home", show=False, id="goto.home"),
        Binding("2", "goto('prep')", "Prep", show=False, id="goto.prep"),
        Binding("3", "goto('review')", "Review", show=False, id="goto.review"),
        Binding("4", "goto('params')", "Params", show=False, id="goto.params"),
        Binding("5", "goto('train')", "Train", show=False, id="goto.train"),
        Binding("6", "goto('results')", "Results", show=False, id="goto.results"),
        Binding("f1", "goto('home')", "Home", show=False),
        Binding("f2", "goto('prep')", "Prep", show=False),
        Binding("f3", "goto('review')", "Review", show=False),
        Binding("f4", "goto('params')", "Params", show=False),
        Binding("f5", "goto('train')", "Train", show=False),
        Binding("f6", "goto('results')", "Results", show=False),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help"),
        # in a text field q and 1-6 are text: the footer then shows ctrl+q, the step bar F1-F6
        Binding("ctrl+q", "quit_typing", "Quit", priority=True, id="quit.ctrl"),
        Binding("ctrl+q", "quit_anywhere", "Quit", show=False, priority=True),
    ]

    def __init__(self, root: str | Path | None = None, start: str | None = None, run: str | Path | None = None,
                 dataset: str | Path | None = None, poll: float = 0.25, query_gpu: bool = True) -> None:
        self.studio = Studio(root)
        if dataset:
            self.studio.state["dataset"] = self.studio.rel(Path(dataset).resolve())
        if run:
            self.studio.state["run"] = self.studio.rel(Path(run).resolve())
        self.poll = poll
        self.query_gpu = query_gpu
        self.run_model = RunModel()
        self.prep_model = PrepModel()
        self.prep_proc = None
        self.prep_dataset: Path | None = None
        self.gpu: dict | None = None
        self._start = start
        super().__init__()

    # ------------------------------------------------------------------ start / stop
    def on_mount(self) -> None:
        if self.query_gpu:
            self.query_gpu_info()
        else:
            self.gpu = {"gpu": {"available": False, "reason": "not queried"}, "ram": None}
        if self.studio.run:
            self.follow_run(self.studio.run)
        self.attach_prep()  # a prep job still running from an earlier session
        self.watch_jobs()   # listening tests and exports of every run: still running, or ended meanwhile
        start = self._start or "home"
        if start != "home":
            self.call_after_refresh(self.switch_mode, start)
        self.call_after_refresh(self._check_size)

    def on_resize(self, event) -> None:
        # this handler runs before App._on_resize stores the new size: self.size is still the old one
        self._check_size(event.size)

    def _check_size(self, size=None) -> None:
        w, h = size or self.size
        small = w < MIN_WIDTH or h < MIN_HEIGHT
        top = self.screen
        if small and not isinstance(top, TooSmall):
            self.push_screen(TooSmall((w, h)))
        elif small and isinstance(top, TooSmall):
            top.update_size((w, h))
        elif not small and isinstance(top, TooSmall):
            self.pop_screen()

    # ------------------------------------------------------------------ navigation
    def action_goto(self, mode: str) -> None:
        if isinstance(self.screen, TooSmall):
            return
        if self.current_mode != mode:
            self.switch_mode(mode)

    def set_project(self, dataset: Path | None = None, run: Path | None = None, follow: bool = True) -> None:
        """Make a dataset and/or run the current one; remembered for the next session."""
        self.studio.set_current(dataset=dataset, run=run)
        if run is not None and follow:
            self.follow_run(self.studio.run)
        self.studio.save()
        msg = ProjectChanged(self.studio.dataset, self.studio.run)
        for screen in self._all_screens():
            screen.post_message(ProjectChanged(msg.dataset, msg.run))

    def new_project(self) -> None:
        """Home's `n`: the Prep form starts empty (no sources, a new dataset folder), nothing is
        current; runs still going keep going (Home lists them)."""
        self.studio.new_project()
        self.workers.cancel_group(self, "follow-run")
        with self.run_model.lock:
            self.run_model.run = None
            self.run_model.clear()
            self.run_model.version += 1
        for screen in self._all_screens():
            screen.post_message(ProjectChanged(None, None))
            if hasattr(screen, "reset_project"):
                screen.reset_project()
        self.action_goto("prep")

    def _all_screens(self) -> list[Screen]:
        out = []
        for stack in self._screen_stacks.values():
            out.extend(stack)
        return out

    # ------------------------------------------------------------------ following a run
    def follow_run(self, run: Path) -> None:
        """Replay R/events.jsonl from the start, then follow it live (thread worker on the App,
        so it survives screen changes). Only the model is touched here; screens redraw on a timer."""
        run = Path(run).resolve()
        with self.run_model.lock:
            self.run_model.run = run
            self.run_model.clear()
        self._follow(run)

    @work(thread=True, exclusive=True, group="follow-run", name="follow-run")
    def _follow(self, run: Path) -> None:
        from engine.train import process

        worker = get_current_worker()
        model = self.run_model
        tail = EventTail(run / "events.jsonl")
        last_check = 0.0
        while not worker.is_cancelled:
            events = tail.poll()
            if tail.reset:
                tail.reset = False
                with model.lock:
                    model.clear()
            if events:
                model.absorb_all(events)
                if not tail.at_end():
                    continue  # still replaying: no sleep
            if model.replaying:
                with model.lock:
                    model.replaying = False
                    model.version += 1
            now = time.monotonic()
            if now - last_check > 2.0:
                last_check = now
                alive = process.process_alive(run)
                with model.lock:
                    if model.alive != alive:
                        model.alive = alive
                        model.version += 1
            time.sleep(self.poll)

    # ------------------------------------------------------------------ prep jobs
    def start_prep(self, args: list[str], dataset: Path) -> None:
        from engine import locks
        from engine.jobs import JobFiles

        dataset.mkdir(parents=True, exist_ok=True)
        files = JobFiles("prep", dataset)
        offset = files.events.stat().st_size if files.events.exists() else 0
        log = dataset / "prep_tui.log"
        with self.prep_model.lock:
            self.prep_model.clear()
            self.prep_model.state = "starting"
        self.prep_dataset = dataset
        holder = locks.holder(dataset)
        if holder is not None:
            # another prep (or a review save) holds the dataset: say who, start nothing
            with self.prep_model.lock:
                self.prep_model.state = "failed"
                self.prep_model.reason = locks.busy_message(dataset, holder)
                self.prep_model.version += 1
            self.prep_proc = None
            return
        log_offset = log.stat().st_size if log.exists() else 0
        with self.prep_model.lock:
            self.prep_model.alive = True
        self.prep_proc = self.studio.spawn(args, log)
        self.studio.remember_dataset(dataset.resolve())
        self._follow_prep(files, offset, self.prep_proc, log, log_offset)

    def attach_prep(self) -> bool:
        """Follow a prep job that is still running although this studio did not start it (a studio
        restarted, or one in another terminal): found by its prep_process.json, current dataset first."""
        from engine.jobs import JobFiles
        from engine.jobs import process as jp

        if self.prep_model.alive:
            return False
        current = self.studio.dataset
        folders = ([current] if current else []) + [d for d in self.studio.find_datasets() if d != current]
        for d in folders:
            files = JobFiles("prep", Path(d))
            if jp.alive(files.process):
                info = jp.read_process(files.process) or {}
                with self.prep_model.lock:
                    self.prep_model.clear()
                    self.prep_model.alive = True
                self.prep_dataset = Path(d)
                self.prep_proc = None
                self._follow_prep(files, int(info.get("offset") or 0), None)
                return True
        return False

    # ------------------------------------------------------------------ listen / export jobs of every run
    @work(thread=True, exclusive=True, group="watch-jobs", name="watch-jobs")
    def watch_jobs(self) -> None:
        """The listening tests and exports of every run, found by their process.json like prep jobs: the
        ones still running (a studio closed meanwhile, or started from the CLI) are announced and followed
        to their end; the ones that ended while the studio was closed are announced once. Home lists the
        running ones (a opens them in Results, where S stops them)."""
        from tui.studio import RUN_JOBS, job_state

        worker = get_current_worker()
        since = self.studio.get("jobs_checked")   # when the last studio looked (absent: report no old ends)
        running = {}
        for run in self.studio.find_runs():
            for kind in RUN_JOBS:
                s = job_state(kind, run)
                if s is None:
                    continue
                if s["running"]:
                    running[(kind, run)] = s
                    self.call_from_thread(self._job_news, kind, run, s)
                elif since is not None and (s.get("updated") or 0) > since:
                    self.call_from_thread(self._job_news, kind, run, s, " while the studio was closed")
        self.call_from_thread(self.studio.set, "jobs_checked", time.time())
        last = time.monotonic()
        while running and not worker.is_cancelled:
            time.sleep(self.poll)
            if time.monotonic() - last < 2.0:
                continue
            last = time.monotonic()
            for (kind, run) in list(running):
                s = job_state(kind, run)
                if s is None or not s["running"]:
                    del running[(kind, run)]
                    if s is not None:
                        self.call_from_thread(self._job_news, kind, run, s)

    def _job_news(self, kind: str, run: Path, s: dict, when: str = "") -> None:
        from tui.studio import RUN_JOBS

        what = f"{RUN_JOBS[kind].capitalize()} of {Path(run).name}"
        if s["running"]:
            p, out = s.get("progress") or {}, (s.get("result") or {}).get("out")
            doing = (f"{p['done']}/{p['total']} sentences done. " if p.get("total") else
                     f"Writing {out}. " if out else "")
            self.notify(f"{doing}Home (1), then a: Results follows it, S stops it.",
                        title=f"{what} still running", timeout=15)
            return
        if not self.job_reported(kind, run, s):
            return
        res = s.get("result") or {}
        detail = (res.get("summary") or [None])[0] if s["state"] == "finished" and kind == "export" else s.get("reason")
        self.notify(detail or "Results shows it.", title=f"{what} {s['state']}{when}", timeout=15,
                    severity="error" if s["state"] == "failed" else "information")

    def job_reported(self, kind: str, run: Path, s: dict) -> bool:
        """True the first time the end of this job (run, kind, pid) is to be reported, by whichever
        part of the studio sees it first; remembered, so a later studio does not report it again."""
        key = f"{kind}:{self.studio.rel(Path(run))}"
        seen = self.studio.state.setdefault("jobs_reported", {})
        if seen.get(key) == s.get("pid"):
            return False
        seen[key] = s.get("pid")
        self.studio.save()
        return True

    def on_unmount(self) -> None:
        self.studio.set("jobs_checked", time.time())   # a job that ends after this ended "while closed"

    @work(thread=True, exclusive=True, group="follow-prep", name="follow-prep")
    def _follow_prep(self, files, offset: int, proc, log: Path | None = None, log_offset: int = 0) -> None:
        """Follow a prep job's events until its process ends: `proc` when this studio started it
        (its exit code), else its prep_process.json (re-attached)."""
        from engine.jobs import process as jp
        from engine.jobs import states

        worker = get_current_worker()
        model = self.prep_model
        tail = EventTail(files.events, offset)
        last_check = time.monotonic()
        while not worker.is_cancelled:
            events = tail.poll()
            if events:
                model.absorb_all(events)
            code, ended = None, False
            if proc is not None:
                code = proc.poll()
                ended = code is not None
            elif time.monotonic() - last_check > 1.0:
                last_check = time.monotonic()
                ended = not jp.alive(files.process)
            if ended:
                events = tail.poll()
                model.absorb_all(events)
                with model.lock:
                    model.alive = False
                    if not states.is_final(model.state):
                        model.state = "failed"
                        model.reason = (_last_reason(log, log_offset, "xtts-ft prep: ") if log else None) or (
                            f"xtts-ft prep exited with code {code} (see prep_tui.log)" if code is not None
                            else f"the prep {states.DIED} (see {files.log})")
                    model.version += 1
                return
            time.sleep(self.poll)

    def prep_running(self) -> bool:
        return bool(self.prep_model.alive)

    def stop_prep(self) -> bool:
        """Ask the prep job to stop (SIGINT): it saves the sources done so far and ends `stopped`."""
        import signal

        from engine.jobs import JobFiles
        from engine.jobs import process as jp

        p = self.prep_proc
        if p is not None:
            if p.poll() is not None:
                return False
            p.send_signal(signal.SIGINT)
            return True
        if self.prep_dataset is None or not self.prep_model.alive:
            return False
        try:
            jp.stop(JobFiles("prep", self.prep_dataset).process)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    # ------------------------------------------------------------------ hardware
    @work(thread=True, exclusive=True, group="gpu", name="gpu-info")
    def query_gpu_info(self) -> None:
        """engine.gpu.gpu_info() in a child process, so this process never imports torch/CUDA."""
        import subprocess
        import sys

        code = ("import json; from engine.gpu import gpu_info, ram_sample; "
                "g = gpu_info(); "
                "g.get('available') and g.update(count=__import__('torch').cuda.device_count()); "
                "print(json.dumps({'gpu': g, 'ram': ram_sample()}))")
        from engine.jobs import engine_env

        try:
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90,
                               stdin=subprocess.DEVNULL, env=engine_env())
            info = json.loads(p.stdout.strip().splitlines()[-1])
        except Exception as exc:  # noqa: BLE001 - "no GPU" is a fine answer
            info = {"gpu": {"available": False, "reason": f"GPU query failed ({type(exc).__name__})"}, "ram": None}
        self.call_from_thread(self._set_gpu, info)

    def _set_gpu(self, info: dict) -> None:
        self.gpu = info
        for screen in self._all_screens():
            screen.post_message(GpuInfo(info))

    # ------------------------------------------------------------------ command palette
    def get_system_commands(self, screen: Screen):
        for cmd in super().get_system_commands(screen):
            if cmd.title != "Keys":  # Textual's generic key panel: the studio's help replaces it
                yield cmd
        yield SystemCommand("Help", "What this screen is for, its keys and the keys that work everywhere (key ?)",
                            self.action_help)
        from tui.widgets.common import STEPS

        for mode, key, label in STEPS:
            yield SystemCommand(f"Go to {label}", f"Open the {label} screen (key {key})",
                                partial(self.action_goto, mode))
        # the current screen's own actions, with their bindings' descriptions
        for binding in getattr(screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                action = binding.action
                if screen.check_action(action.split("(")[0], ()) is False:
                    continue
                yield SystemCommand(f"{binding.description}",
                                    f"{binding.tooltip + ' · ' if binding.tooltip else ''}key {binding.key}",
                                    partial(self.run_action, action, screen))

    def action_help(self) -> None:
        from tui.widgets.help import HelpScreen

        if not isinstance(self.screen, (TooSmall, HelpScreen)):
            base = self.screen if not isinstance(self.screen, ModalScreen) else self.screen_stack[0]
            self.push_screen(HelpScreen(base))

    def action_quit(self) -> None:
        # quitting never stops a training run or a prep job: they are separate processes
        self.exit()

    def action_quit_anywhere(self) -> None:
        self.exit()

    def action_quit_typing(self) -> None:
        self.exit()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Show the keys that work where the focus is: q and 1-6 type into a text field, so
        there the footer offers ctrl+q (F1-F6 switch screens everywhere, see the step bar)."""
        if action == "quit":
            return not text_focus(self.screen)
        if action == "quit_typing":  # the shown ctrl+q; a hidden one works everywhere
            return text_focus(self.screen)
        if action == "help":
            return not text_focus(self.screen) and not isinstance(self.screen, ModalScreen)
        return True


def make_app(root: str | Path | None = None, start: str | None = None, run: str | Path | None = None,
             dataset: str | Path | None = None, poll: float = 0.25, query_gpu: bool = True) -> XttsStudio:
    return XttsStudio(root=root, start=start, run=run, dataset=dataset, poll=poll, query_gpu=query_gpu)


def run_app(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="xtts-ft", add_help=False)
    ap.add_argument("--workspace")
    ap.add_argument("--run")
    args, _ = ap.parse_known_args(argv or [])
    app = make_app(root=args.workspace, run=args.run, start="train" if args.run else None)
    app.run()
    return 0


def _last_reason(log: Path | None, offset: int, prefix: str) -> str | None:
    """The one-line reason a job that ended before its first event printed (its last `prefix` line)."""
    if log is None:
        return None
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    said = [ln[len(prefix):].strip() for ln in lines if ln.startswith(prefix)]
    return said[-1] if said else None
