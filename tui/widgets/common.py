"""Small widgets shared by the screens: the step bar, gauges, the alert banner, the tagged log."""

from __future__ import annotations

from rich.text import Text
from textual.css.query import NoMatches
from textual.widgets import RichLog, Static, Switch

STEPS = [
    ("home", "1", "Home"),
    ("prep", "2", "Prep"),
    ("review", "3", "Review"),
    ("params", "4", "Params"),
    ("train", "5", "Train"),
    ("results", "6", "Results"),
]

SHORT_LABELS = {"Review": "Rev", "Params": "Par", "Results": "Res"}  # when a long run name needs the room

TAG_STYLES = {
    "INFO": "cyan", "MODEL": "magenta", "GPU": "green", "AUDIO": "blue", "SEG": "bright_blue",
    "DUP": "yellow", "DATA": "bright_cyan", "TRAIN": "bright_green", "ERROR": "bold red",
}


class StepBar(Static):
    """The wizard's steps on one line; the current one is highlighted; click, press 1-6, or F1-F6.
    While a text field has the focus, 1-6 are text: the bar then names F1-F6 instead."""

    DEFAULT_CSS = """
    StepBar { height: 1; width: 1fr; background: $panel; }
    """

    def __init__(self, current: str, **kw) -> None:
        super().__init__(**kw)
        self.current = current
        self.context = ""
        self.fkeys = False

    def set_context(self, text: str) -> None:
        if text != self.context:
            self.context = text
            self.update(self._markup(), layout=False)

    def set_fkeys(self, on: bool) -> None:
        if on != self.fkeys:
            self.fkeys = on
            self.update(self._markup(), layout=False)

    def on_mount(self) -> None:
        self.update(self._markup())

    def on_resize(self) -> None:
        self.update(self._markup(), layout=False)

    def _items(self, gap: bool, short: bool) -> list[tuple[str, str]]:
        """(mode, text) of each step as drawn."""
        out = []
        for mode, key, label in STEPS:
            if short and mode != self.current:
                label = SHORT_LABELS.get(label, label)
            out.append((mode, f" {'F' + key if self.fkeys else key} {label} " + (" " if gap else "")))
        return out

    def _layout(self) -> tuple[list[tuple[str, str]], str]:
        """The first of ever more compact forms that leaves the whole context (the run's or the
        dataset's name) visible: no gaps, then no "run"/"dataset" word, then short step names."""
        width = self.size.width or 80
        words = self.context.split(" ", 1)
        bare = words[1] if len(words) == 2 and words[0] in ("run", "dataset") else self.context
        forms = [(True, False, self.context), (False, False, self.context), (False, False, bare),
                 (False, True, bare)]
        for gap, short, ctx in forms:
            items = self._items(gap, short)
            if not ctx or sum(len(x) for _m, x in items) + 2 + len(ctx) <= width:
                return items, ctx
        return items, ctx

    def _markup(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        items, ctx = self._layout()
        for mode, text in items:
            t.append(text.rstrip(" ") + " " if text.endswith("  ") else text,
                     style="bold reverse" if mode == self.current else None)
            if text.endswith("  "):
                t.append(" ")
        if ctx:
            t.append("│ ", style="dim")
            t.append(ctx, style="italic")
        return t

    def on_click(self, event) -> None:
        # map the x position to a step
        x = event.x
        pos = 0
        for mode, text in self._layout()[0]:
            if pos <= x < pos + len(text):
                self.app.action_goto(mode)
                return
            pos += len(text)


def field_state(screen, key: str, err: str | None, widget) -> None:
    """A field's mark beside it (✓, ✗, or on/off for a switch: readable without colours) and its
    whole error message on a line of its own under it."""
    mark = screen.query_one(f"#e-{key}", Static)
    if err:
        mark.update(Text("✗", style="bold red"))
        screen.query_one(f"#m-{key}", Static).update(Text(f"✗ {err}", style="bold red"))
    elif isinstance(widget, Switch):
        mark.update(Text("on" if widget.value else "off", style="bold" if widget.value else "dim"))
    else:
        mark.update(Text("✓", style="green"))
    try:  # query_one by id is quick; query() walks the whole screen
        screen.query_one(f"#m-{key}", Static).set_class(bool(err), "shown")
    except NoMatches:
        pass  # a switch has no message line
    widget.set_class(bool(err), "-invalid")


def bar(frac: float | None, width: int) -> str:
    if frac is None:
        return "·" * width
    frac = min(1.0, max(0.0, frac))
    full = int(frac * width)
    return "█" * full + "░" * (width - full)


class Gauge(Static):
    """A labelled one-line gauge: `VRAM ████░░░ 10.2/12.0 GB  reserved 9.8` or a plain message."""

    DEFAULT_CSS = """
    Gauge { height: 1; width: 1fr; }
    """

    shown = None

    def _set(self, t: Text) -> None:
        if t != self.shown:  # unchanged gauges are not re-rendered; one line: no layout pass
            self.shown = t
            self.update(t, layout=False)

    def show(self, label: str, used: float | None, total: float | None, unit: str = "GB",
             extra: str = "", message: str | None = None, warn_at: float = 0.9) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"{label:<5}", style="bold")
        if message is not None or used is None or not total:
            t.append(message or "–", style="dim")
            self._set(t)
            return
        frac = used / total
        width = max(6, min(24, (self.size.width or 40) - 30))
        style = "bold red" if frac >= warn_at else ("yellow" if frac >= 0.75 else "green")
        t.append(bar(frac, width), style=style)
        t.append(f" {used:.1f}/{total:.1f} {unit}")
        if frac >= warn_at:
            t.append(" !", style="bold red")
        if extra:
            t.append(f"  {extra}", style="dim")
        self._set(t)


