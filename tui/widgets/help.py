"""The studio's help: what the current screen is for, its keys, and the keys that work everywhere.
Opened with ? (or "Help" in the ctrl+p palette); Escape, ? or q closes it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

# what each step is for, in the words a newcomer needs (the step bar's order)
PURPOSE = {
    "home": "Your projects: each dataset with its training runs and their live state. Open one, start a new "
            "project from recordings, or attach to a run that is still going (started here, from the command "
            "line, or before an SSH drop).",
    "prep": "Build a dataset from your recordings: add files or folders (Sources), set the options (Options), "
            "run prep (ctrl+r) and follow it (Progress), then read the quality report (Report). Your recordings "
            "are never modified.",
    "review": "Listen to and correct the clips prep cut: fix a transcript, drop a bad clip (or restore one), "
              "merge or split clips, undo. Every edit is saved into the dataset at once.",
    "params": "Choose the training parameters: a preset from the guide, the base model, the run folder and "
              "every option, checked as you type, with the memory estimate for your GPU. ctrl+r starts "
              "training in its own process.",
    "train": "Follow a run: loss and learning-rate curves, progress and ETA, GPU and RAM, the log and alerts. "
             "Closing the studio never stops training; stop it safely with s.",
    "results": "The run's checkpoints with their eval loss and the A/B samples (base vs finetuned). Export "
               "the one you like to models/xtts/<name>/, a folder coqui-tts and AllTalk load as is.",
}

GLOBAL_KEYS = [
    ("1-6", "go to a step (the bar at the top names them)"),
    ("F1-F6", "the same, also while typing in a text field"),
    ("?", "this help (in a text field: ctrl+p, then Help)"),
    ("ctrl+p", "command palette: every action of the screen, searchable"),
    ("tab", "next field or list"),
    ("q / ctrl+q", "quit the studio (training and prep keep running)"),
]


def _key(binding: Binding, app) -> str:
    return app.get_key_display(binding)


def help_text(screen: Screen) -> Text:
    from tui.widgets.common import STEPS

    mode = getattr(screen, "MODE", "")
    label = next((lab for m, _k, lab in STEPS if m == mode), mode.title())
    t = Text()
    t.append(f"{label}\n", style="bold underline")
    t.append(PURPOSE.get(mode, "") + "\n\n")
    keys = [b for b in getattr(screen, "BINDINGS", []) if isinstance(b, Binding) and b.description]
    if keys:
        t.append("Keys on this screen\n", style="bold")
        for b in keys:
            t.append(f"  {_key(b, screen.app):<10}", style="bold cyan")
            t.append(b.description)
            if b.tooltip:
                t.append(f": {b.tooltip}", style="dim")
            t.append("\n")
        t.append("\n")
    t.append("Everywhere\n", style="bold")
    for k, d in GLOBAL_KEYS:
        t.append(f"  {k:<10}", style="bold cyan")
        t.append(d + "\n")
    t.append("\nThe steps\n", style="bold")
    for m, k, lab in STEPS:
        first = PURPOSE[m].split(": ")[0].split(". ")[0]
        t.append(f"  {k} {lab:<8}", style="bold" if m == mode else "")
        t.append(first.rstrip(".") + "\n", style="" if m == mode else "dim")
    return t


class HelpScreen(ModalScreen):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90%; max-width: 100; height: 90%; border: thick $accent;
                            background: $surface; padding: 0 1; }
    HelpScreen VerticalScroll { height: 1fr; }
    HelpScreen Button { margin-top: 0; }
    """
    BINDINGS = [
        Binding("escape", "close", "Close", show=False),
        Binding("question_mark,q,ctrl+c", "close", "Close", id="help.close"),
    ]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.text = help_text(screen)

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll(id="help-scroll"):
                yield Static(self.text, id="help-text")
            yield Button("Close (? or q)", id="help-close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss()

    def action_close(self) -> None:
        self.dismiss()
