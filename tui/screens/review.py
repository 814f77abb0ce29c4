"""Segmentation review: the clips of the current dataset, sortable and filterable by flag; for the
selected clip its energy and neighbours; edit, drop/restore, merge with next, split at a word,
play, undo. Every edit goes through engine.prep.review (atomic, journaled)."""

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
from tui.widgets.dialogs import Choose, Prompt

FILTERS = ["all", "flagged", "too_short", "too_long", "duplicate_text", "low_confidence", "doubtful", "clip_ends",
           "hallucination", "clipped", "other_speaker", "noisy", "music", "reverb", "dropped", "edited"]
SORTS = ["source", "duration", "confidence", "similarity", "snr", "ends", "flags"]
# prep's clip-end checks (engine/audio/clipends.py): one filter and one sort for all four
CLIP_END_FLAGS = ("cut_end", "cut_start", "tail_noise", "no_tail")
# prep's cleaning checks (docs/prep.md): thresholds used to colour the numbers
SIM_WARN, SNR_WARN = 0.80, 15.0
SHORT_FLAGS = {"too_short": "short", "too_long": "long", "duplicate_text": "dup", "duplicate": "dup",
               "low_confidence": "lowconf", "hallucination": "halluc", "repeated_text": "repeat",
               "empty_text": "empty", "clipped": "clip", "other_speaker": "voice?", "retranscribed": "re-asr",
               "cut_end": "cut>", "cut_start": "<cut", "tail_noise": "tail~", "no_tail": "notail",
               "doubtful": "doubt"}
SPARK = "▁▂▃▄▅▆▇█"


def spark(values: list[float], lo: float = -60.0, hi: float = -6.0) -> str:
    out = []
    for v in values:
        f = (min(hi, max(lo, v)) - lo) / (hi - lo)
        out.append(SPARK[min(len(SPARK) - 1, int(f * (len(SPARK) - 1) + 0.5))])
    return "".join(out)


def _num(x, default: float) -> float:
    return float(x) if isinstance(x, (int, float)) else default


def sim_text(sim) -> Text:
    if not isinstance(sim, (int, float)):
        return Text("–", style="dim")
    return Text(f"{sim:.2f}", style="bold yellow" if sim < SIM_WARN else "")


def snr_text(snr) -> Text:
    if not isinstance(snr, (int, float)):
        return Text("–", style="dim")
    return Text(">60" if snr >= 60 else f"{snr:.0f}", style="bold yellow" if snr < SNR_WARN else "")


def cleaning_line(s: dict) -> Text:
    """The measures behind the cleaning flags (docs/prep.md "Cleaning checks") on one line."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("voice ", style="bold")
    t.append_text(sim_text(s.get("speaker_similarity")))
    t.append("  SNR ", style="bold")
    before, after = s.get("snr_db_before"), s.get("snr_db")
    if isinstance(before, (int, float)):
        t.append_text(snr_text(before))
        t.append("→")
    t.append_text(snr_text(after))
    t.append(" dB" if isinstance(after, (int, float)) else "")
    if isinstance(s.get("speech_seconds"), (int, float)):
        t.append("  speech ", style="bold")
        t.append(f"{s['speech_seconds']:.1f}s")
    p = s.get("pauses") or {}
    if isinstance(p, dict) and any(isinstance(p.get(k), (int, float)) for k in ("early_db", "late_db", "flatness")):
        t.append("  pause ", style="bold")
        parts = []
        for key, label, fmt in (("early_db", "early", "{:.0f}"), ("late_db", "late", "{:.0f}"),
                                ("flatness", "flat", "{:.2f}"), ("t60_s", "T60", "{:.2f}s")):
            v = p.get(key)
            if isinstance(v, (int, float)):
                parts.append(f"{label} {fmt.format(v)}")
        t.append(" ".join(parts))
    return t


def split_options(folder: Path, seg: dict, manifest: dict | None) -> tuple[list[str], set[int]]:
    """One line per place a clip can be split (after each word but the last), with the two parts'
    estimated lengths (engine.prep.review.split_time, as the split itself), and the indexes of the
    places that leave a part under the dataset's minimum clip length."""
    import soundfile as sf

    from engine.prep import review

    words = review.words(seg.get("text", ""))
    if len(words) < 2:
        return [], set()
    min_s = float(((manifest or {}).get("settings") or {}).get("min_seconds", 2.0))
    try:
        audio, sr = sf.read(str(Path(folder) / seg["file"]), dtype="float32", always_2d=False)
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        total = len(audio) / sr
    except Exception:  # noqa: BLE001 - unreadable audio: the split says so itself
        audio, sr, total = None, 0, None
    options, short = [], set()
    for i in range(len(words) - 1):
        line = f"{i + 1:>2}. …{' '.join(words[:i + 1])[-22:]} ┃ {' '.join(words[i + 1:])[:22]}…"
        if audio is not None:
            cut = review.split_time(audio, sr, seg.get("text", ""), i)
            a, b = cut, total - cut
            line += f"  {a:.1f}+{b:.1f} s"
            if min(a, b) < min_s:
                short.add(i)
                line += " ⚠"
        options.append(line)
    return options, short