class AlertBanner(Static):
    """An alert nobody can miss: reverse video (visible with NO_COLOR), the guide's advice, and
    how to dismiss it. Hidden when there is nothing to say."""

    DEFAULT_CSS = """
    AlertBanner {
        display: none; height: auto; max-height: 8; width: 1fr;
        background: $error; color: $text; text-style: bold; padding: 0 1;
    }
    AlertBanner.warning { background: $warning; color: $background; }
    AlertBanner.shown { display: block; }
    """

    shown_key = None

    def show_alert(self, title: str, msg: str, advice: list[str] | None = None, level: str = "error",
                   hint: str = "x dismiss") -> None:
        key = (title, msg, tuple(advice or ()), level, hint)
        if key == self.shown_key and self.has_class("shown"):
            return  # the same alert: no re-render, no layout pass
        self.shown_key = key
        t = Text()
        t.append(f"⚠ {title.upper()} ", style="reverse bold")
        if hint:  # first, so a long message never pushes it out of the banner
            t.append(f" [{hint}]", style="italic")
        t.append(f" {msg}")
        for a in advice or []:
            t.append(f"\n • {a}")
        self.set_class(level != "error", "warning")
        self.add_class("shown")
        self.update(t)

    def hide(self) -> None:
        if self.has_class("shown"):
            self.remove_class("shown")


class TagLog(RichLog):
    """The guide's tagged lines ([INFO] [MODEL] [GPU] ... [WARNING]); appends only new lines.
    Lines are not cut: focus the log (tab, or a click) and ← → scroll it sideways."""

    DEFAULT_CSS = """
    TagLog { height: 1fr; border: none; background: $surface; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(max_lines=1500, wrap=False, markup=False, highlight=False, **kw)
        self.seen = 0

    def reset(self) -> None:
        self.clear()
        self.seen = 0

    def sync(self, log, seq: int) -> None:
        """Append the lines of the ring `log` added since the last call (`seq` = lines ever added)."""
        new = seq - self.seen
        if new <= 0:
            return
        lines = list(log)[-min(new, len(log)):]
        self.seen = seq
        if not lines:
            return
        # one write for the whole batch: one refresh however many lines arrived since the last tick
        batch = Text("\n", no_wrap=True).join(format_log_line(level, tag, msg) for level, tag, msg in lines)
        # shrink=False: a long line keeps its end and the log scrolls sideways (focus it: ← →)
        self.write(batch, scroll_end=True, shrink=False)


def format_log_line(level: str, tag: str, msg: str) -> Text:
    t = Text(no_wrap=True)
    if not tag:
        t.append(msg, style="dim")
        return t
    if level == "warning":
        t.append("[WARNING] ", style="bold yellow")
        if tag != "WARNING":
            t.append(f"[{tag}] ", style="yellow")
    elif level == "error":
        t.append("[ERROR] ", style="bold red reverse")
        if tag not in ("ERROR",):
            t.append(f"[{tag}] ", style="red")
    else:
        t.append(f"[{tag}] ", style=TAG_STYLES.get(tag, "white"))
    t.append(msg)
    return t
