"""Results: the run's checkpoints with their eval loss, the A/B samples, export to
models/xtts/<name>/ (`xtts-ft export` in a child process)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.messages import JobFinished, ProjectChanged
from tui.screens.base import StudioScreen
from tui.widgets.dialogs import Prompt


class ResultsScreen(StudioScreen):
    MODE = "results"
    BINDINGS = [
        Binding("x", "export", "Export", id="results.export"),
        Binding("p", "play", "Play sample", id="results.play"),
        Binding("f", "refresh", "Refresh", id="results.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.samples: list[dict] = []
        self.drawn = -1
        self.exporting = False

    def compose_body(self) -> ComposeResult:
        with Vertical(id="results-body"):
            yield Static(id="results-head")
            yield DataTable(id="ckpts", cursor_type="row", zebra_stripes=True)
            yield Static("A/B samples (p plays the selected one)", classes="title")
            yield DataTable(id="samples", cursor_type="row", zebra_stripes=True)
            yield Static(id="results-note", classes="hint")

    def on_mount(self) -> None:
        c = self.query_one("#ckpts", DataTable)
        for key, w in (("checkpoint", 28), ("step", 6), ("epoch", 5), ("eval loss", 9), ("size", 8), ("why", 10)):
            c.add_column(key, key=key, width=w)
        s = self.query_one("#samples", DataTable)
        for key, w in (("variant", 10), ("file", 24), ("text", 32)):  # fits 80 columns
            s.add_column(key, key=key, width=w)
        self.set_interval(1.0, self.tick)
        self.tick()

    def on_screen_resume(self) -> None:
        self.drawn = -1
        self.tick()

    @on(ProjectChanged)
    def _project(self, message: ProjectChanged) -> None:
        self.drawn = -1

    def tick(self) -> None:
        m = self.app.run_model
        if m.version == self.drawn or self.app.current_mode != self.MODE:
            return  # unchanged, or not shown (on_screen_resume catches up)
        with m.lock:
            self.drawn = m.version
            run = m.run
            evals = list(m.evals)
            ck = sorted(m.checkpoints.values(), key=lambda c: c.get("global_step") or 0)
            best = dict(m.best) if m.best else None
            samples = list(m.samples)
            state = m.shown_state()
        head = self.query_one("#results-head", Static)
        if run is None:
            head.update("No run open: start one in 4 Params or open one from 1 Home.")
            return
        self.set_context(f"run {run.name}")

        def eval_at(step):
            cand = [e for e in evals if e[0] <= (step or 0) and e[2] is not None]
            return cand[-1][2] if cand else None

        rows = []
        if best and best.get("path"):
            rows.append({"path": best["path"], "label": "best_model.pth ★", "step": best.get("global_step"),
                         "epoch": best.get("epoch"), "loss": best.get("loss"), "why": "best eval",
                         "size": _size(best["path"]), "choice": "best"})
        for c in reversed(ck):
            rows.append({"path": c["path"], "label": Path(c["path"]).name, "step": c.get("global_step"),
                         "epoch": c.get("epoch"), "loss": eval_at(c.get("global_step")), "why": c.get("reason"),
                         "size": c.get("size_bytes"), "choice": c["path"]})
        self.rows = [r for r in rows if Path(r["path"]).exists() or r["choice"] == "best"]
        t = self.query_one("#ckpts", DataTable)
        t.clear()
        for r in self.rows:
            missing = not Path(r["path"]).exists()
            t.add_row(Text(r["label"], style="bold green" if r["choice"] == "best" else ""), str(r["step"] or "–"),
                      str((r["epoch"] or 0) + 1) if r["epoch"] is not None else "–",
                      f"{r['loss']:.4f}" if isinstance(r["loss"], (int, float)) else "–",
                      f"{r['size'] / 1e6:.0f} MB" if r.get("size") else ("missing" if missing else "–"),
                      r["why"] or "")
        self.samples = samples
        s = self.query_one("#samples", DataTable)
        s.clear()
        for smp in samples:
            s.add_row(smp.get("variant", ""), Path(str(smp.get("path"))).name, smp.get("text", ""))
        head.update(Text(f"{run.name}: {state}, {len(self.rows)} checkpoint(s), {len(samples)} sample(s). "
                         f"x exports the selected checkpoint to models/xtts/<name>/", no_wrap=True,
                         overflow="ellipsis"))
        if not samples:
            self.query_one("#results-note", Static).update(
                "No samples yet: the engine writes base and finetuned samples when training ends.")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "export":
            return True if self.rows and not self.exporting else False
        if action == "play":
            return True if self.samples else False
        return True

    def action_refresh(self) -> None:
        self.drawn = -1
        self.tick()

    def action_export(self) -> None:
        t = self.query_one("#ckpts", DataTable)
        if not self.rows:
            return
        row = self.rows[t.cursor_row if t.cursor_row is not None and t.cursor_row < len(self.rows) else 0]
        run = self.app.run_model.run
        default = run.name

        def done(name: str | None) -> None:
            if not name:
                return
            out = self.app.studio.models_dir / name.strip()
            if out.exists() and any(out.iterdir()):
                self.error("Export", f"{out} exists and is not empty: choose another name.")
                return
            self.exporting = True
            self.refresh_bindings()
            self.notify(f"Exporting {row['label']} to {out}…", title="Export")
            self._export(run, out, row["choice"])

        self.app.push_screen(Prompt("Export as models/xtts/<name>", default,
                                    help=f"Checkpoint: {row['label']}. The folder gets the six model files "
                                         "(AllTalk / coqui-tts layout), reference clips and a README.",
                                    ok="Export"), done)

    @work(thread=True, exclusive=True, group="export")
    def _export(self, run: Path, out: Path, choice: str) -> None:
        code, output = self.app.studio.run_engine(["export", str(run), "--out", str(out), "--checkpoint", choice],
                                                  timeout=600)
        self.post_message(JobFinished("export", code, output, {"out": str(out)}))

    @on(JobFinished)
    def _job(self, message: JobFinished) -> None:
        if message.kind != "export":
            return
        self.exporting = False
        self.refresh_bindings()
        lines = [x for x in message.output.splitlines() if x.strip()]
        if message.code == 0:
            self.notify(f"Exported to {message.data['out']}", title="Export done", timeout=10)
            self.query_one("#results-note", Static).update("\n".join(export_summary(lines)))
        else:
            self.error("Export failed", lines[-1] if lines else f"exit code {message.code}")

    def action_play(self) -> None:
        s = self.query_one("#samples", DataTable)
        if not self.samples:
            return
        smp = self.samples[s.cursor_row if s.cursor_row is not None and s.cursor_row < len(self.samples) else 0]
        from tui.audio import play

        play(self.app, smp.get("path") or "", Path(str(smp.get("path") or "")).name)


def export_summary(lines: list[str], n: int = 2) -> list[str]:
    """The export's own summary ("[MODEL] exported ..." and its "- ..." lines), not whatever a
    library printed last (a transformers warning, say)."""
    for i, line in enumerate(lines):
        if line.startswith("[MODEL] exported"):
            return [line] + [x for x in lines[i + 1:] if x.startswith("- ")][:n - 1]
    return lines[-n:]


def _size(path: str) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None