class ReviewScreen(StudioScreen):
    MODE = "review"
    BINDINGS = [
        Binding("e", "edit", "Edit", id="review.edit", tooltip="Edit the transcript"),
        Binding("d", "drop", "Drop", id="review.drop", tooltip="Drop the clip, or restore a dropped one"),
        Binding("m", "merge", "Merge", id="review.merge", tooltip="Merge with the next clip of the source"),
        Binding("s", "split", "Split", id="review.split"),
        Binding("u", "undo", "Undo", id="review.undo"),
        Binding("p", "play", "Play", id="review.play"),
        Binding("f", "filter", "Filter", show=False, id="review.filter"),  # named in the header
        Binding("o", "sort", "Sort", show=False, id="review.sort"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.manifest: dict | None = None
        self.rows: list[dict] = []
        self.filter = "all"
        self.sort = "source"
        self.busy = False

    @property
    def folder(self) -> Path | None:
        return self.app.studio.dataset

    def compose_body(self) -> ComposeResult:
        with Vertical(id="review-body"):
            yield Static(id="review-head")
            yield DataTable(id="clips", cursor_type="row", zebra_stripes=True)
            yield Static(id="clip-detail")

    def on_mount(self) -> None:
        t = self.query_one("#clips", DataTable)
        for key, label, w in (("keep", "", 1), ("source", "source", 10), ("span", "start–end", 11),
                              ("dur", "dur", 4), ("conf", "conf", 4), ("sim", "sim", 4), ("snr", "SNR", 3),
                              ("flags", "flags", 10), ("text", "text", 60)):
            t.add_column(label, key=key, width=w)
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def on_resize(self) -> None:
        self._fit_text_column()

    def _fit_text_column(self) -> None:
        """The text column takes what is left of the width (the detail pane shows it all), so the
        table never scrolls sideways."""
        t = self.query_one("#clips", DataTable)
        col = t.columns.get("text")
        if col is None or not t.size.width:
            return
        others = sum(c.width for k, c in t.columns.items() if k != "text")
        width = max(12, t.size.width - others - 2 * len(t.columns) - 2)
        if col.width != width:
            col.width = width
            col.auto_width = False
            t.refresh(layout=True)

    @on(ProjectChanged)
    def _project(self, message: ProjectChanged) -> None:
        self.load()

    # ------------------------------------------------------------------ data
    def load(self, keep_id: str | None = None) -> None:
        from engine.prep import review

        head = self.query_one("#review-head", Static)
        self.manifest = None
        if self.folder is None:
            head.update("No dataset open: build one in 2 Prep, or open one from 1 Home.")
            self._fill(keep_id)
            return
        try:
            self.manifest = review.load(self.folder)
        except Exception as exc:  # noqa: BLE001 - a damaged/missing manifest is a message, not a crash
            head.update(Text(f"{self.folder}: {exc}", style="red"))
            self._fill(keep_id)
            return
        self.set_context(f"dataset {self.folder.name}")
        self._fill(keep_id)

    def _visible(self) -> list[dict]:
        if not self.manifest:
            return []
        segs = self.manifest["segments"]
        f = self.filter
        if f == "flagged":
            segs = [s for s in segs if [x for x in s.get("flags", []) if x not in ("edited", "retranscribed")]]
        elif f == "dropped":
            segs = [s for s in segs if s.get("excluded")]
        elif f == "clip_ends":
            segs = [s for s in segs if set(CLIP_END_FLAGS) & set(s.get("flags", []))]
        elif f != "all":
            segs = [s for s in segs if f in s.get("flags", []) or (f == "duplicate_text" and "duplicate" in s.get("flags", []))]
        order = {src["id"]: i for i, src in enumerate(self.manifest.get("sources", []))}
        if self.sort == "source":
            segs = sorted(segs, key=lambda s: (order.get(s["source"], 999), float(s.get("start", 0))))
        elif self.sort == "duration":
            segs = sorted(segs, key=lambda s: float(s.get("duration") or 0))
        elif self.sort == "confidence":
            segs = sorted(segs, key=lambda s: float(s.get("confidence") or 0))
        elif self.sort == "similarity":
            segs = sorted(segs, key=lambda s: _num(s.get("speaker_similarity"), 9.0))
        elif self.sort == "snr":
            segs = sorted(segs, key=lambda s: _num(s.get("snr_db"), 999.0))
        elif self.sort == "ends":        # clips with a cut or noisy end first, the worst (most flags) on top
            segs = sorted(segs, key=lambda s: (-len(set(CLIP_END_FLAGS) & set(s.get("flags", []))),
                                               order.get(s["source"], 999), float(s.get("start", 0))))
        else:
            segs = sorted(segs, key=lambda s: -len(s.get("flags", [])))
        return segs

    def _fill(self, keep_id: str | None = None) -> None:
        t = self.query_one("#clips", DataTable)
        if keep_id is None and self.rows and t.cursor_row is not None and 0 <= t.cursor_row < len(self.rows):
            keep_id = self.rows[t.cursor_row]["id"]
        self.rows = self._visible()
        names = {s["id"]: s.get("name", s["id"]) for s in (self.manifest or {}).get("sources", [])}
        t.clear()
        for s in self.rows:
            dropped = bool(s.get("excluded"))
            keep = Text("✗", style="bold red") if dropped else Text("✓", style="green")
            style = "dim strike" if dropped else ""
            flags = ",".join(SHORT_FLAGS.get(x, x) for x in s.get("flags", []))
            conf = s.get("confidence")
            t.add_row(keep, Text(Path(str(names.get(s["source"], s["source"]))).stem[:10], style=style),
                      f"{float(s.get('start', 0)):.1f}–{float(s.get('end', 0)):.1f}",
                      f"{float(s.get('duration') or 0):.1f}",
                      Text(f"{conf:.2f}" if isinstance(conf, (int, float)) else "–",
                           style="yellow" if isinstance(conf, (int, float)) and conf < 0.6 else ""),
                      sim_text(s.get("speaker_similarity")), snr_text(s.get("snr_db")),
                      Text(flags, style="yellow" if flags else ""), Text(s.get("text", ""), style=style),
                      key=s["id"])
        if keep_id:
            for i, s in enumerate(self.rows):
                if s["id"] == keep_id:
                    t.move_cursor(row=i)
                    break
        self._fit_text_column()
        self._head()
        self._detail()
        self.refresh_bindings()

    def _head(self) -> None:
        from engine.prep import review

        if not self.manifest:
            return
        segs = self.manifest["segments"]
        kept = [s for s in segs if not s.get("excluded")]
        secs = sum(float(s.get("duration") or 0) for s in kept)
        h = Text(no_wrap=True, overflow="ellipsis")
        h.append(f"{len(kept)} clips kept ({secs / 60:.1f} min), {len(segs) - len(kept)} dropped", style="bold")
        h.append(f"  filter: {self.filter} (f)  sort: {self.sort} (o)  showing {len(self.rows)}")
        if review.can_undo(self.folder):
            h.append("  u undo", style="italic")
        self.query_one("#review-head", Static).update(h)

    def current(self) -> dict | None:
        t = self.query_one("#clips", DataTable)
        if not self.rows or t.cursor_row is None or not 0 <= t.cursor_row < len(self.rows):
            return None
        return self.rows[t.cursor_row]

    @on(DataTable.RowHighlighted)
    def _row(self, event) -> None:
        self._detail()
        self.refresh_bindings()

    def _detail(self) -> None:
        from engine.prep import review

        d = self.query_one("#clip-detail", Static)
        s = self.current()
        if s is None:
            d.update("No clips here." if self.manifest else "")
            return
        t = Text()
        try:
            width = max(20, self.size.width - 12)
            e, dur = review.energy(self.folder / s["file"], frames=width)
            t.append("energy ", style="bold")
            t.append(spark(e), style="cyan")
            t.append(f" {dur:.1f}s\n")
        except Exception as exc:  # noqa: BLE001
            t.append(f"audio unreadable: {exc}\n", style="red")
        prev, nxt = review.neighbours(self.manifest, s["id"])
        t.append("prev  ", style="dim bold")
        t.append((prev.get("text", "") if prev else "(first clip of the source)") + "\n", style="dim")
        t.append("this  ", style="bold")
        t.append(s.get("text", "") + "\n")
        t.append("next  ", style="dim bold")
        t.append((nxt.get("text", "") if nxt else "(last clip of the source)") + "\n", style="dim")
        t.append_text(cleaning_line(s))
        t.append("\n")
        info = f"{s['id']} · {s.get('split', '?')} · {s.get('text_source', '')}"
        if s.get("excluded"):
            info += f" · left out: {s.get('exclude_reason', '')} (d restores)"
        elif "other_speaker" in s.get("flags", []):
            info += " · restored: trained on although flagged other_speaker"
        t.append(info, style="italic")
        d.update(t)

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("edit", "drop", "merge", "split", "play"):
            return True if self.is_mounted and self.current() is not None and not self.busy else False
        if action == "undo":
            from engine.prep import review

            return True if self.folder is not None and review.can_undo(self.folder) and not self.busy else False
        return True

    def action_filter(self) -> None:
        def done(i: int | None) -> None:
            if i is not None:
                self.filter = FILTERS[i]
                self._fill()

        counts = []
        segs = (self.manifest or {}).get("segments", [])
        for f in FILTERS:
            old, self.filter = self.filter, f
            counts.append(f"{f.replace('_', ' ')} ({len(self._visible())})")
            self.filter = old
        self.app.push_screen(Choose("Show clips", counts, selected=FILTERS.index(self.filter)), done)

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._fill()

    def action_edit(self) -> None:
        s = self.current()
        if s is None:
            return

        def done(text: str | None) -> None:
            if text is not None and text.strip() != s.get("text", "").strip():
                self._apply("edit_text", s["id"], text)

        self.app.push_screen(Prompt(f"Transcript of {s['id']}", s.get("text", ""),
                                    help="Write exactly what is said; it is saved into the dataset at once."), done)

    def action_drop(self) -> None:
        s = self.current()
        if s is not None:
            self._apply("restore" if s.get("excluded") else "drop", s["id"])

    def action_merge(self) -> None:
        s = self.current()
        if s is not None:
            self._apply("merge_next", s["id"])

    def action_split(self) -> None:
        s = self.current()
        if s is None:
            return
        options, short = split_options(self.folder, s, self.manifest)
        if not options:
            self.error("Cannot split", "The clip's text has fewer than two words.")
            return
        min_s = float(((self.manifest or {}).get("settings") or {}).get("min_seconds", 2.0))

        def done(i: int | None) -> None:
            if i is not None:
                if i in short:
                    self.notify(f"A part is under the {min_s:g} s minimum: it is flagged too_short (u undoes).",
                                title="Split", severity="warning", timeout=8)
                self._apply("split", s["id"], i)

        self.app.push_screen(Choose("Split the clip after which word?", options,
                                    help=f"The cut goes to the quietest point near that word; the two parts' "
                                         f"lengths are estimated. ⚠: a part under the {min_s:g} s minimum.",
                                    selected=len(options) // 2), done)

    def action_undo(self) -> None:
        self._apply("undo")

    @work(thread=True, exclusive=True, group="review-edit")
    def _apply(self, op: str, *args) -> None:
        from engine.prep import review

        self.busy = True
        try:
            fn = getattr(review, op)
            entry = fn(self.folder, *args)
            code, out = 0, (entry or {}).get("summary", "nothing to undo") if entry else "nothing to undo"
            data = {"op": op, "entry": entry}
        except review.ReviewError as exc:
            code, out, data = 1, str(exc), {"op": op}
        except Exception as exc:  # noqa: BLE001 - shown as a message, the app keeps going
            code, out, data = 2, f"{type(exc).__name__}: {exc}", {"op": op}
        finally:
            self.busy = False
        self.post_message(JobFinished("review", code, out, data))

    @on(JobFinished)
    def _done(self, message: JobFinished) -> None:
        if message.kind != "review":
            return
        if message.code:
            self.error("Review", message.output)
            return
        entry = message.data.get("entry") or {}
        keep = None
        if message.data.get("op") == "undo" and entry:
            keep = entry["before"][0]["id"] if entry.get("before") else None
            self.notify(f"Undone: {entry.get('summary', '')}", timeout=4)
        elif entry.get("after"):
            keep = entry["after"][0]["id"]
            self.notify(f"Saved: {entry.get('summary', '')}", timeout=4)
        self.load(keep_id=keep)

    def action_play(self) -> None:
        s = self.current()
        if s is None:
            return
        from tui.audio import play

        play(self.app, self.folder / s["file"], f"{s['id']} ({float(s.get('duration') or 0):.1f} s)")
