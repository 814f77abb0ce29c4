"""Training: live curves, progress with ETA, VRAM/RAM gauges (one VRAM gauge per GPU of a distributed run), the tagged log, alerts; stop,
resume, detach, early-stop toggle. Everything comes from the App's RunModel (events.jsonl)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Static

from tui.advice import advice_for, title_for
from tui.messages import GpuInfo, JobFinished, ProjectChanged
from tui.runmodel import ACTIVE_STATES, fmt_duration
from tui.screens.base import StudioScreen
from tui.widgets.charts import Curves
from tui.widgets.common import AlertBanner, Gauge, TagLog, bar
from tui.widgets.dialogs import Confirm

CURVES = ("total", "mel_ce", "text_ce")
STATE_STYLE = {"training": "bold green", "preparing": "bold cyan", "stopping": "bold yellow",
               "stopped": "bold yellow", "finished": "bold green", "failed": "bold red reverse", "new": "dim"}


def _f(x, nd=4):
    return "–" if x is None else f"{x:.{nd}f}"


class TrainingScreen(StudioScreen):
    MODE = "train"
    BINDINGS = [
        Binding("s", "stop", "Stop", id="train.stop", tooltip="Stop safely: finish the step, write a checkpoint"),
        Binding("k", "stop_now", "Stop now", id="train.kill", tooltip="Stop at once, without a checkpoint"),
        Binding("r", "resume", "Resume", id="train.resume"),
        Binding("d", "detach", "Detach", id="train.detach", tooltip="Quit the studio; the run goes on"),
        Binding("e", "toggle_early_stop", "Early stop", id="train.early"),
        Binding("x", "dismiss_alert", "Dismiss", id="train.dismiss", tooltip="Dismiss the alert banner"),
        # named in the plot title and the help screen: the footer keeps the keys a run needs
        Binding("c", "cycle_curve", "Curve", show=False, id="train.curve"),
        Binding("l", "toggle_listen", "Listening", show=False, id="train.listen",
                tooltip="Show the listening-test curves (CER, similarity, MOS) instead of the loss"),
        Binding("o", "open_run", "Open run", show=False, id="train.open"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.drawn_version = -1
        self.curve = 0
        self.listen_view = False
        self.early_stop = False
        self.notified = 0
        self.banner_dismissed_ts = None
        self.last_plot = 0.0
        self.plot_interval = 1.0  # plots at most 1/s (the costly part); text and gauges at 2/s
        self._bind_key = None
        self._plot_dirty = False
        self._shown: dict[str, object] = {}  # what each line shows now: unchanged lines are not re-rendered

    def _put(self, wid: str, content) -> None:
        """Update a one-line Static only when its content changed, without a layout pass."""
        if self._shown.get(wid) == content:
            return
        self._shown[wid] = content
        self.query_one(f"#{wid}", Static).update(content, layout=False)

    def compose_body(self) -> ComposeResult:
        with Vertical(id="train-body"):
            yield Static(id="run-info")
            yield AlertBanner(id="banner")
            yield Static(id="run-progress")
            yield Static(id="run-losses")
            with Horizontal(id="charts"):
                yield Curves("loss", id="loss-chart")
                yield Curves("learning rate", id="lr-chart")
            with Grid(id="gauges"):  # two per row: VRAM (one per GPU of a distributed run) then RAM
                yield Gauge(id="vram")
                yield Gauge(id="ram")
            yield TagLog(id="train-log")

    def on_mount(self) -> None:
        self.set_interval(0.5, self.tick)  # text 2/s, plots at most 1/s: a few redraws per second
        self.tick()

    def on_screen_resume(self) -> None:
        self.drawn_version = -1
        self._plot_dirty = True
        self.last_plot = 0.0
        self.tick()

    @on(ProjectChanged)
    def project_changed(self, message: ProjectChanged) -> None:
        self.drawn_version = -1
        self.query_one(TagLog).reset()
        self.query_one(AlertBanner).hide()
        self.notified = 0

    @on(GpuInfo)
    def gpu_changed(self, message: GpuInfo) -> None:
        self.drawn_version = -1

    # ------------------------------------------------------------------ drawing (timer, ~4 Hz)
    def tick(self) -> None:
        m = self.app.run_model
        if m.version == self.drawn_version and not self._plot_dirty:
            return
        if self.app.current_mode != self.MODE:
            return  # another screen is shown: catch up on return (on_screen_resume)
        with m.lock:
            changed = m.version != self.drawn_version
            self.drawn_version = m.version
            with self.app.batch_update():
                if changed:
                    self._draw_text(m)
                    self._plot_dirty = True
                now = time.monotonic()
                if self._plot_dirty and (now - self.last_plot >= self.plot_interval or m.final):
                    self._draw_plots(m)
                    self.last_plot = now
                    self._plot_dirty = False
                if changed:
                    self._alerts(m)
            key = (m.state, m.alive, m.run, self.query_one(AlertBanner).has_class("shown"))
        if key != self._bind_key:  # the footer only changes with the state
            self._bind_key = key
            self.refresh_bindings()

    def _draw_text(self, m) -> None:
        run = m.run
        state = m.shown_state()
        info = Text(no_wrap=True, overflow="ellipsis")
        if run is None:
            info.append("No run open. ", style="bold")
            info.append("Start one from 4 Params, or open one from 1 Home (o).")
            self._put("run-info", info)
            self._put("run-progress", Text(""))
            self._put("run-losses", Text(""))
            self.set_context("no run")
            self._gauges(m)
            return
        info.append(f"{run.name} ", style="bold")
        info.append(f" {state.upper()} ", style=STATE_STYLE.get(state, "bold") + " reverse")
        if m.alive and state in ACTIVE_STATES:
            info.append(f" pid {m.pid}" if m.pid else "", style="dim")
        reason = m.shown_reason()
        if reason and state in ("stopped", "failed", "finished"):
            info.append(f"  {reason}", style="red" if state == "failed" else "italic")
        if self.early_stop:
            info.append("  [early stop on]", style="bold magenta")
        self._put("run-info", info)
        self.set_context(f"run {run.name}")

        w = max(10, (self.size.width - 56) // 2)
        ep_frac = ((m.epoch + (m.step / m.steps_per_epoch if m.steps_per_epoch else 0)) / m.epochs) if m.epochs else False
        st_frac = (m.step / m.steps_per_epoch) if m.steps_per_epoch else False
        eta = m.eta_seconds()
        per = m.wall_per_step or m.step_time_avg
        prog = Text(no_wrap=True, overflow="ellipsis")
        prog.append("Epoch ", style="bold")
        prog.append(bar(ep_frac, w), style="green")
        prog.append(f" {min(m.epoch + 1, m.epochs or 1) if m.epochs else '–'}/{m.epochs or '–'}  ")
        prog.append("Step ", style="bold")
        prog.append(bar(st_frac, w), style="cyan")
        prog.append(f" {m.step}/{m.steps_per_epoch or '–'}  ")
        prog.append(f"gs {m.global_step}  {_f(per, 2)} s/step  ETA {fmt_duration(eta)}")
        self._put("run-progress", prog)

        ls = m.last_step
        los = Text(no_wrap=True, overflow="ellipsis")
        los.append("train ", style="bold")
        los.append(f"{_f(ls.get('loss'))} (text {_f(ls.get('loss_text_ce'))} mel {_f(ls.get('loss_mel_ce'))})")
        if m.evals:
            gs, ep, avg, tx, mel = m.evals[-1]
            los.append("  eval ", style="bold")
            los.append(f"{_f(avg)}")
        if m.best:
            los.append("  ★ best ", style="bold green")
            los.append(f"{_f(m.best.get('loss'))} @{m.best.get('global_step')}")
        los.append(f"  lr {ls.get('lr') or 0:.2e}" if ls.get("lr") is not None else "")
        if m.listening:
            los.append(f"  listening {m.listening.get('label')} {m.listening.get('done')}/{m.listening.get('total')}",
                       style="bold yellow")
        elif m.listen_tests:
            lt = m.listen_tests[-1]
            los.append("  ♪ ", style="bold yellow")
            los.append(f"CER {_f(lt.get('cer'), 2)} sim {_f(lt.get('similarity'), 2)} (l)")
        if m.batch_size:
            a, w = m.grad_accum or 1, m.world_size or 1
            if w > 1:
                unit = "procs" if m.backend == "gloo" else "GPUs"
                los.append(f"  batch {m.batch_size} x {w} {unit} x {a} = {m.batch_size * w * a}", style="dim")
            else:
                los.append(f"  batch {m.batch_size}x{a}", style="dim")
        self._put("run-losses", los)
        self._gauges(m)
        self.query_one(TagLog).sync(m.log, m.log_seq)

    def _gpu_gauges(self, n: int) -> list[Gauge]:
        """The VRAM gauges, one per GPU (`#vram`, `#vram-1`, ...): mounted or removed only when the
        number of GPUs changes (a layout pass then, never per sample)."""
        gauges = list(self.query_one("#gauges").query(Gauge).exclude("#ram"))
        if len(gauges) < n:
            new = [Gauge(id=f"vram-{i}") for i in range(len(gauges), n)]
            self.query_one("#gauges").mount_all(new, before=self.query_one("#ram", Gauge))
            gauges += new
            self.call_after_refresh(self._redraw_gauges)  # their width is known after the layout
        elif len(gauges) > n:
            for g in gauges[n:]:
                g.remove()
            gauges = gauges[:n]
        return gauges

    def _redraw_gauges(self) -> None:
        for g in self.query(Gauge):
            g.shown = None
        self._gauges(self.app.run_model)

    def _gauges(self, m) -> None:
        ram = self.query_one("#ram", Gauge)
        g = m.gpu
        gpus = [x for x in (m.gpus or []) if x.get("available") and x.get("total_mb")]
        if gpus:  # a distributed run: one gauge per GPU, labelled by its physical index
            for gauge, x in zip(self._gpu_gauges(len(gpus)), gpus):
                extra = f"{x['util_percent']:.0f}%" if x.get("util_percent") is not None else ""
                if x.get("torch_reserved_mb") is not None and gauge.size.width >= 48:  # when it fits
                    extra += f" torch {x['torch_reserved_mb'] / 1024:.1f} rsv"
                gauge.show(f"GPU{x.get('index', x.get('rank', '?'))}", x.get("used_mb", 0) / 1024,
                           x["total_mb"] / 1024, "GB", extra.strip())
        elif g and g.get("available") and g.get("total_mb"):
            vram = self._gpu_gauges(1)[0]
            extra = ""
            if g.get("torch_reserved_mb") is not None:
                extra = f"torch {g['torch_reserved_mb'] / 1024:.1f} rsv"
            vram.show("VRAM", g.get("used_mb", 0) / 1024, g["total_mb"] / 1024, "GB", extra)
        else:
            vram = self._gpu_gauges(1)[0]
            reason = "no GPU"
            if m.gpus and m.world_size > 1:
                reason = f"no GPU ({len(m.gpus)} CPU processes)"
            elif m.run is None or g is None:
                hw = (self.app.gpu or {}).get("gpu") if isinstance(self.app.gpu, dict) else False
                if hw and hw.get("available"):
                    reason = f"{hw.get('name')} {hw.get('total_mb', 0) / 1024:.0f} GB (idle)"
                elif hw is None:
                    reason = "checking…"
            vram.show("VRAM", None, None, message=reason)
        r = m.ram
        if r and r.get("total_mb"):
            used = (r["total_mb"] - r.get("available_mb", 0)) / 1024
            rss = r.get("process_rss_mb")
            extra = ""
            if rss is not None:
                # the run's resident memory counts pages the system may call cached (shared, mapped
                # files): it can exceed "used"; the bar then shows at least the run's share
                used = max(used, rss / 1024)
                extra = f"run {rss / 1024:.1f} GB"
            ram.show("RAM", used, r["total_mb"] / 1024, "GB", extra)
        else:
            ram.show("RAM", None, None, message="waiting for a sample" if m.run else "–")

    def _draw_listen_plots(self, m) -> None:
        base = m.listen_base or {}
        note = ""
        if base.get("cer") is not None:
            note = f" base CER {base['cer']:.2f} sim {_f(base.get('similarity'), 2)}"
        self.query_one("#loss-chart", Curves).draw(
            [("CER", m.listen_cer, "red"), ("similarity", m.listen_sim, "green")],
            title=f"listening: CER (red) · similarity (green);{note} (l: loss)",
            empty="no listening test yet (--listen-every)")
        self.query_one("#lr-chart", Curves).draw([("MOS", m.listen_mos, "yellow")], title="DNSMOS",
                                                 empty="no MOS yet")

    def _draw_plots(self, m) -> None:
        if self.listen_view:
            self._draw_listen_plots(m)
            return
        which = CURVES[self.curve]
        loss = self.query_one("#loss-chart", Curves)
        marks = list(m.best_marks)
        if which == "total":
            lines = [("train", m.train_loss, "cyan"), ("eval", m.eval_loss, "orange")]
        elif which == "mel_ce":
            lines = [("train mel_ce", m.train_mel, "cyan"), ("eval mel_ce", m.eval_mel, "orange")]
            marks = []
        else:
            lines = [("train text_ce", m.train_text, "cyan"), ("eval text_ce", m.eval_text, "orange")]
            marks = []
        legend = f"train ⣿ eval • {'best * ' if marks else ''}"
        loss.draw(lines, marks=marks, title=f"loss {which}: {legend}(c: next)")
        self.query_one("#lr-chart", Curves).draw([("lr", m.lr, "magenta")], title="learning rate", sci=True)

    def _alerts(self, m) -> None:
        banner = self.query_one(AlertBanner)
        while m.pending_alerts:
            a = m.pending_alerts.popleft()
            sev = "error" if a.get("level") == "error" else "warning"
            advice = advice_for(a.get("kind"), a.get("advice"))
            self.notify(f"{a.get('msg', '')}\n" + "\n".join(f"• {x}" for x in advice[:2]),
                        title=title_for(a.get("kind")), severity=sev, timeout=20)
            if self.early_stop and a.get("kind") in ("overtraining", "plateau") and m.alive:
                self.notify("Early stop is on: stopping the run safely (the best model is kept).",
                            title="Early stop", severity="warning")
                self._send_stop(now=False)
        state = m.shown_state()
        if state == "failed":
            banner.show_alert("run failed", m.shown_reason(), advice=self._failure_advice(m), level="error",
                              hint=("r resume" if _has_checkpoint(m.run) else "r start again") + " · 4 params")
        elif m.banner is not None and m.banner.get("ts") != self.banner_dismissed_ts:
            a = m.banner
            banner.show_alert(title_for(a.get("kind")), str(a.get("msg", "")),
                              advice_for(a.get("kind"), a.get("advice"))[:2],
                              level="error" if a.get("level") == "error" else "warning")
        else:
            banner.hide()

    def _failure_advice(self, m) -> list[str]:
        if m.state_info.get("oom") or any(a.get("kind") == "oom" for a in m.alerts):
            return advice_for("oom")[:3]
        if not _has_checkpoint(m.run):
            return ["See the log below and train.log in the run folder.",
                    "It ended before its first checkpoint: r starts it again from step 0 once the cause is fixed."]
        return ["See the log below and train.log in the run folder.",
                "Resume from the last checkpoint with r once the cause is fixed."]

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        m = self.app.run_model
        alive = bool(m.alive) and m.state in ACTIVE_STATES
        if action in ("stop", "stop_now"):
            return True if alive and m.state != "stopping" or (action == "stop_now" and alive) else False
        if action == "resume":
            return True if m.run is not None and not alive and m.state in ("stopped", "failed", "finished") \
                and m.alive is not None else False
        if action == "detach":
            return True if alive else False
        if action == "dismiss_alert":
            return True if self.query_one(AlertBanner).has_class("shown") else False
        return True

    def action_cycle_curve(self) -> None:
        self.curve = (self.curve + 1) % len(CURVES)
        self._plot_dirty = True
        self.last_plot = 0
        self.tick()

    def action_toggle_listen(self) -> None:
        self.listen_view = not self.listen_view
        self._plot_dirty = True
        self.last_plot = 0
        self.tick()

    def action_dismiss_alert(self) -> None:
        m = self.app.run_model
        if m.banner is not None:
            self.banner_dismissed_ts = m.banner.get("ts")
        self.query_one(AlertBanner).hide()
        self.refresh_bindings()

    def action_toggle_early_stop(self) -> None:
        self.early_stop = not self.early_stop
        self.drawn_version = -1
        self.notify("On: the studio stops the run safely at an overtraining or plateau alert (while it is open; "
                    "for an engine-side rule set Early stop patience in Params)." if self.early_stop
                    else "Off: alerts only.", title=f"Early stop {'on' if self.early_stop else 'off'}")

    def action_stop(self) -> None:
        def done(ok: bool | None) -> None:
            if ok:
                self._send_stop(now=False)

        self.app.push_screen(Confirm("Stop the run safely?",
                                     "It finishes the current step and writes a checkpoint; resume later with r.",
                                     yes="Stop", no="Keep training"), done)

    def action_stop_now(self) -> None:
        def done(ok: bool | None) -> None:
            if ok:
                self._send_stop(now=True)

        self.app.push_screen(Confirm("Stop at once?", "No checkpoint is written: progress since the last one "
                                     "is lost.", yes="Stop now", no="Cancel"), done)

    @work(thread=True, group="train-cmd")
    def _send_stop(self, now: bool) -> None:
        run = self.app.run_model.run
        args = ["stop", str(run)] + (["--now"] if now else [])
        code, out = self.app.studio.run_engine(args, timeout=30)
        self.post_message(JobFinished("stop", code, out))

    def action_resume(self) -> None:
        m = self.app.run_model
        run = m.run
        if not _has_checkpoint(run):
            # a run that ended before its first checkpoint: the way out is to start it again
            def done(ok: bool | None) -> None:
                if ok:
                    self._resume(run, restart=True)

            self.app.push_screen(Confirm("Start the run again?",
                                         f"{run.name} ended before its first checkpoint, so there is nothing to "
                                         "resume. Start it again from step 0 with the same settings?",
                                         yes="Start again", no="Cancel"), done)
            return
        self._resume(run)

    @work(thread=True, group="train-cmd")
    def _resume(self, run: Path, restart: bool = False) -> None:
        args = ["resume", str(run), "--detach"] + (["--restart"] if restart else [])
        code, out = self.app.studio.run_engine(args, timeout=60)
        self.post_message(JobFinished("resume", code, out))

    @on(JobFinished)
    def job_finished(self, message: JobFinished) -> None:
        if message.kind == "stop":
            if message.code == 0:
                self.notify("Stop requested: the run finishes its step and writes a checkpoint.", title="Stopping")
            else:
                self.error("Stop failed", message.output.splitlines()[-1] if message.output else "no answer")
        elif message.kind == "resume":
            if message.code == 0:
                self.notify("Resumed: following the run.", title="Resume")
                self.app.follow_run(self.app.run_model.run)
                self.query_one(TagLog).reset()
                self.banner_dismissed_ts = None
            else:
                self.error("Resume failed", message.output.splitlines()[-1] if message.output else "no answer")

    def action_detach(self) -> None:
        self.app.exit(message="Training continues in the background. Reattach with `xtts-ft` (Home) or "
                              f"follow it with `xtts-ft status {self.app.run_model.run} --follow`.")

    def action_open_run(self) -> None:
        self.app.action_goto("home")


def _has_checkpoint(run: Path | None) -> bool:
    return run is not None and (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("checkpoint_*.pth"))
