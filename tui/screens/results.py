"""Results: the run's checkpoints with their eval loss, the listening test per checkpoint (base row,
flags, the recommended checkpoint, every test sentence playable), the A/B samples, export to
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
from tui.studio import job_state
from tui.widgets.dialogs import Prompt


class ResultsScreen(StudioScreen):
    MODE = "results"
    BINDINGS = [
        Binding("x", "export", "Export", id="results.export"),
        Binding("p", "play", "Play sample", id="results.play"),
        Binding("f", "refresh", "Refresh", id="results.refresh"),
        Binding("L", "listen", "Listen", id="results.listen",
                tooltip="Run the listening test on the best and last checkpoints and the base (its own job)"),
        Binding("S", "stop_job", "Stop job", id="results.stop_job",
                tooltip="Stop the run's listening job (after the current sentence, finished tests stay) or "
                        "its export (nothing written)"),
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
            yield Static(id="listen-head", classes="title")
            yield DataTable(id="listen", cursor_type="row", zebra_stripes=True)
            yield Static("Samples: A/B, and the highlighted listening test's sentences (p plays)", classes="title")
            yield DataTable(id="samples", cursor_type="row", zebra_stripes=True)
            yield Static(id="results-note", classes="hint")

    def on_mount(self) -> None:
        c = self.query_one("#ckpts", DataTable)
        for key, w in (("checkpoint", 28), ("step", 6), ("epoch", 5), ("eval loss", 9), ("size", 8), ("why", 10)):
            c.add_column(key, key=key, width=w)
        s = self.query_one("#samples", DataTable)
        for key, w in (("variant", 10), ("file", 24), ("text", 32)):  # fits 80 columns
            s.add_column(key, key=key, width=w)
        lt = self.query_one("#listen", DataTable)
        for key, w in (("test", 9), ("step", 5), ("CER", 5), ("WER", 5), ("sim", 5), ("simX", 5), ("MOS", 4),
                       ("flagged", 7), ("flags", 16)):
            lt.add_column(key, key=key, width=w)
        self.listen: list[dict] = []
        self.listen_sig = None
        self.listen_cursor = 0
        self.listen_job: dict | None = None   # the open run's listening job (R/listen_process.json)
        self.export_job: dict | None = None   # the open run's export job (R/export_process.json)
        self.export_seen: dict[str, object] = {}   # run folder -> pid of the last export already reported
        self.set_interval(1.0, self.tick)
        self.tick()

    def on_screen_resume(self) -> None:
        self.drawn = -1
        self.tick()

    @on(ProjectChanged)
    def _project(self, message: ProjectChanged) -> None:
        self.drawn = -1

    def _listen_sig(self, run):
        """Changes when a listening test (in training or from a listen job) writes its result."""
        if run is None:
            return None
        d = Path(run) / "listen"
        try:
            return tuple(sorted((p.parent.name, p.stat().st_mtime) for p in d.glob("*/result.json")))
        except OSError:
            return None

    def _job_state(self, kind: str, run) -> dict | None:
        """The run's listening or export job, from its files: a studio started later re-attaches to a
        running one (shown here, stoppable with S) and sees how the last one ended."""
        return job_state(kind, run)

    def _follow_export(self, run) -> None:
        ej = self._job_state("export", run)
        self.export_job = ej
        key = str(run)
        first = key not in self.export_seen
        if ej is None or ej["running"]:
            self.export_seen.setdefault(key, None)
            if ej and ej["running"] and not self.exporting:
                self.exporting = True            # one started before this studio, or elsewhere
                self.refresh_bindings()
            if ej and ej["running"]:
                res = ej.get("result") or {}
                self.query_one("#results-note", Static).update(
                    Text(f"Exporting {res.get('checkpoint', '')} to {res.get('out', '…')} (its own job; S stops it)"))
            return
        if first or self.export_seen.get(key) == ej["pid"]:
            self.export_seen[key] = ej["pid"]    # how an earlier export ended: not news
            return
        self.export_seen[key] = ej["pid"]
        self.exporting = False
        self.refresh_bindings()
        res = ej.get("result") or {}
        news = self.app.job_reported("export", run, ej)   # once, here or by the studio's watcher
        if ej["state"] == "finished":
            if news:
                self.notify(f"Exported to {res.get('out')}", title="Export done", timeout=10)
            self.query_one("#results-note", Static).update(Text("\n".join((res.get("summary") or [])[:2])))
        elif ej["state"] == "stopped":
            if news:
                self.notify(ej.get("reason") or "Export stopped", title="Export stopped")
            self.query_one("#results-note", Static).update(Text(ej.get("reason") or ""))
        elif news:
            self.error("Export failed", ej.get("reason") or "the export ended without a result")

    def tick(self) -> None:
        m = self.app.run_model
        if self.app.current_mode != self.MODE:
            return
        self._follow_export(m.run)
        js = self._job_state("listen", m.run)
        was = self.listen_job
        if (was and js and was.get("folder") == js.get("folder") and was["running"] and not js["running"]
                and self.app.job_reported("listen", m.run, js)):
            title = {"finished": "Listening test finished", "stopped": "Listening test stopped"}.get(
                js["state"], "Listening test failed")
            self.notify(js.get("reason") or "The table shows every finished test.", title=title,
                        severity="error" if js["state"] == "failed" else "information")
        self.listen_job = js
        sig = (self._listen_sig(m.run), js and (js["state"], js["running"], json_key(js.get("progress"))))
        if m.version == self.drawn and sig == self.listen_sig:
            return  # unchanged, or not shown (on_screen_resume catches up)
        self.listen_sig = sig
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
        bl = Path(run) / "best_listen.pth"
        if bl.is_file():
            info = m.best_listen or {}
            rows.insert(1 if rows and rows[0]["choice"] == "best" else 0,
                        {"path": str(bl), "label": "best_listen.pth ♪", "step": info.get("step"), "epoch": None,
                         "loss": eval_at(info.get("step")), "why": "best listen", "size": _size(str(bl)),
                         "choice": "best-listen"})
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
        self.ab_samples = samples
        self._draw_listen(run)
        self._draw_samples()
        head.update(Text(f"{run.name}: {state}, {len(self.rows)} checkpoint(s), {len(samples)} sample(s). "
                         f"x exports the selected checkpoint to models/xtts/<name>/", no_wrap=True,
                         overflow="ellipsis"))
        if not samples and not self.listen and not self.exporting and not self.export_job:
            self.query_one("#results-note", Static).update(
                "No samples yet: the engine writes base and finetuned samples when training ends.")
        self.refresh_bindings()

    def _draw_listen(self, run) -> None:
        from engine.listen.run import load_results
        from engine.listen.select import recommend

        results = load_results(run)
        rec = recommend(results)
        self.listen = results
        lt = self.query_one("#listen", DataTable)
        lt.clear()

        def f(v, nd=3):
            return "–" if v is None else f"{v:.{nd}f}"[: nd + 2]

        for r in results:
            s = r.get("summary") or {}
            label = r.get("label", "?")
            is_rec = rec is not None and rec["label"] == label
            style = "bold green" if is_rec else ("italic" if label == "base" else "")
            flags = ", ".join(f"{k} {v}" for k, v in (s.get("flags") or {}).items() if v)
            lt.add_row(Text(label + (" ♪" if is_rec else ""), style=style), str(r.get("step") or "–"),
                       f(s.get("cer")), f(s.get("wer")), f(s.get("similarity"), 2), f(s.get("similarity_xtts"), 2),
                       f(s.get("mos"), 2), f"{s.get('flagged', 0)}/{s.get('sentences', 0)}", flags or "none")
        if results:
            self.listen_cursor = min(self.listen_cursor, len(results) - 1)
            lt.move_cursor(row=self.listen_cursor)
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append("Listening test ", style="bold")
        js = self.listen_job
        if js and js["running"]:
            p = js.get("progress") or {}
            done = f" {p.get('done')}/{p.get('total')} sentences" if p.get("total") else ""
            head.append(f"job {js['state']}{done}" + (f" ({p['label']})" if p.get("label") else "")
                        + " – S stops ", style="yellow")
        elif js and js["state"] in ("stopped", "failed"):
            head.append(f"job {js['state']}: {js.get('reason') or ''} ", style="red" if js["state"] == "failed" else "dim")
        if not results and js and js["running"]:
            head.append("– the table fills as each test finishes", style="dim")
        elif not results:
            head.append("– none yet: train with --listen-every, or L runs it now", style="dim")
        elif rec:
            head.append(f"♪ recommended {rec['label']}: {rec['reason']}", style="green")
        else:
            head.append("(base only)", style="dim")
        self.query_one("#listen-head", Static).update(head)

    def _draw_samples(self) -> None:
        samples = [dict(x, kind="ab") for x in getattr(self, "ab_samples", [])]
        if self.listen and 0 <= self.listen_cursor < len(self.listen):
            r = self.listen[self.listen_cursor]
            for v in r.get("voices", []):
                for row in v.get("rows", []):
                    fl = ",".join(row.get("flags") or [])
                    samples.append({"variant": f"{r.get('label')}", "path": row.get("path"),
                                    "text": f"CER {row.get('cer', 0):.2f} {('[' + fl + '] ') if fl else ''}"
                                            f"{row.get('text', '')}", "kind": "listen"})
        self.samples = samples
        s = self.query_one("#samples", DataTable)
        s.clear()
        for smp in samples:
            s.add_row(smp.get("variant", ""), Path(str(smp.get("path"))).name, smp.get("text", ""))

    @on(DataTable.RowHighlighted, "#listen")
    def _listen_row(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != self.listen_cursor:
            self.listen_cursor = event.cursor_row
            self._draw_samples()

    def action_listen(self) -> None:
        run = self.app.run_model.run
        if run is None or (self.listen_job or {}).get("running"):
            return
        self.notify("Listening test started as its own job (best, last and the base); the table fills as "
                    "each test finishes.", title="Listen")
        self._listen_job(run)

    @work(thread=True, exclusive=True, group="listen")
    def _listen_job(self, run: Path) -> None:
        code, output = self.app.studio.run_engine(["listen", str(run)], timeout=120)
        self.post_message(JobFinished("listen", code, output, {}))

    def action_stop_job(self) -> None:
        from engine.jobs import JobFiles
        from engine.jobs import process as jp

        run = self.app.run_model.run
        if run is None:
            return
        for kind, title, what in (("listen", "Listen", "it ends after the current sentence"),
                                  ("export", "Export", "nothing is written")):
            if not (getattr(self, f"{kind}_job") or {}).get("running"):
                continue
            try:
                pid = jp.stop(JobFiles(kind, Path(run)).process)
            except (ProcessLookupError, PermissionError) as exc:
                self.error(f"Stop {kind}", str(exc))
                continue
            self.notify(f"Stop sent to the {kind} job (pid {pid}): {what}.", title=title)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        running = bool((getattr(self, "listen_job", None) or {}).get("running"))
        if action == "listen":
            return not running
        if action == "stop_job":
            return running or bool((getattr(self, "export_job", None) or {}).get("running"))
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
        """Start `xtts-ft export` as a detached job (R/export_process.json); the tick follows it."""
        code, output = self.app.studio.run_engine(["export", str(run), "--out", str(out), "--checkpoint", choice,
                                                   "--detach"], timeout=120)
        self.post_message(JobFinished("export", code, output, {"out": str(out)}))

    @on(JobFinished)
    def _job(self, message: JobFinished) -> None:
        if message.kind == "listen":
            lines = [x for x in message.output.splitlines() if x.strip()]
            if message.code != 0:
                self.error("Listen", lines[-1] if lines else f"exit code {message.code}")
            return
        if message.kind != "export" or message.code == 0:
            return   # started: its end comes from its events (_follow_export)
        self.exporting = False
        self.refresh_bindings()
        lines = [x for x in message.output.splitlines() if x.strip()]
        self.error("Export failed", lines[-1] if lines else f"exit code {message.code}")

    def action_play(self) -> None:
        s = self.query_one("#samples", DataTable)
        if not self.samples:
            return
        smp = self.samples[s.cursor_row if s.cursor_row is not None and s.cursor_row < len(self.samples) else 0]
        from tui.audio import play

        play(self.app, smp.get("path") or "", Path(str(smp.get("path") or "")).name)


def json_key(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def _size(path: str) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None
