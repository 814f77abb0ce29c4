"""Home: projects (a dataset and its runs) and runs found on disk with their live state.

Enter opens the selection (a dataset goes to Review, a run to Training); a run that is still
going, started from the CLI, another studio or before an SSH drop, is attached to the same way.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.messages import ProjectChanged
from tui.runmodel import fmt_duration
from tui.screens.base import StudioScreen
from tui.studio import RUN_JOBS, dataset_summary, job_line, job_state, quick_run_summary, run_dataset
from tui.widgets.dialogs import Choose

STATE_STYLE = {"training": "bold green", "preparing": "cyan", "stopping": "yellow", "stopped": "yellow",
               "finished": "green", "failed": "bold red", "new": "dim"}


class HomeScreen(StudioScreen):
    MODE = "home"
    BINDINGS = [
        # priority: the table's own Enter would hide this one from the footer
        Binding("enter", "open", "Open", id="home.open", show=True, priority=True),
        Binding("a", "attach", "Attach", id="home.attach"),
        Binding("n", "new", "New project", id="home.new"),
        Binding("t", "train", "Train it", id="home.train"),
        Binding("f", "refresh", "Refresh", show=False, id="home.refresh"),  # it refreshes every 3 s
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []

    def compose_body(self) -> ComposeResult:
        with Vertical(id="home-body"):
            yield Static(id="home-head", classes="hint")
            yield DataTable(id="home-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="home-detail", classes="hint")

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        t.add_column("", key="kind", width=2)
        t.add_column("name", key="name", width=20)  # the columns fit 80 columns (no sideways scrolling)
        t.add_column("state", key="state", width=10)
        t.add_column("progress", key="progress", width=14)
        t.add_column("best / clips", key="best", width=12)
        t.add_column("updated", key="updated")
        self.refresh_list()
        self.set_interval(3.0, self._poll)

    def on_screen_resume(self) -> None:
        self.refresh_list()

    @on(ProjectChanged)
    def project_changed(self, message: ProjectChanged) -> None:
        self.refresh_list()

    def _poll(self) -> None:
        # the scan reads every run's events tail: only while Home is the screen shown
        if self.app.current_mode == self.MODE:
            self.refresh_list()

    @work(thread=True, exclusive=True, group="home-scan")
    def refresh_list(self) -> None:
        st = self.app.studio
        rows = []
        runs = st.find_runs()
        run_by_ds: dict[str, list] = {}
        for r in runs:
            d = run_dataset(r)
            run_by_ds.setdefault(str(d.resolve()) if d else "", []).append(r)
        for d in st.find_datasets():
            s = dataset_summary(d)
            rows.append({"kind": "dataset", "path": d, "summary": s})
            for r in sorted(run_by_ds.pop(str(d), []), key=lambda p: p.name):
                rows.append(_run_row(r, child=True))
        for rs in run_by_ds.values():
            for r in rs:
                rows.append(_run_row(r, child=False))
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[dict]) -> None:
        t = self.query_one(DataTable)
        keep = t.cursor_row
        selected = self.rows[keep]["path"] if self.rows and 0 <= keep < len(self.rows) else False
        self.rows = rows
        t.clear()
        now = time.time()
        root = self.app.studio.root
        # two datasets of one name: the one from another workspace says whose; two inside say where
        names = [r["path"].name for r in rows if r["kind"] == "dataset" and r["path"].is_relative_to(root)]
        for row in rows:
            s = row["summary"]
            if row["kind"] == "dataset":
                name = Text(row["path"].name, style="bold")
                if not row["path"].is_relative_to(root):  # another workspace's: say whose
                    name.append(f" ↗{row['path'].parent.parent.name or row['path'].parent}", style="italic")
                elif names.count(row["path"].name) > 1:
                    name.append(f" ({row['path'].parent.name})", style="italic")
                mins = s["seconds"] / 60
                state = Text("ready" if s["clips"] else "empty", style="green" if s["clips"] else "dim")
                progress = f"{mins:.1f} min speech" if s["ok"] else "–"
                best = f"{s['train']}+{s['eval']} clips"
                updated = ""
                kind = "▣"
            else:
                name = Text(("  └ " if row.get("child") else "") + row["path"].name)
                stn = s["state"]
                state = Text(("● " if s["alive"] else "") + stn, style=STATE_STYLE.get(stn, ""))
                progress = (f"ep {(s['epoch'] or 0) + 1}/{s['epochs']} gs {s['global_step']}"
                            if s.get("global_step") is not None else "–")
                if row["jobs"] and not s["alive"]:   # a listening test or export of the run going on
                    kind, js = next(iter(row["jobs"].items()))
                    p = js.get("progress") or {}
                    progress = Text(f"● {kind}" + (f" {p['done']}/{p['total']}" if p.get("total") else ""),
                                    style="green")
                b = s.get("best")
                best = f"{b:.4f}" if isinstance(b, (int, float)) else (b or "–")
                updated = (fmt_duration(now - s["updated"]) + " ago") if s.get("updated") else ""
                kind = "▶"
            t.add_row(kind, name, state, progress, best, updated)
        if selected is not None:
            for i, row in enumerate(rows):
                if row["path"] == selected:
                    t.move_cursor(row=i)
                    break
        n_alive = len(self.running())
        head = Text()
        head.append(f"Workspace {self.app.studio.root}", style="bold")
        n_ds, n_runs = sum(r["kind"] == "dataset" for r in rows), sum(r["kind"] == "run" for r in rows)
        head.append(f"  ·  {n_ds} project{'s' * (n_ds != 1)}, {n_runs} run{'s' * (n_runs != 1)}, "
                    f"{n_alive} running")
        self.query_one("#home-head", Static).update(head)
        if not rows:
            self.query_one("#home-detail", Static).update(
                "Nothing here yet. Press n to build a dataset from your recordings (2 Prep).")
        else:
            self._detail()
        self.refresh_bindings()

    def _current(self) -> dict | None:
        t = self.query_one(DataTable)
        if not self.rows or t.cursor_row is None or not (0 <= t.cursor_row < len(self.rows)):
            return None
        return self.rows[t.cursor_row]

    @on(DataTable.RowSelected)
    def _selected(self, event) -> None:
        self.action_open()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event) -> None:
        self._detail()
        self.refresh_bindings()

    def _detail(self) -> None:
        row = self._current()
        d = self.query_one("#home-detail", Static)
        if row is None:
            d.update("")
            return
        s = row["summary"]
        if row["kind"] == "dataset":
            where = "" if row["path"].is_relative_to(self.app.studio.root) else "  (outside this workspace)"
            d.update(f"{row['path']}{where}\nEnter: review clips · t: set training parameters")
        else:
            msg = f"{row['path']}\n{s['state']}" + (f": {s['reason']}" if s.get("reason") else "")
            if row["jobs"] and not s.get("alive"):
                msg += "; " + ", ".join(job_line(k, js) for k, js in row["jobs"].items())
                msg += "\nEnter/a: open it in Results (S stops it)"
            else:
                msg += "\nEnter/a: attach and follow it" if s.get("alive") else "\nEnter: open (curves, results)"
            n = len(self.running())
            if n and not (s.get("alive") or row["jobs"]):
                msg += f" · a: attach to the {'run' if n == 1 else f'{n} runs'} going on"
            d.update(msg)

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        row = self._current() if self.is_mounted else False
        if action == "attach":
            return True if self.running() else False
        if action in ("open", "train"):
            return True if row else False
        return True

    def action_open(self) -> None:
        row = self._current()
        if row is None:
            return
        if row["kind"] == "dataset":
            self.app.set_project(dataset=row["path"])
            self.app.action_goto("review")
        else:
            self.attach_run(row)

    def running(self) -> list[dict]:
        """Runs going on: training, or a listening test or export of the run."""
        return [r for r in self.rows if r["kind"] == "run" and (r["summary"].get("alive") or r["jobs"])]

    def action_attach(self) -> None:
        """Attach to the run going on: the only one, or the one picked (the cursor's first)."""
        row, running = self._current(), self.running()
        if len(running) == 1:
            self.attach_run(running[0])
        elif running:
            def done(i: int | None) -> None:
                if i is not None:
                    self.attach_run(running[i])

            self.app.push_screen(Choose("Attach to which running run?",
                                        [f"{r['path'].name}  ({_going(r)}, {r['path'].parent})"
                                         for r in running], selected=running.index(row) if row in running else 0),
                                 done)

    def attach_run(self, row: dict) -> None:
        """Open the run: Training follows its training, Results its listening test or export."""
        d = run_dataset(row["path"])
        self.app.set_project(dataset=d if d and d.is_dir() else None, run=row["path"])
        self.app.action_goto("results" if row["jobs"] and not row["summary"].get("alive") else "train")

    def action_train(self) -> None:
        row = self._current()
        if row is None:
            return
        d = row["path"] if row["kind"] == "dataset" else run_dataset(row["path"])
        if d:
            self.app.set_project(dataset=d, follow=False)
        self.app.action_goto("params")

    def action_new(self) -> None:
        self.app.new_project()

    def action_refresh(self) -> None:
        self.refresh_list()


def _run_row(run, child: bool) -> dict:
    """A run's row: its training summary and its listening test / export jobs still running."""
    jobs = {kind: js for kind in RUN_JOBS if (js := job_state(kind, run)) and js["running"]}
    return {"kind": "run", "path": run, "summary": quick_run_summary(run), "child": child, "jobs": jobs}


def _going(row: dict) -> str:
    s = row["summary"]
    return s["state"] if s.get("alive") else ", ".join(job_line(k, js) for k, js in row["jobs"].items())
